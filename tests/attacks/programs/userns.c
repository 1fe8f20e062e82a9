/* userns: make namespaces and io_uring instances by every call that can (issue #23, item 4).
 *
 * Each try runs in a child of its own and prints `TRY ESCAPED` (a namespace was made, a call reached
 * the kernel) or `TRY ERRNO`. Where a user namespace was made the child shows what it gained: its
 * uid_map written, full capabilities, an nf_tables table made in a new network namespace (the
 * precondition of CVE-2022-1015, CVE-2023-32233, CVE-2024-1086). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *try, const char *result) {
	printf("%s %s\n", try, result);
	fflush(stdout);
}

static const char *err(long e) { return strerrorname_np((int)e) ?: "EUNKNOWN"; }

static int write_file(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int n = write(fd, text, strlen(text));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

/* NFT_MSG_NEWTABLE in a batch, as nft(8) sends it: 0 when the table was made */
static int nft_table(void) {
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (s < 0)
		return -errno;
	struct timeval tv = {.tv_sec = 3};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char buf[512] __attribute__((aligned(4))) = {0};
	size_t off = 0;
	uint16_t types[3] = {NFNL_MSG_BATCH_BEGIN, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE,
			     NFNL_MSG_BATCH_END};
	for (int i = 0; i < 3; i++) {
		struct nlmsghdr *nh = (struct nlmsghdr *)(buf + off);
		struct nfgenmsg *g = NLMSG_DATA(nh);
		nh->nlmsg_type = types[i];
		nh->nlmsg_seq = i + 1;
		nh->nlmsg_flags = NLM_F_REQUEST;
		nh->nlmsg_len = NLMSG_LENGTH(sizeof *g);
		g->version = NFNETLINK_V0;
		if (i == 1) {
			g->nfgen_family = NFPROTO_INET;
			nh->nlmsg_flags |= NLM_F_CREATE | NLM_F_ACK;
			struct nlattr *a = (struct nlattr *)((char *)g + NLMSG_ALIGN(sizeof *g));
			a->nla_type = NFTA_TABLE_NAME;
			a->nla_len = NLA_HDRLEN + sizeof "nspod";
			memcpy((char *)a + NLA_HDRLEN, "nspod", sizeof "nspod");
			nh->nlmsg_len = NLMSG_LENGTH(NLMSG_ALIGN(sizeof *g) + NLA_ALIGN(a->nla_len));
		} else {
			g->nfgen_family = AF_UNSPEC;
			g->res_id = htons(NFNL_SUBSYS_NFTABLES);
		}
		off += NLMSG_ALIGN(nh->nlmsg_len);
	}
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	if (sendto(s, buf, off, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
		int e = -errno;
		close(s);
		return e;
	}
	for (;;) {
		char in[4096] __attribute__((aligned(4)));
		ssize_t n = recv(s, in, sizeof in, 0);
		if (n < 0) {
			int e = -errno;
			close(s);
			return e;
		}
		for (struct nlmsghdr *nh = (struct nlmsghdr *)in; NLMSG_OK(nh, n); nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_type == NLMSG_ERROR && nh->nlmsg_seq == 2) {
				close(s);
				return ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
			}
		}
	}
}

/* in the child, in its new user namespace: what it can do there */
static void gains(const char *try, unsigned long flags, uid_t uid, gid_t gid) {
	char name[160], map[64];
	snprintf(map, sizeof map, "0 %u 1\n", uid);
	int e = write_file("/proc/self/uid_map", map);
	snprintf(name, sizeof name, "%s+uid_map", try);
	say(name, e ? err(-e) : "ESCAPED");
	write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof map, "0 %u 1\n", gid);
	write_file("/proc/self/gid_map", map);
	FILE *status = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long capeff = 0;
	while (status && fgets(line, sizeof line, status))
		sscanf(line, "CapEff: %llx", &capeff);
	snprintf(name, sizeof name, "%s+cap_sys_admin", try);
	say(name, capeff & (1ULL << 21) ? "ESCAPED" : "ENOTCAPABLE");
	if (flags & CLONE_NEWNET) {
		snprintf(name, sizeof name, "%s+nf_tables", try);
		e = nft_table();
		say(name, e ? err(-e) : "ESCAPED");
	}
}

/* the raw calls that make a child in new namespaces (each as fork: no new stack) */
static long clone_raw(unsigned long flags) { return syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0); }

static long clone3_raw(unsigned long flags) {
	struct clone_args args = {.flags = flags, .exit_signal = SIGCHLD};
	return syscall(SYS_clone3, &args, sizeof args);
}

#ifdef __x86_64__
static long clone_i386(unsigned long flags) {
	/* the 32-bit ABI from a 64-bit process (int 0x80, __NR_clone 120): a filter made for
	 * x86-64 alone does not see it */
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "0"(120L), "b"(flags | SIGCHLD), "c"(0L), "d"(0L), "S"(0L), "D"(0L)
			 : "memory", "r8", "r9", "r10", "r11");
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

/* clone3 by the i386 ABI (__NR_clone3 435 there too): its argument must lie below 4 GiB, as a
 * static binary's data does */
static struct clone_args low_args;

static long clone3_i386(unsigned long flags) {
	low_args = (struct clone_args){.flags = flags, .exit_signal = SIGCHLD};
	if ((uintptr_t)&low_args >> 32) {
		errno = EFAULT;
		return -1;
	}
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "0"(435L), "b"((long)(uintptr_t)&low_args), "c"((long)sizeof low_args)
			 : "memory", "r8", "r9", "r10", "r11");
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

#endif

typedef long (*maker)(unsigned long);

static void try_clone(const char *how, maker make, const char *kind, unsigned long flags) {
	char try[128];
	snprintf(try, sizeof try, "%s:%s", how, kind);
	uid_t uid = geteuid();
	gid_t gid = getegid();
	fflush(stdout);
	long pid = make(flags);
	if (pid < 0) {
		say(try, err(errno));
		return;
	}
	if (pid == 0) {
		say(try, "ESCAPED");
		if (flags & CLONE_NEWUSER)
			gains(try, flags, uid, gid);
		_exit(0);
	}
	waitpid((pid_t)pid, NULL, 0);
}

static void try_unshare(const char *kind, unsigned long flags) {
	char try[128];
	snprintf(try, sizeof try, "unshare:%s", kind);
	uid_t uid = geteuid();
	gid_t gid = getegid();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (unshare(flags) < 0) {
			say(try, err(errno));
			_exit(0);
		}
		say(try, "ESCAPED");
		if (flags & CLONE_NEWUSER)
			gains(try, flags, uid, gid);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void try_setns(const char *owner, const char *ns) {
	char try[128], path[64];
	snprintf(path, sizeof path, "/proc/%s/ns/%s", owner, ns);
	snprintf(try, sizeof try, "setns:%s", path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say(try, err(errno));
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		say(try, setns(fd, 0) < 0 ? err(errno) : "ESCAPED");
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	close(fd);
}

static void try_io_uring(void) {
	struct io_uring_params params = {0};
	long fd = syscall(SYS_io_uring_setup, 4, &params);
	say("io_uring_setup", fd < 0 ? err(errno) : "ESCAPED");
	/* with no ring, a call that reaches the kernel says EBADF: the kernel's code was reached */
	long r = syscall(SYS_io_uring_enter, fd < 0 ? -1 : fd, 0, 0, 0, NULL, 0);
	say("io_uring_enter", r < 0 && errno != EBADF ? err(errno) : "ESCAPED");
	char probe[sizeof(struct io_uring_probe) + 64 * sizeof(struct io_uring_probe_op)] = {0};
	r = syscall(SYS_io_uring_register, fd < 0 ? -1 : fd, IORING_REGISTER_PROBE, probe, 64);
	say("io_uring_register", r < 0 && errno != EBADF ? err(errno) : "ESCAPED");
	if (fd >= 0)
		close((int)fd);
#ifdef __x86_64__
	/* the i386 ABI's io_uring_setup (425 there too), its parameters below 4 GiB */
	static struct io_uring_params low_params;
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "0"(425L), "b"(4L), "c"((long)(uintptr_t)&low_params)
			 : "memory", "r8", "r9", "r10", "r11");
	say("io_uring_setup-i386", ret >= 0 ? "ESCAPED" : err(-ret));
	if (ret >= 0)
		close((int)ret);
#endif
}

static const struct {
	const char *name;
	unsigned long flags;
} KINDS[] = {
	{"user", CLONE_NEWUSER},
	{"user+net", CLONE_NEWUSER | CLONE_NEWNET},
	{"user+mnt+pid", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID},
	{"mnt", CLONE_NEWNS},
	{"net", CLONE_NEWNET},
	{"pid", CLONE_NEWPID},
	{"ipc", CLONE_NEWIPC},
	{"uts", CLONE_NEWUTS},
	{"cgroup", CLONE_NEWCGROUP},
	{"time", CLONE_NEWTIME},
};

int main(void) {
	static const char *const NAMESPACES[] = {"user", "mnt", "net", "pid", "ipc",
						 "uts",  "cgroup", "time"};
	for (size_t i = 0; i < sizeof KINDS / sizeof *KINDS; i++) {
		/* clone's low byte is the exit signal: CLONE_NEWTIME (0x80) only by clone3 and unshare */
		if (KINDS[i].flags != CLONE_NEWTIME) {
			try_clone("clone", clone_raw, KINDS[i].name, KINDS[i].flags);
#ifdef __x86_64__
			try_clone("clone-i386", clone_i386, KINDS[i].name, KINDS[i].flags);
#endif
		}
		try_clone("clone3", clone3_raw, KINDS[i].name, KINDS[i].flags);
#ifdef __x86_64__
		try_clone("clone3-i386", clone3_i386, KINDS[i].name, KINDS[i].flags);
#endif
		try_unshare(KINDS[i].name, KINDS[i].flags);
	}
	for (size_t i = 0; i < sizeof NAMESPACES / sizeof *NAMESPACES; i++) {
		try_setns("1", NAMESPACES[i]);  /* the pod's systemd */
		try_setns("self", NAMESPACES[i]);
	}
	try_io_uring();
	say("done", "0");
	return 0;
}
