#!/usr/bin/env bash
# fresh-package.sh — the package's checks on a fresh Debian 12 root, run there by
# `fresh-check.sh package` (the root's apt sees only a local repository: the .deb and its
# dependencies, in /srv/nspod-repo). Boots the root's own systemd as PID 1 (testhost.sh, with no
# network), then inside it: apt-get install of the .deb, nspod run of the example image,
# systemctl start pod@demo, man nspod-run, Tab completion, a member of group nspod and a
# non-member reading, and a purge that leaves nothing the package installed. vagrant/provision.sh
# runs the --inside part on a real systemd host.
set -euo pipefail  # so a pipe reads with `grep >/dev/null`, not `grep -q`: its early exit SIGPIPEs the writer
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" != --inside ]; then
	th=$(mktemp -d /tmp/fresh-th.XXXXXX)
	down() { "$here/testhost.sh" down "$th" >/dev/null 2>&1 || true; rm -rf "$th"; }
	trap down EXIT
	"$here/testhost.sh" up "$th" >&2
	# not exec'd: the trap must bring the test host down (it would outlive the root otherwise)
	"$here/testhost.sh" exec "$th" /bin/bash "$0" --inside
	exit
fi

step() { echo "fresh-package: $*" >&2; }
fail() { echo "fresh-package: FAILED: $*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

step "apt-get install ./nspod_*.deb from the local repository only"
apt-get update -qq
cd "${NSPOD_DEBS:-/srv/nspod-repo}"  # the Vagrant VM's build/deb (vagrant/provision.sh)
apt-get install -y -qq ./nspod_*.deb busybox-static >/tmp/apt.log 2>&1 || { cat /tmp/apt.log >&2; fail "apt-get install"; }
cd /
nspod version >&2
dpkg -L nspod >/tmp/nspod.files
grep -qx /usr/lib/sysctl.d/60-nspod.conf /tmp/nspod.files || fail "no sysctl.d/60-nspod.conf in the package"
# the postinst applied it (the kernel's limit, shared with the machine the root runs on)
[ "$(cat /proc/sys/fs/inotify/max_user_instances)" -ge 8192 ] ||
	fail "fs.inotify.max_user_instances is $(cat /proc/sys/fs/inotify/max_user_instances) after the install"

step "nspod run of the example image"
sh /usr/share/doc/nspod/examples/hello-image.sh /var/tmp/hello.aci
said=$(nspod --insecure-options=image run /var/tmp/hello.aci --exec=/bin/sh -- -c 'echo ran-in-pod-$((6*7))')
[[ $said == *ran-in-pod-42* ]] || fail "nspod run said: $said"

step "systemctl start pod@demo"
nspod --insecure-options=image fetch /var/tmp/hello.aci >/dev/null
cp /usr/share/doc/nspod/examples/demo.toml /etc/nspod/pods/demo.toml
nspod pod install demo >/dev/null  # its [service] table (the README says so)
systemctl start pod@demo
[ "$(systemctl is-active pod@demo)" = active ] || fail "pod@demo is $(systemctl is-active pod@demo)"
for _ in $(seq 50); do journalctl -u pod@demo -o cat | grep 'Hello from pod demo' >/dev/null && break; sleep 0.2; done
journalctl -u pod@demo -o cat | grep 'Hello from pod demo' >/dev/null || fail "no hello from pod@demo in the journal"
machinectl list --no-legend | grep '^demo ' >/dev/null || fail "machinectl does not list demo"

step "man nspod-run, Tab completion of options and image names"
man nspod-run 2>/dev/null | grep -- '--pull-policy' >/dev/null || fail "man nspod-run"
man 5 nspod.pod 2>/dev/null | grep 'working-directory' >/dev/null || fail "man nspod.pod"
completes() { # WORDS... — what bash's completion offers for the last word
	bash -c 'source /usr/share/bash-completion/bash_completion
		_completion_loader nspod # what bash-completion does at the first Tab after "nspod"
		complete -p nspod >/dev/null || exit 1
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_shtab_nspod; printf "%s\n" "${COMPREPLY[@]}"' completes "$@"
}
offers() { # WANTED WORDS... — whether Tab offers WANTED (read whole: `grep -q` in a pipe would
	# leave the writer a SIGPIPE, which pipefail counts as a failure)
	local wanted=$1 offered
	shift
	offered=$(completes "$@")
	grep -qx -- "$wanted" <<<"$offered" || { echo "offered: ${offered//$'\n'/ }" >&2; return 1; }
}
offers --pull-policy nspod run -- || fail "Tab after 'nspod run --'"
offers example.com/hello:1.0 nspod image rm exa || fail "Tab of image names"
offers status nspod st || fail "Tab of verbs"
offers demo nspod status de || fail "Tab of pod names"
offers demo nspod pod show de || fail "Tab of pod files"

step "a member of group nspod reads; a non-member is told the group; neither changes anything"
id alice >/dev/null 2>&1 || useradd --create-home --groups nspod alice
id bob >/dev/null 2>&1 || useradd --create-home bob
listed=$(runuser -u alice -- nspod list --no-legend)
[[ $listed == *demo*running* ]] || fail "alice's nspod list: $listed"
runuser -u alice -- nspod image list --no-legend | grep example.com/hello >/dev/null || fail "alice's image list"
if runuser -u alice -- nspod stop demo 2>/tmp/refused; then fail "alice stopped a pod"; fi
grep -q "needs root" /tmp/refused || fail "alice's stop: $(cat /tmp/refused)"
if runuser -u bob -- nspod list 2>/tmp/refused; then fail "bob listed pods"; fi
grep -q "group nspod" /tmp/refused || fail "bob was not told the group: $(cat /tmp/refused)"
[ "$(systemctl is-active pod@demo)" = active ] || fail "pod@demo stopped"

step "stop, purge: nothing the package installed is left"
systemctl stop pod@demo
nspod pod uninstall demo >/dev/null
nspod gc --grace-period=0s >/dev/null
apt-get purge -y -qq nspod >/tmp/apt.log 2>&1 || { cat /tmp/apt.log >&2; fail "apt-get purge"; }
left=()
while IFS= read -r path; do
	if [ -e "$path" ] && ! [ -d "$path" ]; then left+=("$path"); fi
done </tmp/nspod.files
for dir in /var/lib/nspod /usr/lib/nspod /usr/share/doc/nspod; do  # /etc/nspod keeps demo.toml, ours
	if [ -e "$dir" ]; then left+=("$dir"); fi
done
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
step "passed"
