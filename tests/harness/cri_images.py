"""Every image critest v1.26.1 pulls, built here from Debian's packages (busybox, nginx-light and
their libraries, a static C program), pushed once into a registry's storage that is cached per
machine: a test copies the storage and serves it with docker-registry.

The busybox is Debian's ``busybox`` package (dynamic), not the host's busybox-static: that one is
built standalone, its shell runs an applet itself where upstream's busybox image execs it from
PATH, so critest's MaskedPaths spec (``sh -c ls`` with /bin/ls masked) could never see the mask.
The two conflict, so the package is not installed: its .deb is taken from apt's cache, or
downloaded there by ``apt-get download`` (the one step that may need Debian's mirror).

The names are the upstream ones less their registry (``registry.k8s.io/e2e-test-images/…`` and
``gcr.io/k8s-staging-cri-tools/…``): nspod's registries.conf mirrors both hosts to the local
registry, so critest names the images as it always does and the runtime records those names.
The one image no-one can build is ``test-image-digest@sha256:9700f9…``: its manifest would have to
hash to that digest (see README, critest's one skip).

    python3 tests/harness/cri_images.py [CACHE_DIR]   # builds if needed, prints the storage dir
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# run as a script: the checkout, not this directory (its token.py would hide the standard one)
sys.path[0] = str(HERE.parent.parent)

from tests.harness.registry import Registry  # noqa: E402

# NSPOD_CRI_IMAGES: another cache (a builder trying a change keeps the shared one as it is)
CACHE = Path(os.environ.get("NSPOD_CRI_IMAGES") or "/var/cache/nspod-tests/cri-images")
APT_CACHE = Path("/var/cache/apt/archives")
E2E, CRI = "e2e-test-images", "k8s-staging-cri-tools"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:mail
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
"""
# the upstream Dockerfile (images/image-predefined-group): adduser -u 1000 default-user, a group
# 50000 it belongs to, USER 1000
PREDEFINED_PASSWD = PASSWD + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"
PREDEFINED_GROUP = GROUP + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"
NGINX_CONF = """user nginx;
worker_processes 1;
error_log /var/log/nginx/error.log notice;
pid /var/run/nginx.pid;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    include /etc/nginx/conf.d/*.conf;
}
"""
NGINX_SITE = """server {
    listen       80;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
"""
# images/hostnet-nginx/default.conf of the cri-tools tarball, less its comments
HOSTNET_SITE = NGINX_SITE.replace("listen       80;", "listen       12003;")
INDEX = "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body>nginx</body></html>\n"
# httpd's official image logs "AH00094: Command line: 'httpd -D FOREGROUND'", which the multi-
# container spec looks for; busybox's httpd serves the page
HTTPD_FOREGROUND = """#!/bin/sh
echo "[core:notice] [pid $$] AH00094: Command line: 'httpd -D FOREGROUND'" >&2
exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs
"""
# Upstream busybox has ipcs and pgrep; Debian's busybox-static has neither. These two behave as
# its applets do for what critest runs (`ipcs -m`, `pgrep PATTERN`), read from the caller's /proc.
IPCS = r"""#!/bin/sh
# ipcs [-m]: the shared memory segments of the caller's IPC namespace, as busybox prints them
case "${1:--m}" in -m) ;; *) echo "ipcs: this image's ipcs knows -m alone" >&2; exit 1 ;; esac
printf '\n------ Shared Memory Segments --------\n'
printf '%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n' key shmid owner perms bytes nattch status
while read -r key shmid perms size cpid lpid nattch uid rest; do
	[ "$key" = key ] && continue
	printf '0x%08x %-10s %-10s %-10s %-10s %-10s\n' "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
done < /proc/sysvipc/shm
"""
# the process list is taken before awk starts (a glob of the shell's own), so only the script's
# own shell could match itself: it is left out, as busybox's pgrep leaves itself out
PGREP = r"""#!/bin/sh
# pgrep [-flx] PATTERN: the PIDs whose name (-f: command line) matches the extended regex
full=0 long=0 exact=0
while getopts flx opt; do
	case $opt in f) full=1 ;; l) long=1 ;; x) exact=1 ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: pgrep [-flx] PATTERN" >&2; exit 2; }
set -- "$1" /proc/[0-9]*
exec awk -v self=$$ -v full=$full -v long=$long -v exact=$exact -v re="$1" '
BEGIN {
	if (exact) re = "^(" re ")$"
	found = 1
	for (i = 2; i < ARGC; i++) {
		pid = substr(ARGV[i], 7)
		if (pid == self) continue
		line = ""
		if (full) {
			cmd = "tr \"\\000\" \" \" < " ARGV[i] "/cmdline 2>/dev/null"
			cmd | getline line
			close(cmd)
			sub(/ $/, "", line)
		} else if ((getline line < (ARGV[i] "/comm")) <= 0) continue
		if (line ~ re) { print (long ? pid " " line : pid); found = 0 }
	}
	exit found
}' "$@"
"""
IT_WORKS = "<html><body><h1>It works!</h1></body></html>\n"
# what k8s' test/images/nonewprivs runs: a set-uid-root program printing its effective uid
NNP_C = (
    '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("Effective uid: %d\\n",'
    " (int)geteuid()); return 0; }\n"
)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _version(package: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    ).stdout


def cache_key() -> str:
    """This file, and the packages whose files the images hold (busybox-static's version is the
    busybox .deb's: one source package)."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for package in ("busybox-static", "nginx-light", "libc6"):
        digest.update(f"{package}={_version(package)}".encode())
    return digest.hexdigest()[:16]


class Builder:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.oci = work / "oci"
        _run("umoci", "init", "--layout", str(self.oci))

    def image(self, base: str, tag: str, files: dict[str, str | Path], *config: str) -> None:
        """``tag``: ``base`` plus a layer of ``files`` (text, or a host file to copy; a name ending
        in ``/`` a directory), then umoci config flags."""
        if files:
            bundle = self.work / f"bundle-{tag}"
            _run("umoci", "unpack", "--image", f"{self.oci}:{base}", str(bundle))
            root = bundle / "rootfs"
            for rel, content in files.items():
                target = root / rel.lstrip("/")
                if rel.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                if isinstance(content, Path):
                    shutil.copy(content, target)
                else:
                    target.write_text(content)
                    if content.startswith("#!"):
                        target.chmod(0o755)
            _run("umoci", "repack", "--image", f"{self.oci}:{tag}", str(bundle))
            shutil.rmtree(bundle)
            base = tag
        if config or base != tag:  # a config of its own: a new manifest under the new tag
            _run("umoci", "config", "--image", f"{self.oci}:{base}", "--tag", tag, *config)


def debian_busybox(work: Path) -> Path:
    """Debian's dynamic busybox, of busybox-static's version (one source package), unpacked."""
    version = _version("busybox-static")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    name = f"busybox_{version.replace(':', '%3a')}_{arch.stdout.strip()}.deb"
    deb = APT_CACHE / name
    if not deb.exists():
        download = ["apt-get", "download", f"busybox={version}"]
        subprocess.run(download, cwd=work, check=True, capture_output=True)
        deb = next(work.glob("busybox_*.deb"))
    unpacked = work / "busybox-deb"
    _run("dpkg-deb", "-x", str(deb), str(unpacked))
    return unpacked / "bin/busybox"


def libraries(binary: Path) -> dict[str, str | Path]:
    """The shared libraries ``binary`` loads (ldd), at their paths."""
    files: dict[str, str | Path] = {}
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    for line in ldd.splitlines():
        words = line.split()
        path = words[2] if "=>" in words and len(words) > 2 else words[0]
        if path.startswith("/"):
            files[path] = Path(path)
    return files


def busybox(builder: Builder) -> None:
    binary = debian_busybox(builder.work)
    applets = subprocess.run([str(binary), "--list-full"], capture_output=True, text=True, check=True)
    bundle = builder.work / "bundle-busybox"
    _run("umoci", "new", "--image", f"{builder.oci}:busybox")
    _run("umoci", "unpack", "--image", f"{builder.oci}:busybox", str(bundle))
    root = bundle / "rootfs"
    for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "var/run", "var/www", "home"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy(binary, root / "bin/busybox")
    for path, source in libraries(binary).items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / path.lstrip("/"))
    for path in applets.stdout.split():
        if path != "bin/busybox" and not (root / path).exists():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", root / path)
    for name, script in (("ipcs", IPCS), ("pgrep", PGREP)):
        if not (root / "bin" / name).exists():
            (root / "bin" / name).write_text(script)
            (root / "bin" / name).chmod(0o755)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    _run("umoci", "repack", "--image", f"{builder.oci}:busybox", str(bundle))
    shutil.rmtree(bundle)
    _run("umoci", "config", "--image", f"{builder.oci}:busybox", "--config.env", PATH, "--config.cmd", "sh")


def nginx_files() -> dict[str, str | Path]:
    """Debian's nginx with the libraries ldd names, its mime types and a docker-like layout."""
    files: dict[str, str | Path] = {"/usr/sbin/nginx": Path("/usr/sbin/nginx")}
    files |= libraries(Path("/usr/sbin/nginx"))
    files["/etc/nginx/mime.types"] = Path("/etc/nginx/mime.types")
    files["/etc/nginx/nginx.conf"] = NGINX_CONF
    files["/etc/nginx/conf.d/default.conf"] = NGINX_SITE
    files["/usr/share/nginx/html/index.html"] = INDEX
    files["/etc/passwd"] = PASSWD + "nginx:x:101:101:nginx:/nonexistent:/bin/false\n"
    files["/etc/group"] = GROUP + "nginx:x:101:\n"
    for directory in ("log/nginx", "lib/nginx/body", "lib/nginx/proxy", "lib/nginx/fastcgi",
                      "lib/nginx/uwsgi", "lib/nginx/scgi"):  # fmt: skip
        files[f"/var/{directory}/"] = ""
    return files


def build_layout(work: Path) -> dict[str, str]:
    """The OCI layout; returns {layout tag: repository:tag to push}."""
    builder = Builder(work)
    busybox(builder)
    pushes = {"busybox": f"{E2E}/busybox:1.29-2"}

    builder.image("busybox", "nginx", nginx_files(), "--config.cmd", "nginx", "--config.cmd", "-g",
                  "--config.cmd", "daemon off;", "--config.exposedports", "80/tcp")  # fmt: skip
    pushes["nginx"] = f"{E2E}/nginx:1.14-2"
    builder.image("nginx", "hostnet", {"/etc/nginx/conf.d/default.conf": HOSTNET_SITE})
    pushes["hostnet"] = f"{CRI}/hostnet-nginx-amd64:latest"
    # nginx logs to the container's stdout and stderr, as the official image's links do
    for tag in ("nginx", "hostnet"):
        _link_logs(builder, tag)

    builder.image("busybox", "httpd", {"/usr/local/apache2/htdocs/index.html": IT_WORKS,
                  "/usr/local/bin/httpd-foreground": HTTPD_FOREGROUND},
                  "--config.cmd", "httpd-foreground", "--config.workingdir", "/usr/local/apache2",
                  "--config.exposedports", "80/tcp")  # fmt: skip
    pushes["httpd"] = f"{E2E}/httpd:2.4.39-4"

    nnp = work / "nnp"
    (work / "nnp.c").write_text(NNP_C)
    _run("gcc", "-static", "-O2", "-o", str(nnp), str(work / "nnp.c"))
    os.chmod(nnp, 0o4755)
    builder.image("busybox", "nonewprivs", {"/usr/local/bin/nnp": nnp}, "--clear=config.cmd",
                  "--config.entrypoint", "/usr/local/bin/nnp")  # fmt: skip
    pushes["nonewprivs"] = f"{E2E}/nonewprivs:1.3"

    # images/image-test: busybox and an empty file named by the build argument TEST
    for name, file in (("test-image-1", "test-image-1"), ("test-image-2", "test-image-2"),
                       ("test-image-3", "test-image-3"), ("test-image-latest", "test-image-latest"),
                       ("test-image-tags", "same-image"), ("test-image-tag-test", "test"),
                       ("test-image-tag-all", "all")):  # fmt: skip
        builder.image("busybox", name, {f"/{file}": ""})
    for name in ("test-image-1", "test-image-2", "test-image-3", "test-image-latest"):
        pushes[name] = f"{CRI}/{name}:latest"
    pushes["test-image-tag-test"] = f"{CRI}/test-image-tag:test"
    pushes["test-image-tag-all"] = f"{CRI}/test-image-tag:all"
    for tag in ("1", "2", "3"):  # one image under three tags
        pushes[f"test-image-tags@{tag}"] = f"{CRI}/test-image-tags:{tag}"

    # images/image-user: busybox with USER as the build script sets it
    for name, user in (("test-image-user-uid", "1002"), ("test-image-user-username", "www-data"),
                       ("test-image-user-uid-group", "1003:1004"),
                       ("test-image-user-username-group", "www-data:1004")):  # fmt: skip
        builder.image("busybox", name, {}, "--config.user", user)
        pushes[name] = f"{CRI}/{name}:latest"
    builder.image("busybox", "predefined", {"/etc/passwd": PREDEFINED_PASSWD, "/etc/group": PREDEFINED_GROUP,
                  "/home/default-user/": ""}, "--config.user", "1000")  # fmt: skip
    pushes["predefined"] = f"{CRI}/test-image-predefined-group:latest"
    return pushes


def _link_logs(builder: Builder, tag: str) -> None:
    bundle = builder.work / f"bundle-links-{tag}"
    _run("umoci", "unpack", "--image", f"{builder.oci}:{tag}", str(bundle))
    logs = bundle / "rootfs/var/log/nginx"
    for name, target in (("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")):
        (logs / name).unlink(missing_ok=True)
        os.symlink(target, logs / name)
    _run("umoci", "repack", "--image", f"{builder.oci}:{tag}", str(bundle))
    shutil.rmtree(bundle)


def build(cache: Path = CACHE) -> Path:
    """The registry storage holding every image (built once per machine and builder); returns it."""
    done = cache / cache_key()
    if (done / "storage").is_dir() and (done / "images.json").is_file():
        return done / "storage"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        pushes = build_layout(work)
        registry = Registry.start(work / "registry")
        try:
            policy = work / "policy.json"
            policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
            for tag, destination in pushes.items():
                subprocess.run(
                    ["skopeo", "--policy", str(policy), "copy", "-q", "--dest-tls-verify=false",
                     f"oci:{work / 'oci'}:{tag.split('@')[0]}", f"docker://{registry.host}/{destination}"],
                    check=True, capture_output=True,
                )  # fmt: skip
        finally:
            registry.stop()
        result = work / "result"
        result.mkdir()
        os.rename(work / "registry/storage", result / "storage")
        (result / "images.json").write_text(json.dumps(sorted(pushes.values()), indent=1) + "\n")
        shutil.rmtree(done, ignore_errors=True)
        os.rename(result, done)  # whole or not at all: a half-built cache is never taken
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return done / "storage"


def images(storage: Path) -> list[str]:
    """repository:tag of everything the storage serves."""
    return list(json.loads((storage.parent / "images.json").read_text()))


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE))
