/* procleak: read what the kernel tells of the host through /proc, /sys and /dev (issue #23, item 5),
 * by every path shape that reaches the same file: /proc/X, /proc/self/../X, /proc/thread-self/../../X,
 * /proc/1/root/proc/X (the pod's systemd sees the pod's /proc), /proc/self/root/proc/X, openat on a
 * /proc directory fd, /proc/self/fd/N/X, and a procfs of its own (mounted directly, or in new user,
 * mount and PID namespaces).
 *
 * Prints `read:PATH ESCAPED N` when N > 0 bytes (or directory entries) came back, `read:PATH EMPTY`
 * for nothing, else `read:PATH ERRNO`. The test decides which must be empty or refused. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* files under /proc an attacker wants: key descriptions, kernel addresses and timers, slab state */
static const char *const PROC_FILES[] = {
	"keys", "key-users", "timer_list", "timer_stats", "sched_debug", "latency_stats", "kallsyms",
	"kcore", "kmsg", "slabinfo", "vmallocinfo", "kpagecount", "kpageflags", "kpagecgroup",
	"config.gz", "interrupts", "1/environ", "1/maps", "1/mem",
};
static const char *const PROC_DIRS[] = {"acpi", "scsi", "asound"};
static const char *const SYS_PATHS[] = {
	"/sys/kernel/debug", "/sys/kernel/tracing", "/sys/kernel/security", "/sys/fs/bpf",
	"/sys/firmware", "/sys/devices/virtual/powercap", "/sys/kernel/vmcoreinfo", "/sys/fs/selinux",
	"/sys/dev/block", "/dev/kmsg", "/dev/mem", "/dev/kmem", "/dev/port",
};
/* readable everywhere: proves the reader works */
static const char *const CONTROLS[] = {"/proc/self/status", "/proc/cpuinfo"};

static void report(const char *try, long n, int e) {
	if (n > 0)
		printf("read:%s ESCAPED %ld\n", try, n);
	else if (n == 0)
		printf("read:%s EMPTY\n", try);
	else
		printf("read:%s %s\n", try, strerrorname_np(e) ?: "EUNKNOWN");
	fflush(stdout);
}

/* bytes read (at most 4096), entries listed for a directory, or -1 with errno */
static long slurp(int dirfd, const char *path) {
	int fd = openat(dirfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	fstat(fd, &st);
	if (S_ISDIR(st.st_mode)) {
		DIR *d = fdopendir(fd);
		long n = 0;
		for (struct dirent *e; d && (e = readdir(d));)
			n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
		if (d)
			closedir(d);
		return n;
	}
	const char *base = strrchr(path, '/');
	struct statfs fs;
	if (strcmp(base ? base + 1 : path, "kmsg") == 0 && fstatfs(fd, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC) {
		close(fd); /* the real /proc/kmsg: a read takes the host's log away; opening it is the leak */
		return 1;
	}
	char buf[4096];
	long n = read(fd, buf, sizeof buf);
	int e = errno;
	close(fd);
	errno = e;
	return n;
}

static void try_path(const char *try, int dirfd, const char *path) {
	long n = slurp(dirfd, path);
	report(try, n, errno);
}

static void read_proc_at(const char *root) {
	char path[256];
	for (size_t i = 0; i < sizeof PROC_FILES / sizeof *PROC_FILES; i++) {
		snprintf(path, sizeof path, "%s/%s", root, PROC_FILES[i]);
		try_path(path, AT_FDCWD, path);
	}
	for (size_t i = 0; i < sizeof PROC_DIRS / sizeof *PROC_DIRS; i++) {
		snprintf(path, sizeof path, "%s/%s", root, PROC_DIRS[i]);
		try_path(path, AT_FDCWD, path);
	}
}

/* a procfs of the app's own, where it can mount one: nothing over its files */
static void own_procfs(const char *how, unsigned long flags) {
	fflush(stdout);
	pid_t pid = fork();
	if (pid != 0) {
		waitpid(pid, NULL, 0);
		return;
	}
	if (flags && syscall(SYS_unshare, flags) < 0 &&
	    syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0) < 0) {
		printf("mount-proc:%s %s\n", how, strerrorname_np(errno));
		_exit(0);
	}
	if (flags & CLONE_NEWPID) { /* the PID namespace is the children's: be one */
		pid_t child = fork();
		if (child != 0) {
			waitpid(child, NULL, 0);
			_exit(0);
		}
	}
	mkdir("/tmp", 01777);
	mkdir("/tmp/procleak", 0700);
	if (mount("proc", "/tmp/procleak", "proc", 0, NULL) < 0) {
		printf("mount-proc:%s %s\n", how, strerrorname_np(errno));
		_exit(0);
	}
	printf("mount-proc:%s ESCAPED\n", how);
	read_proc_at("/tmp/procleak");
	_exit(0);
}

int main(void) {
	char path[256];
	read_proc_at("/proc");
	for (size_t i = 0; i < sizeof SYS_PATHS / sizeof *SYS_PATHS; i++)
		try_path(SYS_PATHS[i], AT_FDCWD, SYS_PATHS[i]);
	for (size_t i = 0; i < sizeof CONTROLS / sizeof *CONTROLS; i++)
		try_path(CONTROLS[i], AT_FDCWD, CONTROLS[i]);
	read_proc_at("/proc/self/..");
	read_proc_at("/proc/thread-self/../../..");
	read_proc_at("/proc/self/root/proc");
	read_proc_at("/proc/1/root/proc");
	read_proc_at("/proc/1/cwd/proc");
	int proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < sizeof PROC_FILES / sizeof *PROC_FILES; i++) {
		snprintf(path, sizeof path, "openat(/proc):%s", PROC_FILES[i]);
		try_path(path, proc, PROC_FILES[i]);
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", proc);
	read_proc_at(path);
	own_procfs("direct", 0);
	own_procfs("userns", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID);
	/* mountinfo names the host's directories the pod's mounts come from */
	FILE *info = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	int host = 0;
	while (info && fgets(line, sizeof line, info))
		host += strstr(line, "/var/lib/") != NULL || strstr(line, "/pods/") != NULL;
	printf("mountinfo-host-paths %d\n", host);
	printf("done 0\n");
	return 0;
}
