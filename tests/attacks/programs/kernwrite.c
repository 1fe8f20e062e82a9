/* kernwrite: change the kernel's knobs from an app (issue #26, item 2: the app profile's kernel
 * protections became read-only binds of the pod's /proc/sys and /sys, stage1/kernel_binds.py).
 * Opens every knob for writing (never writes: an open for writing is refused by a read-only mount
 * or a permission check, so a successful open is the hole) by every path shape: direct, through
 * /proc/self/.., /proc/thread-self, /proc/self/root, every /proc/PID/root it can see (other apps,
 * the pod's systemd), a /proc directory fd and symlinks of the image (/ks, /kcg). Then it tries to
 * get a writable tree: remount read-write, umount the covering bind, a procfs or sysfs of its own,
 * the new mount API (fsopen, fspick, open_tree, mount_setattr, move_mount); module loading and
 * syslog(2) by the x86-64, i386 and x32 ABIs. Prints `TRY RESULT` (ESCAPED, or the errno name).
 * It runs only inside pods. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const KNOBS[] = {
	"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/kernel/hostname",
	"/proc/sys/vm/drop_caches", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/core/somaxconn",
	"/proc/sys/fs/binfmt_misc/register", "/proc/sysrq-trigger", "/proc/irq/default_smp_affinity",
	"/proc/sys/kernel/sysrq", "/proc/kmsg", "/dev/kmsg", "/sys/kernel/uevent_helper",
	"/sys/kernel/mm/transparent_hugepage/enabled", "/sys/fs/cgroup/cgroup.procs",
	"/sys/fs/cgroup/cgroup.subtree_control", "/sys/power/state", "/sys/class/net/lo/mtu",
	"/sys/module/printk/parameters/time", "/sys/kernel/profiling",
};
/* read-only mount points that must stay read-only (statvfs ST_RDONLY) */
static const char *const TREES[] = {
	"/proc/sys", "/proc/sys/net", "/proc/sys/kernel", "/proc/sysrq-trigger", "/proc/irq",
	"/proc/bus", "/proc/fs", "/sys", "/sys/fs/cgroup", "/sys/kernel", "/sys/fs/bpf",
};

static void report(const char *how, const char *what, int ok, int e) {
	printf("%s:%s %s\n", how, what, ok ? "ESCAPED" : (strerrorname_np(e) ?: "EUNKNOWN"));
	fflush(stdout);
}

/* /dev/null bound over a knob (what hides /proc/kmsg): open, and harmless */
static int devnull(int fd) {
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

static void open_write(const char *how, int dirfd, const char *path, const char *name) {
	int fd = openat(dirfd, path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0 && devnull(fd))
		printf("%s:%s DEVNULL\n", how, name);
	else
		report(how, name, fd >= 0, errno);
	if (fd >= 0)
		close(fd);
}

static void knobs_under(const char *how, const char *prefix) {
	char path[512];
	for (size_t i = 0; i < sizeof KNOBS / sizeof *KNOBS; i++) {
		snprintf(path, sizeof path, "%s%s", prefix, KNOBS[i]);
		open_write(how, AT_FDCWD, path, KNOBS[i]);
	}
}

/* the app's own cgroup's files, in every hierarchy (v1 controllers, systemd's, v2): writable to
 * the pod's systemd, never to the app */
static void own_cgroup(void) {
	char line[512], path[900];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int tried = 0;
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *controllers = strchr(line, ':'), *rel = controllers ? strchr(controllers + 1, ':') : NULL;
		if (!rel)
			continue;
		*rel++ = 0;
		controllers++;
		char dir[256];
		if (!*controllers)
			snprintf(dir, sizeof dir, "%s", access("/sys/fs/cgroup/unified", F_OK) == 0 ? "unified" : "");
		else
			snprintf(dir, sizeof dir, "%s", strncmp(controllers, "name=", 5) == 0 ? controllers + 5 : controllers);
		const char *files[] = {"cgroup.procs", "tasks", "memory.max", "memory.limit_in_bytes", "pids.max",
				       "cgroup.subtree_control", "notify_on_release"};
		for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
			snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/%s", dir, rel, files[i]);
			int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd >= 0 || errno != ENOENT) {
				char name[1000];
				snprintf(name, sizeof name, "%s/%s", dir, files[i]);
				report("cgroup", name, fd >= 0, errno);
				tried++;
			}
			if (fd >= 0)
				close(fd);
		}
		snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/kernwrite-child", dir, rel);
		int made = mkdir(path, 0755);
		char name[300];
		snprintf(name, sizeof name, "%s/mkdir", dir);
		report("cgroup", name, made == 0, errno);
		if (made == 0)
			rmdir(path);
	}
	if (f)
		fclose(f);
	printf("cgroup:files %d\n", tried);
}

static void every_pid_root(void) {
	DIR *d = opendir("/proc");
	char prefix[300];
	int seen = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (!strchr("123456789", e->d_name[0]) || atoi(e->d_name) == getpid())
			continue;
		seen++;
		snprintf(prefix, sizeof prefix, "/proc/%s/root", e->d_name);
		for (size_t i = 0; i < sizeof KNOBS / sizeof *KNOBS; i++) {
			char path[700];
			snprintf(path, sizeof path, "%s%s", prefix, KNOBS[i]);
			int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			if (fd >= 0 && !devnull(fd)) { /* one line a hole; refusals summed below */
				printf("pidroot:%s%s ESCAPED\n", prefix, KNOBS[i]);
				close(fd);
			}
		}
	}
	if (d)
		closedir(d);
	printf("pidroot:seen %d\n", seen);
}

static void trees_read_only(void) {
	for (size_t i = 0; i < sizeof TREES / sizeof *TREES; i++) {
		struct statvfs sv;
		if (statvfs(TREES[i], &sv) < 0)
			report("rdonly", TREES[i], 0, errno);
		else
			printf("rdonly:%s %s\n", TREES[i], sv.f_flag & ST_RDONLY ? "RO" : "ESCAPED");
	}
}

static void rw_after(const char *how) { /* a mount call worked: is a knob writable now? */
	int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC);
	printf("%s:after %s\n", how, fd >= 0 ? "ESCAPED" : "closed");
	if (fd >= 0)
		close(fd);
}

static void mounts(void) {
	mkdir("/tmp", 01777);
	mkdir("/tmp/kw", 0700);
	int r;
	r = mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL);
	report("mount", "remount-rw-proc-sys", r == 0, errno);
	r = mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND, NULL);
	report("mount", "remount-rw-sys", r == 0, errno);
	r = mount(NULL, "/sys/fs/cgroup", NULL, MS_REMOUNT | MS_BIND, NULL);
	report("mount", "remount-rw-cgroup", r == 0, errno);
	r = mount("/proc/sys", "/tmp/kw", NULL, MS_BIND, NULL);
	report("mount", "bind-proc-sys", r == 0, errno);
	r = mount("proc", "/tmp/kw", "proc", 0, NULL);
	report("mount", "procfs", r == 0, errno);
	r = mount("sysfs", "/tmp/kw", "sysfs", 0, NULL);
	report("mount", "sysfs", r == 0, errno);
	r = mount("cgroup2", "/tmp/kw", "cgroup2", 0, NULL);
	report("mount", "cgroup2", r == 0, errno);
	r = mount("tmpfs", "/proc/sys/kernel", "tmpfs", 0, NULL);
	report("mount", "over-proc-sys-kernel", r == 0, errno);
	r = umount2("/proc/sys", MNT_DETACH);
	report("umount", "proc-sys", r == 0, errno);
	if (r == 0)
		rw_after("umount-proc-sys");
	r = umount2("/sys/fs/cgroup", MNT_DETACH);
	report("umount", "cgroup", r == 0, errno);
	r = umount2("/proc/kmsg", MNT_DETACH);
	report("umount", "proc-kmsg", r == 0, errno);
	r = syscall(SYS_umount2, "/sys", MNT_DETACH);
	report("umount", "sys", r == 0, errno);
	/* the new mount API */
	r = syscall(SYS_fsopen, "proc", 0);
	report("newmount", "fsopen-proc", r >= 0, errno);
	r = syscall(SYS_fsopen, "sysfs", 0);
	report("newmount", "fsopen-sysfs", r >= 0, errno);
	r = syscall(SYS_fspick, AT_FDCWD, "/proc/sys", 0);
	report("newmount", "fspick-proc-sys", r >= 0, errno);
	r = syscall(SYS_open_tree, AT_FDCWD, "/proc", 1 /* OPEN_TREE_CLONE */ | O_CLOEXEC);
	report("newmount", "open_tree-clone-proc", r >= 0, errno);
	struct {
		unsigned long long set, clr, propagation, userns;
	} attr = {0, 1 /* MOUNT_ATTR_RDONLY */, 0, 0};
	r = syscall(SYS_mount_setattr, AT_FDCWD, "/proc/sys", 0x8000 /* AT_RECURSIVE */, &attr, sizeof attr);
	report("newmount", "mount_setattr-rw-proc-sys", r == 0, errno);
	if (r == 0)
		rw_after("mount_setattr");
	r = syscall(SYS_mount_setattr, AT_FDCWD, "/sys", 0x8000, &attr, sizeof attr);
	report("newmount", "mount_setattr-rw-sys", r == 0, errno);
	r = syscall(SYS_move_mount, AT_FDCWD, "/proc/sys", AT_FDCWD, "/tmp/kw", 0);
	report("newmount", "move_mount-proc-sys", r == 0, errno);
}

/* i386 int 0x80: eax = number, ebx, ecx, edx */
static long int80(long nr, long a, long b, long c) {
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

static void ret_report(const char *what, long r) { /* raw return: -errno */
	int e = r < 0 ? (int)-r : 0;
	/* the filter says EPERM; the kernel's own checks past it (a bad image, a bad fd) are a hole */
	printf("module:%s %s\n", what, e == EPERM ? "EPERM" : e == ENOSYS ? "ENOSYS" : "ESCAPED");
	fflush(stdout);
}

static void modules(void) {
	static char image[64] = "not an ELF module";
	long r;
	r = syscall(SYS_init_module, image, sizeof image, "");
	ret_report("init_module", r < 0 ? -errno : r);
	r = syscall(SYS_finit_module, 0, "", 0);
	ret_report("finit_module", r < 0 ? -errno : r);
	r = syscall(SYS_delete_module, "kernwrite_none", O_NONBLOCK);
	ret_report("delete_module", r < 0 ? -errno : r);
	r = syscall(SYS_syslog, 3 /* READ_ALL */, image, sizeof image);
	ret_report("syslog-read", r < 0 ? -errno : 0);
	r = syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0);
	ret_report("syslog-size", r < 0 ? -errno : 0);
	r = syscall(0x40000000 | SYS_init_module, image, sizeof image, "");
	ret_report("x32-init_module", r < 0 ? -errno : r);
	r = syscall(0x40000000 | SYS_finit_module, 0, "", 0);
	ret_report("x32-finit_module", r < 0 ? -errno : r);
	r = syscall(0x40000000 | SYS_syslog, 10, NULL, 0);
	ret_report("x32-syslog", r < 0 ? -errno : 0);
	/* i386: init_module 128, delete_module 129, syslog 103, finit_module 350 (32-bit pointers:
	 * the static image sits below 4 GiB) */
	ret_report("i386-init_module", int80(128, (long)(unsigned)(unsigned long)image, sizeof image, 0));
	ret_report("i386-finit_module", int80(350, 0, 0, 0));
	ret_report("i386-delete_module", int80(129, 0, 0, 0));
	ret_report("i386-syslog", int80(103, 10, 0, 0));
}

static void mountinfo(void) {
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	while (f && fgets(line, sizeof line, f)) {
		char *fields[6] = {0};
		char *save = NULL, *copy = strdup(line);
		int i = 0;
		for (char *t = strtok_r(copy, " ", &save); t && i < 6; t = strtok_r(NULL, " ", &save))
			fields[i++] = t;
		if (i == 6 && (strncmp(fields[4], "/proc", 5) == 0 || strncmp(fields[4], "/sys", 4) == 0))
			printf("mountinfo:%s %s\n", fields[4], strncmp(fields[5], "ro", 2) == 0 ? "RO" : "ESCAPED");
		free(copy);
	}
	if (f)
		fclose(f);
}

int main(void) {
	/* its mount calls detach /sys where they can: only in the image the test makes (never a host) */
	if (access("/kernwrite-image", F_OK) != 0) {
		fprintf(stderr, "kernwrite: not in its attack image, refused\n");
		return 2;
	}
	knobs_under("direct", "");
	knobs_under("dotdot", "/proc/self/../..");
	knobs_under("thread-self", "/proc/thread-self/../../../..");
	knobs_under("selfroot", "/proc/self/root");
	int proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	open_write("procfd", proc, "sys/kernel/core_pattern", "core_pattern");
	open_write("procfd", proc, "sysrq-trigger", "sysrq-trigger");
	char fdpath[64];
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d/sys/kernel/core_pattern", proc);
	open_write("procfdlink", AT_FDCWD, fdpath, "core_pattern");
	open_write("imagelink", AT_FDCWD, "/ks/core_pattern", "core_pattern");
	open_write("imagelink", AT_FDCWD, "/kcg/cgroup.procs", "cgroup.procs");
	open_write("imagelink", AT_FDCWD, "/ksysrq", "sysrq-trigger");
	own_cgroup();
	every_pid_root();
	trees_read_only();
	mountinfo();
	mounts();
	modules();
	printf("done 0\n");
	return 0;
}
