/* kwrite: try to get write access to the kernel's knobs an app sees read-only (its /proc/sys,
 * /sys, /proc/sysrq-trigger, /proc/{irq,bus,fs}: since issue #26 binds of the pod's own trees,
 * stage1/kernel_binds.py), by every path shape: the path, /proc/self/root, /proc/thread-self/root,
 * /proc/1/root, /proc/self/cwd after a chdir, a directory fd (openat), /proc/self/fd/N of an
 * O_PATH fd; then by undoing the mounts (umount, a read-write remount, a procfs or sysfs of its
 * own). Nothing is written: an open for writing is the escape (write-only knobs like
 * sysrq-trigger would act on the host). One line per try: "TRY RESULT", RESULT ESCAPED, MISSING
 * or the errno's name; "done 0" last. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const KNOBS[] = {
	"proc/sys/vm/overcommit_memory", "proc/sys/kernel/hostname", "proc/sys/net/ipv4/ip_forward",
	"proc/sys/net/core/somaxconn", "proc/sysrq-trigger", "proc/irq/default_smp_affinity",
	"sys/kernel/mm/transparent_hugepage/enabled", "sys/kernel/uevent_helper", "sys/fs/cgroup/cgroup.procs",
	"sys/fs/cgroup/unified/cgroup.procs", "sys/fs/cgroup/memory/memory.limit_in_bytes",
	"sys/class/net/lo/mtu", "sys/module/printk/parameters/time",
};
static const char *const ROOTS[] = {"", "/proc/self/root", "/proc/thread-self/root", "/proc/1/root"};

static void report(const char *try, int fd, int e) {
	if (fd >= 0)
		printf("%s ESCAPED\n", try);
	else if (e == ENOENT)
		printf("%s MISSING\n", try);
	else
		printf("%s %s\n", try, strerrorname_np(e) ?: "EUNKNOWN");
	fflush(stdout);
	if (fd >= 0)
		close(fd);
}

static void try_at(const char *try, int dirfd, const char *path) {
	int fd = openat(dirfd, path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	report(try, fd, errno);
}

static void every_shape(const char *knob) {
	char path[512], try[600];
	for (size_t r = 0; r < sizeof ROOTS / sizeof *ROOTS; r++) {
		snprintf(path, sizeof path, "%s/%s", ROOTS[r], knob);
		snprintf(try, sizeof try, "write:%s", path);
		try_at(try, AT_FDCWD, path);
	}
	/* a directory fd of the knob's parent, and the knob through /proc/self/fd of an O_PATH fd */
	snprintf(path, sizeof path, "/%s", knob);
	char *slash = strrchr(path, '/');
	*slash = 0;
	int dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(try, sizeof try, "write-at:/%s", knob);
	if (dir < 0)
		report(try, -1, errno);
	else {
		try_at(try, dir, slash + 1);
		if (chdir(path) == 0) {
			snprintf(try, sizeof try, "write-cwd:/%s", knob);
			snprintf(path, sizeof path, "/proc/self/cwd/%s", slash + 1);
			try_at(try, AT_FDCWD, path);
			(void)chdir("/");
		}
		close(dir);
	}
	snprintf(path, sizeof path, "/%s", knob);
	int opath = open(path, O_PATH | O_CLOEXEC);
	snprintf(try, sizeof try, "write-fd:/%s", knob);
	if (opath < 0)
		report(try, -1, errno);
	else {
		snprintf(path, sizeof path, "/proc/self/fd/%d", opath);
		try_at(try, AT_FDCWD, path);
		close(opath);
	}
}

/* undo a bind (what lies beneath a read-only bind would be the app's fresh, writable tree), or
 * remount it writable, or mount a tree of its own; each in a child, then the knobs again */
static void undo(const char *how) {
	fflush(stdout);
	pid_t pid = fork();
	if (pid != 0) {
		waitpid(pid, NULL, 0);
		return;
	}
	long r;
	if (strcmp(how, "umount-proc-sys") == 0)
		r = umount2("/proc/sys", MNT_DETACH);
	else if (strcmp(how, "umount-sys") == 0)
		r = umount2("/sys", MNT_DETACH);
	else if (strcmp(how, "remount-proc-sys") == 0)
		r = mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL);
	else if (strcmp(how, "remount-sys") == 0)
		r = mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND, NULL);
	else if (strcmp(how, "own-sysfs") == 0)
		r = mount("sysfs", "/tmp", "sysfs", 0, NULL);
	else /* a user namespace first, then its own mount namespace: what would make the rest possible */
		r = syscall(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS);
	printf("%s %s\n", how, r == 0 ? "ESCAPED" : (strerrorname_np(errno) ?: "EUNKNOWN"));
	if (r == 0)
		for (size_t k = 0; k < sizeof KNOBS / sizeof *KNOBS; k++) {
			char try[600];
			snprintf(try, sizeof try, "%s:write:/%s", how, KNOBS[k]);
			try_at(try, AT_FDCWD, KNOBS[k]);
		}
	fflush(stdout);
	_exit(0);
}

int main(void) {
	if (chdir("/") != 0)
		return 1;
	/* a control: a file of the app's own opens for writing (the tries could fail for any reason) */
	int own = open("/kwrite-control", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	report("write:/kwrite-control", own, errno);
	for (size_t k = 0; k < sizeof KNOBS / sizeof *KNOBS; k++)
		every_shape(KNOBS[k]);
	const char *const undos[] = {"umount-proc-sys", "umount-sys", "remount-proc-sys", "remount-sys",
				     "own-sysfs", "unshare-user-mnt"};
	for (size_t u = 0; u < sizeof undos / sizeof *undos; u++)
		undo(undos[u]);
	printf("done 0\n");
	return 0;
}
