/* nspod-pidns: an app as PID 1 of a PID namespace of its own (the CRI's pid CONTAINER), inside the
 * confinement its unit gave it (stage1/pidns.py plans the unit; this is the part systemd 252 has no
 * setting for: PrivatePIDs= came with 257).
 *
 *   nspod-pidns [--join=PID] [--drop=CAP,...] [--deny=CALL,...] [--errno=N] [--restrict] [--chdir=DIR] -- CMD...
 *   nspod-pidns --no-pidns --chdir=DIR -- CMD...
 *
 * --chdir: the app's working directory, entered last, as the app itself (its user, capabilities
 * and filter), never by systemd: systemd 252 enters WorkingDirectory= while it still holds every
 * capability, so an image's directory that is a link to /proc/1/root led the app into the pod's
 * own tree (a magic link the app's own chdir may not follow). --no-pidns: only that.
 *
 * It runs as the unit's main process, already in the app's root, user, seccomp filter and bounding
 * set, which the unit widened by just what this needs (CAP_SYS_ADMIN, CAP_SETPCAP, the calls
 * below, pid and mnt namespaces). It makes a PID namespace (--join: enters the one whose PID 1 is
 * the child of PID, an exec into the app) and a mount namespace, forks, and the child, PID 1 there
 * (or a process of the app's namespace), mounts /proc afresh with every mount the unit had below
 * /proc (hidden and read-only kernel paths) put back on it, so /proc shows that namespace alone,
 * as guarded as before. Then the child gives back what was widened: the calls of --deny fail with
 * --errno again (a filter stacked on the unit's), namespaces stay unmakeable (--restrict), the
 * capabilities of --drop leave its bounding, ambient, permitted and effective sets, and it execs
 * CMD. The parent passes signals on and exits as the child did.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_MOUNTS 128
#define X32_BIT 0x40000000u

struct call { const char *name; unsigned x86_64, i386; };
/* the calls the unit allows this helper beyond the app's filter */
static const struct call CALLS[] = {
	{"mount", 165, 21}, {"umount2", 166, 52}, {"unshare", 272, 310},
	{"setns", 308, 346}, {"open_tree", 428, 428}, {"move_mount", 429, 429},
};
#define N_CALLS (sizeof(CALLS) / sizeof(CALLS[0]))

static void die(const char *what) {
	fprintf(stderr, "nspod-pidns: %s: %s\n", what, strerror(errno));
	_exit(127);
}

static void die_at(const char *doing, const char *path) {
	fprintf(stderr, "nspod-pidns: %s %s: %s\n", doing, path, strerror(errno));
	_exit(127);
}

static void fail(const char *what) {
	fprintf(stderr, "nspod-pidns: %s\n", what);
	_exit(127);
}

/* the mount points of what is mounted on /proc itself (what is mounted on those comes with them),
 * each once, in mountinfo's order */
static int proc_mounts(char *paths[], int max) {
	FILE *file = fopen("/proc/self/mountinfo", "re");
	char line[4096], point[4096];
	int n = 0, id, parent, proc = -1;
	if (!file)
		die("reading /proc/self/mountinfo");
	while (fgets(line, sizeof line, file)) /* the top mount at /proc */
		if (sscanf(line, "%d %d %*s %*s %4095s", &id, &parent, point) == 3 && !strcmp(point, "/proc"))
			proc = id;
	/* an image whose /proc is a link has systemd mount proc and its guards where the link leads:
	 * a proc mounted on the link would be unguarded, so there must be a mount on /proc itself */
	if (proc == -1)
		fail("no mount on /proc itself (is the image's /proc a link?): refusing to mount one");
	rewind(file);
	while (fgets(line, sizeof line, file)) {
		if (sscanf(line, "%d %d %*s %*s %4095s", &id, &parent, point) != 3 || parent != proc)
			continue;
		int seen = 0;
		for (int i = 0; i < n; i++)
			seen |= !strcmp(paths[i], point);
		if (seen)
			continue;
		if (n == max || strchr(point, '\\') || strncmp(point, "/proc/", 6))
			fail("too many or oddly named mounts on /proc");
		paths[n++] = strdup(point);
	}
	fclose(file);
	return n;
}

/* /proc of the namespace this process is in, with the unit's mounts below it as they were */
static void fresh_proc(void) {
	char *paths[MAX_MOUNTS];
	int trees[MAX_MOUNTS];
	struct stat st;
	if (lstat("/proc", &st) || !S_ISDIR(st.st_mode))
		fail("/proc is not a directory (an image's /proc must be one)");
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL))
		die("making the mounts slaves");
	int n = proc_mounts(paths, MAX_MOUNTS);
	for (int i = 0; i < n; i++)
		if ((trees[i] = syscall(SYS_open_tree, AT_FDCWD, paths[i], 1 /* OPEN_TREE_CLONE */ | O_CLOEXEC | AT_RECURSIVE)) < 0)
			die_at("cloning the mount at", paths[i]);
	if (umount2("/proc", MNT_DETACH | UMOUNT_NOFOLLOW))
		die("unmounting the old /proc");
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		die("mounting /proc");
	for (int i = 0; i < n; i++)
		if (syscall(SYS_move_mount, trees[i], "", AT_FDCWD, paths[i], 4 /* MOVE_MOUNT_F_EMPTY_PATH */))
			die_at("putting back the mount at", paths[i]);
}

static struct sock_filter program[64];
static int length;

static void emit(struct sock_filter op) {
	if (length == (int)(sizeof program / sizeof program[0]))
		fail("filter too long");
	program[length++] = op;
}

/* one architecture's checks: A holds the call's number */
static void checks(int i386, const int deny[], unsigned errno_value, int restrict_ns) {
	const unsigned ns_flags = CLONE_NEWNS | CLONE_NEWPID;
	for (unsigned i = 0; i < N_CALLS; i++)
		if (deny[i]) {
			emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, i386 ? CALLS[i].i386 : CALLS[i].x86_64, 0, 1));
			emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | errno_value));
		}
	if (restrict_ns) {
		emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 435 /* clone3 */, 0, 1));
		emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
		emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, i386 ? 120 : 56 /* clone */, 0, 3));
		emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])));
		emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, ns_flags, 0, 1));
		emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
	}
	emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
}

/* what the unit allowed for this helper alone, denied again (a filter stacked on the unit's) */
static void refilter(const int deny[], unsigned errno_value, int restrict_ns) {
	emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
	emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
	int to_i386 = length;
	emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, 0));
	emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
	emit((struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~X32_BIT)); /* x32: the same numbers */
	checks(0, deny, errno_value, restrict_ns);
	program[to_i386].jt = length - to_i386 - 1;
	program[to_i386].jf = length - to_i386 - 2; /* another ABI: the x86_64 part's last ALLOW */
	emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
	checks(1, deny, errno_value, restrict_ns);
	emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	struct sock_fprog fprog = {.len = (unsigned short)length, .filter = program};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog))
		die("loading the filter");
}

static void drop_capabilities(unsigned long long dropped) {
	struct __user_cap_header_struct head = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	for (int cap = 0; cap < 64; cap++)
		if (dropped >> cap & 1 && cap != CAP_SETPCAP && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
			die("dropping a capability from the bounding set");
	if (dropped >> CAP_SETPCAP & 1 && prctl(PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0))
		die("dropping CAP_SETPCAP from the bounding set");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
		die("clearing the ambient set");
	if (syscall(SYS_capget, &head, data))
		die("capget");
	for (int i = 0; i < 2; i++) {
		unsigned kept = ~(unsigned)(dropped >> (32 * i));
		data[i].effective &= kept, data[i].permitted &= kept, data[i].inheritable &= kept;
	}
	if (syscall(SYS_capset, &head, data))
		die("capset");
}

/* the working directory entered, then the command (systemd's exit status for a directory it cannot
 * enter: 200, CHDIR) */
static void run(char *command[], const char *directory) {
	if (directory && chdir(directory)) {
		fprintf(stderr, "nspod-pidns: changing to the working directory %s: %s\n", directory, strerror(errno));
		_exit(200);
	}
	execvp(command[0], command);
	fprintf(stderr, "nspod-pidns: %s: %s\n", command[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static pid_t child;

static void pass_on(int signal_number) {
	if (child > 0)
		kill(child, signal_number);
}

static int parent(void) {
	static const int passed[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
	struct sigaction action = {.sa_handler = pass_on, .sa_flags = SA_RESTART};
	for (unsigned i = 0; i < sizeof passed / sizeof passed[0]; i++)
		sigaction(passed[i], &action, NULL);
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			die("waiting");
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	signal(WTERMSIG(status), SIG_DFL);
	kill(getpid(), WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

int main(int argc, char *argv[]) {
	int deny[N_CALLS] = {0}, restrict_ns = 0, i;
	unsigned errno_value = EPERM;
	unsigned long long dropped = 0;
	const char *join = NULL, *directory = NULL;
	int pidns = 1;
	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		char *value = strchr(argv[i], '=');
		value = value ? value + 1 : "";
		if (!strncmp(argv[i], "--join=", 7))
			join = value;
		else if (!strncmp(argv[i], "--errno=", 8))
			errno_value = (unsigned)atoi(value) & SECCOMP_RET_DATA;
		else if (!strcmp(argv[i], "--restrict"))
			restrict_ns = 1;
		else if (!strncmp(argv[i], "--chdir=", 8))
			directory = value;
		else if (!strcmp(argv[i], "--no-pidns"))
			pidns = 0;
		else if (!strncmp(argv[i], "--drop=", 7))
			for (char *c = strtok(value, ","); c; c = strtok(NULL, ","))
				dropped |= 1ULL << (atoi(c) & 63);
		else if (!strncmp(argv[i], "--deny=", 7))
			for (char *c = strtok(value, ","); c; c = strtok(NULL, ",")) {
				unsigned k = 0;
				while (k < N_CALLS && strcmp(CALLS[k].name, c))
					k++;
				if (k == N_CALLS)
					fail("--deny names a call this helper does not use");
				deny[k] = 1;
			}
		else
			fail("usage: nspod-pidns [--join=PID] [--drop=CAP,...] [--deny=CALL,...] [--errno=N] [--restrict] [--chdir=DIR] -- CMD...");
	}
	if (i + 1 >= argc)
		fail("no command");
	if (!pidns)
		run(argv + i + 1, directory);
	if (join) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/ns/pid_for_children", atoi(join));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWPID))
			die("entering the app's PID namespace");
		close(fd);
		if (unshare(CLONE_NEWNS))
			die("unshare");
	} else if (unshare(CLONE_NEWPID | CLONE_NEWNS))
		die("unshare");
	child = fork();
	if (child < 0)
		die("fork");
	if (child > 0)
		return parent();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))
		die("PR_SET_PDEATHSIG");
	fresh_proc();
	refilter(deny, errno_value, restrict_ns);
	drop_capabilities(dropped);
	run(argv + i + 1, directory);
}
