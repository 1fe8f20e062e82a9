#!/bin/sh
# hello-image.sh [OUT.aci] — build example.com/hello:1.0, a small image to try nspod with: a static
# busybox (Debian: apt install busybox-static) and an app that says hello and sleeps.
#   sh hello-image.sh /var/tmp/hello.aci
#   nspod --insecure-options=image run /var/tmp/hello.aci            (unsigned: see nspod-trust(1))
#   nspod --insecure-options=image fetch /var/tmp/hello.aci; systemctl start pod@demo   (demo.toml)
set -eu
out=${1:-hello.aci}
nspod=${NSPOD:-nspod}
busybox=${BUSYBOX:-/bin/busybox}
if ! [ -x "$busybox" ] || ! "$busybox" true 2>/dev/null; then
	echo "hello-image: no busybox at $busybox (apt install busybox-static, or set BUSYBOX=)" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp "$busybox" "$work/rootfs/bin/busybox"
for applet in sh echo sleep hostname cat ls; do ln -s busybox "$work/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
cat >"$work/manifest" <<'JSON'
{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/hello",
 "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"}],
 "app": {"exec": ["/bin/sh", "-c", "echo Hello from pod $(hostname), app $AC_APP_NAME; exec sleep 3600"],
         "user": "0", "group": "0"}}
JSON
"$nspod" image build --overwrite "$work" "$out"
