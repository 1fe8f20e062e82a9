/* kvmreach MARKER TOKEN: from an app of a kvm pod, reach the host. MARKER is a host file (in the
 * pod's data directory), TOKEN-host a word in the command line of a host process (built here, so
 * that our own command line does not hold it). Tries every path
 * shape to the marker, the host's processes in /proc, a mount of the pod tree's virtiofs tag, the
 * VM's control ports, and the guest PID 1's root (the shared tree). One line a try: TRY RESULT. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void result(const char *try, int ok) {
    const char *name = strerrorname_np(errno);
    printf("%s %s\n", try, ok ? "ESCAPED" : name ? name : "EUNKNOWN");
}

static void opened(const char *try, const char *path, int flags) {
    int fd = open(path, flags);
    result(try, fd >= 0);
    if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
    char path[4096];
    const char *shapes[] = {"", "/proc/self/root", "/proc/1/root", "/proc/thread-self/root", "/../../..", "/proc/self/cwd/../../.."};
    if (argc < 3) return 2;
    for (unsigned i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        char try[256];
        snprintf(path, sizeof path, "%s%s", shapes[i], argv[1]);
        snprintf(try, sizeof try, "marker:%s", shapes[i][0] ? shapes[i] : "plain");
        opened(try, path, O_RDONLY);
    }
    /* the host's processes: TOKEN in any command line here */
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    int seen = 0;
    char token[256];
    snprintf(token, sizeof token, "%s-host", argv[2]);
    while (proc && (entry = readdir(proc))) {
        char line[4096] = {0};
        snprintf(path, sizeof path, "/proc/%s/cmdline", entry->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, line, sizeof line - 1);
        close(fd);
        for (ssize_t i = 0; i < n; i++) if (!line[i]) line[i] = ' ';
        if (n > 0 && strstr(line, token)) seen = 1;
    }
    errno = ENOENT;
    result("hostproc", seen);
    mkdir("/tmp/vfs", 0700);
    result("mount:virtiofs", mount("nspod-root", "/tmp/vfs", "virtiofs", 0, NULL) == 0);
    result("mount:proc", mount("proc", "/tmp/vfs", "proc", 0, NULL) == 0);
    for (int port = 0; port < 4; port++) {
        char try[64];
        snprintf(path, sizeof path, "/dev/vport%dp1", port);
        snprintf(try, sizeof try, "port:vport%dp1", port);
        opened(try, path, O_WRONLY);
    }
    opened("port:hvc0", "/dev/hvc0", O_WRONLY);
    opened("pid1root:status", "/proc/1/root/nspod/status", O_RDONLY | O_DIRECTORY);
    opened("pid1root:usr", "/proc/1/root/usr", O_RDONLY | O_DIRECTORY);
    opened("pid1root:tree", "/proc/1/root/opt/stage2", O_RDONLY | O_DIRECTORY);
    opened("control:self", "/proc/self/status", O_RDONLY);
    return 0;
}
