/* probe: a tiny static program the tests run inside pods.
 *
 *   probe report              print env, uid/gid/groups, cwd, capability sets, seccomp mode and mounts
 *   probe notify MS [SLEEP]   after MS milliseconds send READY=1 to $NOTIFY_SOCKET, then sleep SLEEP s
 *   probe sleep S             sleep S seconds
 *   probe openw PATH…         open each PATH for writing (never writes) and print "openw PATH OK" or
 *                             "openw PATH ERRNO-NAME"; the kernel's settings stay untouched
 *   probe openr PATH…         open each PATH for reading: "openr PATH ERRNO-NAME", or "openr PATH OK N"
 *                             with N its entries (a directory) or bytes (the first 64 KiB of a file)
 *   probe sysfs               call the obsolete, unprivileged sysfs(2) ("sysfs OK" or "sysfs EPERM",
 *                             a seccomp filter's answer), and ptrace(2) on a process it does not
 *                             trace ("ptrace ESRCH", or EPERM from nspod's filter alone)
 *   probe limits              print "oom ADJ", "memory LIMIT" and "cpu QUOTA [PERIOD]" as the kernel
 *                             holds them for the probe (its cgroup, v1 or v2)
 *   probe read PATH…          print "read PATH LINE": each file's first line ("?" if unreadable)
 *   probe owner PATH…         print "owner PATH UID GID" as the probe sees each path's owner
 *   probe create PATH…        create each file (then remove it): "create PATH OK" or "create PATH ERRNO"
 *   probe makes               mknod a block device and /dev/mem's char device, mount a tmpfs, all in
 *                             its own root ("mknod-block EPERM", …); what succeeds is undone at once
 *   probe serve               answer each connection on the inherited sockets ($LISTEN_FDS) with
 *                             "probe fd=N name=NAME\n" ($LISTEN_FDNAMES), forever
 *   probe mds METHOD PATH [FORM] [BASE]
 *                             one HTTP/1.0 request to BASE (default $AC_METADATA_URL, http://IP:PORT/…)
 *                             followed by PATH, FORM as a urlencoded body; prints "status N", a
 *                             "type TYPE" line and the body
 *
 * Built by the tests with `gcc -static`; no libsystemd, so the sd_notify and sd_listen_fds
 * protocols are spoken by hand, as an app in an image would.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <unistd.h>

extern char **environ;

static int report(void) {
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    gid_t groups[64];
    int n = getgroups(64, groups);
    printf("uid %d\ngid %d\ngroups", (int)getuid(), (int)getgid());
    for (int i = 0; i < n; i++) printf(" %d", (int)groups[i]);
    char cwd[4096];
    printf("\ncwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    FILE *status = fopen("/proc/self/status", "r");
    char line[512];
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "CapEff:", 7) == 0) printf("capeff %s", line + 8);
        else if (strncmp(line, "CapBnd:", 7) == 0) printf("capbnd %s", line + 8);
        else if (strncmp(line, "CapPrm:", 7) == 0) printf("capprm %s", line + 8);
        else if (strncmp(line, "CapAmb:", 7) == 0) printf("capamb %s", line + 8);
        else if (strncmp(line, "Seccomp:", 8) == 0) printf("seccomp %s", line + 9);
        else if (strncmp(line, "NoNewPrivs:", 11) == 0) printf("nonewprivs %s", line + 12);
    if (status) fclose(status);
    FILE *mounts = fopen("/proc/self/mountinfo", "r");
    while (mounts && fgets(line, sizeof line, mounts)) {
        char *field = line;
        for (int i = 0; i < 4 && field; i++) field = strchr(field, ' ') ? strchr(field, ' ') + 1 : NULL;
        if (field) { *strchr(field, ' ') = 0; printf("mount %s\n", field); }
    }
    if (mounts) fclose(mounts);
    return 0;
}

static int notify(const char *message) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) { fprintf(stderr, "probe: no NOTIFY_SOCKET\n"); return 1; }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof addr.sun_path) return 1;
    memcpy(addr.sun_path, path, len);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 1;
    ssize_t sent = sendto(fd, message, strlen(message), 0, (struct sockaddr *)&addr,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
    if (sent < 0) { perror("probe: sd_notify"); return 1; }
    return 0;
}

static const char *errno_name(int e) {
    switch (e) {
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case ENOSYS: return "ENOSYS";
    case ENXIO: return "ENXIO";
    case EINVAL: return "EINVAL";
    case ENOTSUP: return "ENOTSUP";
    default: return "OTHER";
    }
}

static int openw(int count, char **paths) {
    for (int i = 0; i < count; i++) {
        int fd = open(paths[i], O_WRONLY | O_CLOEXEC | O_NOCTTY);
        printf("openw %s %s\n", paths[i], fd >= 0 ? "OK" : errno_name(errno));
        if (fd >= 0) close(fd); /* closed without a write: nothing changes */
    }
    return 0;
}

/* what a path holds for us: a directory's entries, a file's first bytes (up to 64 KiB) */
static long content(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = fdopendir(dup(fd));
        long n = 0;
        if (!dir) return -1;
        for (struct dirent *e; (e = readdir(dir));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        closedir(dir);
        return n;
    }
    static char buffer[65536];
    ssize_t got = read(fd, buffer, sizeof buffer);
    return got < 0 ? -1 : (long)got;
}

static int openr(int count, char **paths) {
    for (int i = 0; i < count; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) { printf("openr %s %s\n", paths[i], errno_name(errno)); continue; }
        printf("openr %s OK %ld\n", paths[i], content(fd));
        close(fd);
    }
    return 0;
}

/* the first line of a file, or "?" */
static void first_line(const char *path, char *out, size_t size) {
    FILE *file = fopen(path, "r");
    if (!file || !fgets(out, (int)size, file)) snprintf(out, size, "?\n");
    if (file) fclose(file);
    out[strcspn(out, "\n")] = 0;
}

/* the app's own limits as the kernel holds them: its cgroup's memory and CPU settings (cgroup v1
   controllers or v2), and its OOM score adjustment */
static int limits(void) {
    char line[512], value[256], path[1024];
    first_line("/proc/self/oom_score_adj", value, sizeof value);
    printf("oom %s\n", value);
    FILE *cgroups = fopen("/proc/self/cgroup", "r");
    while (cgroups && fgets(line, sizeof line, cgroups)) {
        line[strcspn(line, "\n")] = 0;
        char *controllers = strchr(line, ':'), *where = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!where) continue;
        *where++ = 0;
        controllers++;
        if (*controllers == 0) { /* v2 */
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", where);
            first_line(path, value, sizeof value);
            printf("memory %s\n", value);
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", where);
            first_line(path, value, sizeof value);
            printf("cpu %s\n", value);
        } else if (strcmp(controllers, "memory") == 0) {
            snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", where);
            first_line(path, value, sizeof value);
            printf("memory %s\n", value);
        } else if (strstr(controllers, "cpu") && !strstr(controllers, "cpuset")) {
            char quota[64], period[64];
            snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_quota_us", controllers, where);
            first_line(path, quota, sizeof quota);
            snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_period_us", controllers, where);
            first_line(path, period, sizeof period);
            printf("cpu %s %s\n", quota, period);
        }
    }
    if (cgroups) fclose(cgroups);
    return 0;
}

/* sysfs(2), obsolete and harmless (option 3: how many file system types the kernel knows): it needs
   no privilege, so EPERM can only come from a seccomp filter */
static int filtered(void) {
    long n = syscall(SYS_sysfs, 3);
    printf("sysfs %s\n", n >= 0 ? "OK" : errno_name(errno));
    /* ptrace(2) peeking into a process we do not trace: the kernel answers ESRCH; nspod's filter
       (@debug) answers EPERM first, where nspawn's own container filter lets the call through */
    n = syscall(SYS_ptrace, 2L /* PTRACE_PEEKDATA */, 1L, 0L, 0L);
    printf("ptrace %s\n", n >= 0 ? "OK" : errno_name(errno));
    return 0;
}

/* mknod of a block device (loop0's numbers) and of /dev/mem's, and a tmpfs mount, all in the app's
   own writable root: what succeeds is undone at once, and nothing is ever opened */
static int makes(void) {
    const struct { const char *what, *path; mode_t mode; dev_t dev; } nodes[] = {
        {"mknod-block", "/probe-block", S_IFBLK | 0600, makedev(7, 0)},
        {"mknod-char", "/probe-char", S_IFCHR | 0600, makedev(1, 1)},
    };
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        int made = mknod(nodes[i].path, nodes[i].mode, nodes[i].dev);
        printf("%s %s\n", nodes[i].what, made == 0 ? "OK" : errno_name(errno));
        if (made == 0) unlink(nodes[i].path);
    }
    mkdir("/probe-mnt", 0700);
    int mounted = mount("tmpfs", "/probe-mnt", "tmpfs", 0, NULL);
    printf("mount-tmpfs %s\n", mounted == 0 ? "OK" : errno_name(errno));
    if (mounted == 0) umount("/probe-mnt");
    return 0;
}

static int serve(void) {
    const char *fds = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
    int count = fds ? atoi(fds) : 0;
    if (count <= 0) { fprintf(stderr, "probe: no LISTEN_FDS\n"); return 1; }
    char *name[64] = {0}, *copy = names ? strdup(names) : NULL, *save = NULL;
    for (int i = 0; i < count && i < 64; i++) name[i] = strtok_r(i ? NULL : copy, ":", &save);
    printf("probe serving %d fd(s), LISTEN_PID=%s LISTEN_FDNAMES=%s\n", count, getenv("LISTEN_PID"),
           names ? names : "");
    fflush(stdout);
    struct pollfd polls[64];
    for (int i = 0; i < count && i < 64; i++) polls[i] = (struct pollfd){.fd = 3 + i, .events = POLLIN};
    for (;;) {
        if (poll(polls, (nfds_t)count, -1) < 0 && errno != EINTR) return 1;
        for (int i = 0; i < count; i++) {
            if (!(polls[i].revents & POLLIN)) continue;
            int client = accept(polls[i].fd, NULL, NULL);
            if (client < 0) continue;
            dprintf(client, "probe fd=%d name=%s\n", 3 + i, name[i] ? name[i] : "");
            close(client);
        }
    }
}

static int mds(const char *method, const char *path, const char *form, const char *base) {
    if (!base || strncmp(base, "http://", 7) != 0) { printf("status none\n"); return 1; }
    char host[160] = {0}, port[8] = "80";
    const char *h = base + 7, *rest = strchr(h, '/');
    const char *prefix = rest ? rest : "";
    size_t len = rest ? (size_t)(rest - h) : strlen(h);
    char hp[160] = {0};
    if (len >= sizeof(hp)) return 1;
    memcpy(hp, h, len);
    char *colon = strrchr(hp, ':'), *close_bracket = strrchr(hp, ']');
    if (colon && (!close_bracket || colon > close_bracket)) { *colon = 0; snprintf(port, sizeof(port), "%s", colon + 1); }
    snprintf(host, sizeof(host), "%s", hp[0] == '[' ? hp + 1 : hp);
    if (host[strlen(host) - 1] == ']') host[strlen(host) - 1] = 0;
    struct sockaddr_storage sa = {0};
    socklen_t salen;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET; in4->sin_port = htons((uint16_t)atoi(port)); salen = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6; in6->sin6_port = htons((uint16_t)atoi(port)); salen = sizeof(*in6);
    } else { printf("status badhost\n"); return 1; }
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) < 0) { printf("status %s\n", errno_name(errno)); return 1; }
    dprintf(fd, "%s %s%s HTTP/1.0\r\nHost: %s\r\nMetadata-Flavor: AppContainer\r\n", method, prefix, path, hp);
    if (form) dprintf(fd, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s", strlen(form), form);
    else dprintf(fd, "\r\n");
    static char buf[1 << 16];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) got += (size_t)n;
    close(fd);
    buf[got] = 0;
    int status = 0;
    sscanf(buf, "HTTP/%*s %d", &status);
    char *type = strcasestr(buf, "\r\nContent-Type: "), *body = strstr(buf, "\r\n\r\n");
    printf("status %d\n", status);
    if (type) { type += 16; printf("type %.*s\n", (int)strcspn(type, "\r"), type); }
    printf("%s\n", body ? body + 4 : "");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "report") == 0) return report();
    if (argc >= 3 && strcmp(argv[1], "notify") == 0) {
        usleep((useconds_t)atoi(argv[2]) * 1000);
        if (notify("READY=1\nSTATUS=probe is ready")) return 1;
        printf("probe sent READY=1\n");
        fflush(stdout);
        sleep(argc >= 4 ? (unsigned)atoi(argv[3]) : 3600);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) return serve();
    if (argc >= 4 && strcmp(argv[1], "mds") == 0)
        return mds(argv[2], argv[3], argc >= 5 && argv[4][0] ? argv[4] : NULL,
                   argc >= 6 ? argv[5] : getenv("AC_METADATA_URL"));
    if (argc >= 2 && strcmp(argv[1], "openw") == 0) return openw(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "openr") == 0) return openr(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "sysfs") == 0) return filtered();
    if (argc >= 2 && strcmp(argv[1], "limits") == 0) return limits();
    if (argc >= 2 && strcmp(argv[1], "makes") == 0) return makes();
    if (argc >= 2 && strcmp(argv[1], "owner") == 0) {
        for (int i = 2; i < argc; i++) {
            struct stat st;
            if (lstat(argv[i], &st) == 0) printf("owner %s %d %d\n", argv[i], (int)st.st_uid, (int)st.st_gid);
            else printf("owner %s %s\n", argv[i], errno_name(errno));
        }
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "create") == 0) {
        for (int i = 2; i < argc; i++) {
            int fd = open(argv[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            printf("create %s %s\n", argv[i], fd >= 0 ? "OK" : errno_name(errno));
            if (fd >= 0) { close(fd); unlink(argv[i]); }
        }
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "read") == 0) {
        char value[256];
        for (int i = 2; i < argc; i++) { first_line(argv[i], value, sizeof value); printf("read %s %s\n", argv[i], value); }
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "sleep") == 0) return (int)sleep((unsigned)atoi(argv[2]));
    fprintf(stderr, "usage: probe report | notify MS [SLEEP] | sleep S | openw|openr|read PATH... | sysfs | limits |"
                    " makes | serve\n");
    return 64;
}
