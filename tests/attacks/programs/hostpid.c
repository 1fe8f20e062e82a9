/*
 * hostpid [MARKER PID]: looks for a host process (PID in the host's PID namespace, whose command
 * line holds MARKER) from inside a pod, by every way a process is reached by its number or found:
 * a scan of /proc, /proc/PID directly and through /proc/1/root and /proc/self/.., kill(PID, 0),
 * pidfd_open(PID), a procfs of its own, and the host's PID namespace through /proc/1/ns/pid.
 *
 * Prints `TRY ESCAPED` when the host's process was reached, `TRY OTHER` when PID named another
 * process (the pod's own numbers overlap the host's), else the errno name that stopped it (or
 * NONE when a scan found nothing). A pod that does not ask for the host's PID namespace (the CRI's
 * pid=POD, every nspod pod) must answer none of them ESCAPED.
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *marker;

/* whether the file (a /proc/N/cmdline) holds the marker; -1 with errno when it cannot be read */
static int holds_marker(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return -1;
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return strstr(buf, marker) != NULL;
}

static void report_file(const char *try, const char *path)
{
	int found = holds_marker(path);
	if (found < 0)
		printf("%s %s\n", try, strerrorname_np(errno) ?: "EUNKNOWN");
	else
		printf("%s %s\n", try, found ? "ESCAPED" : "OTHER");
}

static void scan(const char *try, const char *proc)
{
	DIR *dir = opendir(proc);
	if (!dir) {
		printf("%s %s\n", try, strerrorname_np(errno) ?: "EUNKNOWN");
		return;
	}
	struct dirent *entry;
	int found = 0;
	char path[512];
	while ((entry = readdir(dir)))
		if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') {
			snprintf(path, sizeof path, "%s/%s/cmdline", proc, entry->d_name);
			if (holds_marker(path) == 1 && getpid() != atoi(entry->d_name))
				found = 1;
		}
	closedir(dir);
	printf("%s %s\n", try, found ? "ESCAPED" : "NONE");
}

int main(int argc, char **argv)
{
	static char given[256];
	int pid = 0;
	if (argc >= 3) {
		marker = argv[1];
		pid = atoi(argv[2]);
	} else { /* the image's /hostpid-target: "MARKER PID" (an app is started without arguments) */
		FILE *target = fopen("/hostpid-target", "r");
		if (!target || fscanf(target, "%200s %d", given, &pid) != 2) {
			fprintf(stderr, "usage: hostpid MARKER PID, or /hostpid-target\n");
			return 2;
		}
		fclose(target);
		marker = given;
	}
	char path[256];

	scan("scan:/proc", "/proc");
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	report_file("read:/proc/PID", path);
	snprintf(path, sizeof path, "/proc/1/root/proc/%d/cmdline", pid);
	report_file("read:/proc/1/root/proc/PID", path);
	snprintf(path, sizeof path, "/proc/self/../%d/cmdline", pid);
	report_file("read:/proc/self/../PID", path);

	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	if (kill(pid, 0) == 0 || errno == EPERM)
		report_file("kill:PID", path); /* a process of that number: whose? */
	else
		printf("kill:PID %s\n", strerrorname_np(errno) ?: "EUNKNOWN");
	long fd = syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		report_file("pidfd_open:PID", path);
		close((int)fd);
	} else {
		printf("pidfd_open:PID %s\n", strerrorname_np(errno) ?: "EUNKNOWN");
	}

	/* a procfs of its own: it shows the PID namespace the process is in, nothing more */
	mkdir("/tmp/hostpid-proc", 0700);
	if (mount("proc", "/tmp/hostpid-proc", "proc", 0, NULL) == 0) {
		scan("mount-proc", "/tmp/hostpid-proc");
		umount2("/tmp/hostpid-proc", MNT_DETACH);
	} else {
		printf("mount-proc %s\n", strerrorname_np(errno) ?: "EUNKNOWN");
	}

	/* the PID namespace of the pod's PID 1 is the pod's own; an ancestor's cannot be joined */
	int ns = open("/proc/1/ns/pid", O_RDONLY | O_CLOEXEC);
	if (ns < 0) {
		printf("setns:/proc/1/ns/pid %s\n", strerrorname_np(errno) ?: "EUNKNOWN");
	} else if (syscall(SYS_setns, ns, CLONE_NEWPID) == 0) {
		pid_t child = fork();
		if (child == 0) {
			scan("setns:/proc/1/ns/pid", "/proc"); /* (its /proc is still the pod's) */
			_exit(0);
		}
		int status;
		waitpid(child, &status, 0);
	} else {
		printf("setns:/proc/1/ns/pid %s\n", strerrorname_np(errno) ?: "EUNKNOWN");
	}
	printf("done 0\n");
	fflush(stdout);
	return 0;
}
