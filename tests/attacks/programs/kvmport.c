/* kvmport: from an app of a kvm pod, speak on the VM's wires to the host: the control port (where
 * the guest reports the pod's exit code), the serial console (the host's journal and `nspod run`'s
 * output), hvc consoles. By every way to a character device: the nodes the app's /dev has, the
 * /dev/virtio-ports names, and nodes of its own made with mknod from the numbers /sys/class gives.
 * An open for writing is the hole; then it writes a forged report ("exit 0") and a flood, which
 * the test sees in the pod's code. Also: a file capability set on its root (a host file through
 * virtiofsd). Then it exits 3: the pod's code must be 3. One line a try: TRY RESULT. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static void result(const char *try, int ok, int e) {
	printf("%s %s\n", try, ok ? "ESCAPED" : (strerrorname_np(e) ?: "EUNKNOWN"));
	fflush(stdout);
}

static void speak(const char *try, const char *path) {
	int fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	result(try, fd >= 0, errno);
	if (fd < 0)
		return;
	static char flood[65536];
	memset(flood, 'z', sizeof flood);
	(void)!write(fd, "exit 0\n", 7);
	(void)!write(fd, flood, sizeof flood);
	(void)!write(fd, "\nexit 0\n", 8);
	close(fd);
}

/* every device a /sys/class directory lists, by a node of the app's own */
static void own_nodes(const char *class) {
	char dir[128], path[600], line[64];
	snprintf(dir, sizeof dir, "/sys/class/%s", class);
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s/dev", dir, e->d_name);
		FILE *f = fopen(path, "re");
		unsigned major, minor;
		if (!f || !fgets(line, sizeof line, f) || sscanf(line, "%u:%u", &major, &minor) != 2) {
			if (f)
				fclose(f);
			continue;
		}
		fclose(f);
		char node[300], try[400];
		snprintf(node, sizeof node, "/tmp/kvmport-%s", e->d_name);
		unlink(node);
		snprintf(try, sizeof try, "mknod:%s", e->d_name);
		if (mknod(node, S_IFCHR | 0600, makedev(major, minor)) < 0) {
			result(try, 0, errno);
			continue;
		}
		n++;
		snprintf(try, sizeof try, "ownnode:%s", e->d_name);
		speak(try, node);
		unlink(node);
	}
	if (d)
		closedir(d);
	printf("class:%s %d\n", class, n);
}

int main(void) {
	char path[300], try[400];
	mkdir("/tmp", 01777);
	for (int dev = 0; dev < 4; dev++)
		for (int port = 0; port < 4; port++) {
			snprintf(path, sizeof path, "/dev/vport%dp%d", dev, port);
			snprintf(try, sizeof try, "dev:vport%dp%d", dev, port);
			if (access(path, F_OK) == 0)
				speak(try, path);
		}
	speak("dev:virtio-ports/nspod.ctl", "/dev/virtio-ports/nspod.ctl");
	speak("dev:ttyS0", "/dev/ttyS0");
	speak("dev:hvc0", "/dev/hvc0");
	speak("dev:console", "/dev/console");
	speak("dev:kmsg", "/dev/kmsg");
	own_nodes("virtio-ports");
	own_nodes("tty");
	/* a file capability on a file of its root: virtiofsd would set it on the host's file */
	int fd = open("/tmp/kvmport-cap", O_CREAT | O_WRONLY | O_CLOEXEC, 0755);
	if (fd >= 0)
		close(fd);
	/* VFS_CAP_REVISION_2, CAP_SYS_ADMIN permitted+effective */
	unsigned int cap[5] = {0x02000001, 1u << 21, 0, 0, 0};
	result("xattr:security.capability", setxattr("/tmp/kvmport-cap", "security.capability", cap, sizeof cap, 0) == 0,
	       errno);
	result("xattr:trusted", setxattr("/tmp/kvmport-cap", "trusted.overlay.opaque", "y", 1, 0) == 0, errno);
	printf("done 3\n");
	fflush(stdout);
	return 3;
}
