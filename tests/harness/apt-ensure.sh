#!/usr/bin/env bash
# apt-ensure.sh PKG... — install the Debian packages that are missing; a no-op when none are.
# apt-ensure.sh --build-deps DIR — the same for the Build-Depends of DIR/debian/control, read by
# dpkg-checkbuilddeps and installed by apt-get build-dep (the control file is the one list).
set -euo pipefail
apt_install() {
	[ "$(id -u)" -eq 0 ] || { echo "apt-ensure: need root to install: $*" >&2; exit 1; }
	echo "apt-ensure: apt-get $*" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 "$@" -y -qq --no-install-recommends >/dev/null
}
if [ "${1:-}" = --build-deps ]; then
	src=$(cd "$2" && pwd)
	"$0" dpkg-dev
	unmet=$(dpkg-checkbuilddeps "$src/debian/control" 2>&1) && exit 0
	echo "apt-ensure: ${unmet#dpkg-checkbuilddeps: error: }" >&2
	apt_install build-dep "$src"
	exit 0
fi
missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
apt_install install "${missing[@]}"
