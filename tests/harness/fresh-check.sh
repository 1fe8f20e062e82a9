#!/usr/bin/env bash
# fresh-check.sh [demo|test|both|package] — the README's commands on a Debian 12 root that has never
# seen the project: a debootstrapped bookworm (the default variant, as a fresh install has it, plus
# git and make, which a newcomer needs to get the checkout and run it), into which a clean clone of
# this repository is copied; then `make demo` and/or `make test` run in it as root, on the
# machine's network (apt and pip reach their registries as this machine is configured to).
#
# package: the .deb (packaging/build-deb.sh, built here) installed as a user would: the root gets
# what a Debian installed with its standard task has (dbus, man-db, bash-completion), then its apt
# sees only a local repository of the .deb and its dependencies (downloaded on the network first),
# and tests/harness/fresh-package.sh boots the root's own systemd and checks the package there.
#
# Nothing of this machine's packages leaks in: the root has its own /usr, /opt and /var; only the
# kernel, /proc, /sys, /dev and the way to the package registries (apt sources and settings,
# pip.conf, PIP_* variables, resolv.conf, locally added CA certificates) are shared. A test host, where the commands boot one,
# starts inside the root with the root's own systemd.
#
# Cached in $FRESH_CACHE (default /var/cache/nspod-fresh): the debootstrap tarball (made anew when
# older than a week), the root debootstrap installs from it (a plain tar: unpacking that takes
# seconds where debootstrap's second stage takes minutes; made anew with the tarball or for another
# mirror), apt's downloaded .debs and pip's cache, so a rerun spends its time on the commands
# themselves. Each run unpacks a new root and removes it afterwards.
set -euo pipefail
what=${1:-both}
case $what in demo | test | both | package) ;; *) echo "usage: $0 [demo|test|both|package]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${FRESH_CACHE:-/var/cache/nspod-fresh}
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root" >&2; exit 1; }
"$here/apt-ensure.sh" debootstrap git

# the Debian mirror this machine's apt uses (deb822 or one-line sources)
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "fresh-check: cannot find the Debian mirror in /etc/apt" >&2; exit 1; }

mkdir -p "$cache/apt-archives/partial" "$cache/pip"
tarball=$cache/bookworm.tar.gz
if [ ! -s "$tarball" ] || [ -n "$(find "$tarball" -mtime +7)" ]; then
	echo "fresh-check: debootstrapping bookworm from the machine's mirror (once a week)" >&2
	rm -f "$tarball.tmp"
	debootstrap --include=git,make,ca-certificates --make-tarball="$tarball.tmp" bookworm \
		"$(mktemp -d)" "$mirror" >&2
	mv "$tarball.tmp" "$tarball"
fi

# the installed root, as debootstrap leaves it (nothing of ours in it yet); one maker at a time
rootball=$cache/bookworm-root.tar
tar_opts=(--numeric-owner --xattrs --xattrs-include='*' --acls)
exec 9>"$cache/root.lock"
flock 9
if [ ! -s "$rootball" ] || [ "$tarball" -nt "$rootball" ] || [ "$(cat "$rootball.mirror" 2>/dev/null)" != "$mirror" ]; then
	echo "fresh-check: installing the bookworm root from the tarball, for this and later runs" >&2
	staging=$(mktemp -d /var/tmp/nspod-fresh-root.XXXXXX)
	debootstrap --unpack-tarball="$tarball" bookworm "$staging" "$mirror" >/dev/null ||
		{ rm -rf --one-file-system "$staging"; exit 1; }
	tar -C "$staging" "${tar_opts[@]}" -cf "$rootball.tmp" . || { rm -rf --one-file-system "$staging"; exit 1; }
	rm -rf --one-file-system "$staging"
	echo "$mirror" >"$rootball.mirror"
	mv "$rootball.tmp" "$rootball"
fi
flock -u 9
exec 9>&-

root=$(mktemp -d /var/tmp/nspod-fresh.XXXXXX)
# processes still running in the root (by the root's inode) 5 s after the checks: one left behind
# is a broken check (testhost.sh's own watchdogs end within 0.5 s of what they watch)
leftovers() {
	local want pid found tries=0
	want=$(stat -L -c %d:%i "$root")
	while :; do
		found=$(for pid in /proc/[0-9]*; do
			[ "$(stat -L -c %d:%i "$pid/root" 2>/dev/null)" = "$want" ] && echo "${pid#/proc/}"
		done)
		[ -n "$found" ] && [ $((tries += 1)) -le 50 ] || break
		sleep 0.1
	done
	echo "$found"
}
cleanup() {
	local left
	left=$(leftovers)
	if [ -n "$left" ]; then  # ours: started in the root by this script
		echo "fresh-check: processes left running in the root, killed:" >&2
		for pid in $left; do echo "  $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | head -c 80)" >&2; done
		kill -KILL $left 2>/dev/null || true
		sleep 1
	fi
	if [ -n "${FRESH_KEEP:-}" ]; then  # for a look inside: chroot "$root"; then umount -R and rm it
		echo "fresh-check: kept $root (mounted)" >&2
		return
	fi
	umount -R "$root" 2>/dev/null || umount -lR "$root" 2>/dev/null || true
	rm -rf --one-file-system "$root"
}
trap cleanup EXIT
echo "fresh-check: unpacking a new root in $root" >&2
tar -C "$root" "${tar_opts[@]}" -xpf "$rootball"
chmod 755 "$root"  # it is /: every user (messagebus, …) must get through it

# the way to the registries, as this machine has it
cp -a /etc/apt/sources.list.d/. "$root/etc/apt/sources.list.d/"
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
cp -a /etc/apt/apt.conf.d/. "$root/etc/apt/apt.conf.d/"
rm -f "$root/etc/apt/apt.conf.d/docker-clean"  # it would empty the shared .deb cache
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# certificate authorities this machine adds for its way out (a proxy's), not part of any package
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
	cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
	chroot "$root" update-ca-certificates >/dev/null
fi

# on a real machine / is a mount point; unshare --propagation (the test host) needs it to be
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
mkdir -p "$root/root/.cache/pip"
mount --bind "$cache/pip" "$root/root/.cache/pip"

# a clean clone of what is committed here
git clone -q "$repo" "$root/root/nspod"

# NSPOD_FRESH_ROOT: a `make test` in the root does not run these checks again inside
env_vars=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 CI=true
	NSPOD_FRESH_ROOT=1)
while IFS='=' read -r name value; do env_vars+=("$name=$value"); done < <(env | grep -E '^PIP_' || true)
in_root() { # COMMAND — run by bash in the checkout's clone, as on a machine whose / is the fresh root:
	# a mount namespace pivoted into it, not a chroot (the kernel refuses a chrooted process user
	# namespaces, and with them ID-mapped mounts)
	# shellcheck disable=SC2016  # $1 and $@ are the inner shell's
	unshare --mount --propagation private /bin/sh -c \
		'cd "$1" && mkdir -p .fresh-old && pivot_root . .fresh-old && cd / && umount -l /.fresh-old &&
		rmdir /.fresh-old && shift && exec "$@"' sh "$root" \
		/usr/bin/env -i "${env_vars[@]}" /bin/bash -c "cd /root/nspod && $1"
}

if [ "$what" = package ]; then
	debs=$root/srv/nspod-repo
	"$repo/packaging/build-deb.sh" "$debs"
	echo "fresh-check: the standard task's dbus, man-db, bash-completion; nspod's dependencies downloaded" >&2
	in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		dbus man-db bash-completion >/dev/null && apt-get install -y -qq --download-only /srv/nspod-repo/nspod_*.deb \
		busybox-static >/dev/null && apt-get -s install /srv/nspod-repo/nspod_*.deb busybox-static >/srv/nspod-repo/plan"
	# the local repository: what that install takes, from apt's cache
	awk '$1 == "Inst" && $2 != "nspod" {v = ($3 ~ /^\[/) ? $4 : $3; sub(/^\(/, "", v); gsub(/:/, "%3a", v); print $2 "_" v "_"}' \
		"$debs/plan" | while read -r stem; do
		found=$(compgen -G "$root/var/cache/apt/archives/$stem*.deb") || { echo "fresh-check: no $stem*.deb" >&2; exit 1; }
		cp $found "$debs/"
	done
	(cd "$debs" && dpkg-scanpackages --multiversion . >Packages 2>/dev/null)
	echo "fresh-check: local repository: $(grep -c '^Package:' "$debs/Packages") packages" >&2
	rm -rf "$root/etc/apt/sources.list.d" "$root/etc/apt/sources.list" && mkdir "$root/etc/apt/sources.list.d"
	echo "deb [trusted=yes] file:/srv/nspod-repo ./" >"$root/etc/apt/sources.list"
	umount "$root/var/cache/apt/archives"  # nothing from the cache but through the repository
	started=$(date +%s)
	in_root "tests/harness/fresh-package.sh"
	echo "fresh-check: the package's checks passed in $(( $(date +%s) - started )) s" >&2
fi

commands=()
case $what in demo) commands=("make demo") ;; test) commands=("make test") ;; both) commands=("make demo" "make test") ;; esac
for command in "${commands[@]}"; do
	echo "fresh-check: + $command (in the fresh root)" >&2
	started=$(date +%s)
	in_root "$command"
	echo "fresh-check: '$command' passed in $(( $(date +%s) - started )) s" >&2
done
[ -z "$(leftovers)" ] || { echo "fresh-check: FAILED: processes left running in the root" >&2; exit 1; }
echo "fresh-check: passed" >&2
