/* capsbound: what a container without CAP_SYS_ADMIN and the other host capabilities must be refused
 * whether or not a system call filter is there (the CRI's unconfined seccomp: capabilities are the
 * boundary then), and what nspod's default filter refuses besides (keyctl).
 *
 * Each try prints `TRY ESCAPED` (the call worked) or `TRY ERRNO`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void report(const char *try, long result) {
	printf("%s %s\n", try, result < 0 ? (strerrorname_np(errno) ?: "EUNKNOWN") : "ESCAPED");
	fflush(stdout);
}

int main(void) {
	struct timeval now;
	gettimeofday(&now, NULL);
	report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
	report("umount", umount2("/proc", MNT_DETACH));
	report("unshare-mnt", unshare(CLONE_NEWNS));
	report("unshare-net", unshare(CLONE_NEWNET));
	report("sethostname", sethostname("escaped", 7));
	report("finit_module", syscall(SYS_finit_module, 0, "", 0));
	report("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, NULL));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY));
	report("ptrace", ptrace(PTRACE_ATTACH, 1, NULL, NULL));
	report("settimeofday", settimeofday(&now, NULL));
	report("swapon", swapon("/tmp/none", 0));
	report("iopl", iopl(3));
	report("keyctl", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "escaped"));
	return 0;
}
