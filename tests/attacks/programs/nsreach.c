/* What a CRI container reaches of other namespaces' IPC and processes, and whether it gets out of
 * its PID namespace by its /proc (tests/attacks/test_cri_namespaces.py).
 *
 *   nsreach ipc SHMID        the host's segment SHMID: shmctl(IPC_STAT), shmat
 *   nsreach pid PID MARKER   a process elsewhere: seen in /proc (a command line with MARKER),
 *                            kill(PID, 0) and kill(PID, SIGKILL) landing on it
 *   nsreach proc             mount a fresh /proc, unmount /proc, the new mount API, unshare, setns:
 *                            then, does /proc show the pod's systemd?
 */
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
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

static void result(const char *what, long ok) {
	if (ok >= 0)
		printf("%s ESCAPED\n", what);
	else
		printf("%s %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "ERROR");
	fflush(stdout);
}

/* the PID of a process whose command line holds marker, in this /proc; 0: none */
static int find(const char *marker) {
	DIR *proc = opendir("/proc");
	struct dirent *entry;
	int found = 0;
	while (proc && (entry = readdir(proc))) {
		char path[300], line[4096];
		int pid = atoi(entry->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, line, sizeof line - 1);
		close(fd);
		for (ssize_t i = 0; i < n; i++)
			line[i] = line[i] ? line[i] : ' ';
		line[n > 0 ? n : 0] = 0;
		if (strstr(line, marker))
			found = pid;
	}
	if (proc)
		closedir(proc);
	return found;
}

static int holds(int pid, const char *marker) {
	char path[64], line[4096];
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, line, sizeof line - 1);
	close(fd);
	for (ssize_t i = 0; i < n; i++)
		line[i] = line[i] ? line[i] : ' ';
	line[n > 0 ? n : 0] = 0;
	return strstr(line, marker) != NULL;
}

int main(int argc, char *argv[]) {
	if (argc == 3 && !strcmp(argv[1], "ipc")) {
		struct shmid_ds ds;
		int id = atoi(argv[2]);
		result("shm-stat", shmctl(id, IPC_STAT, &ds));
		void *at = shmat(id, NULL, SHM_RDONLY);
		result("shm-attach", at == (void *)-1 ? -1 : 0);
	} else if (argc == 4 && !strcmp(argv[1], "pid")) {
		int pid = atoi(argv[2]);
		int seen = find(argv[3]);
		printf("see %s\n", seen ? "ESCAPED" : "NONE");
		/* a number that is some process of our own here is no escape: only the target counts */
		if (kill(pid, 0) == 0 && !holds(pid, argv[3]))
			printf("signal OTHER\n");
		else
			result("signal", kill(pid, 0));
		if (seen)
			result("kill", kill(seen, SIGKILL));
		else
			printf("kill NONE\n");
	} else if (argc == 2 && !strcmp(argv[1], "proc")) {
		result("mount-proc", mount("proc", "/proc", "proc", 0, NULL));
		result("umount-proc", umount2("/proc", MNT_DETACH));
		result("fsopen-proc", syscall(SYS_fsopen, "proc", 0));
		result("open-tree", syscall(SYS_open_tree, AT_FDCWD, "/proc", 1 | 0x8000));
		result("unshare-pid", unshare(CLONE_NEWPID));
		result("unshare-mnt", unshare(CLONE_NEWNS));
		int fd = open("/proc/1/ns/pid", O_RDONLY);
		result("setns-pid", fd < 0 ? -1 : setns(fd, CLONE_NEWPID));
		printf("pod-systemd %s\n", find("systemd") ? "ESCAPED" : "NONE");
	} else {
		fprintf(stderr, "usage: nsreach ipc SHMID | pid PID MARKER | proc\n");
		return 2;
	}
	printf("done ok\n");
	return 0;
}
