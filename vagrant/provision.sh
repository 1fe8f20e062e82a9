#!/usr/bin/env bash
# provision.sh — run as root in the VM by `vagrant up`: build nspod's .deb from /nspod, check it as
# the fresh-root check does (on this real systemd host, with Debian's mirror), install it to stay.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends git make man-db bash-completion >/dev/null
cd /nspod
packaging/build-deb.sh build/deb
NSPOD_DEBS=/nspod/build/deb bash tests/harness/fresh-package.sh --inside
apt-get install -y -qq ./build/deb/nspod_*.deb busybox-static >/dev/null
echo "nspod is installed: try 'sudo nspod run' of the example in /usr/share/doc/nspod/examples"
