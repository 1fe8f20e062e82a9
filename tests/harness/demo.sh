#!/usr/bin/env bash
# demo.sh — build a small image and run it as a pod; show what systemd and machined say about it.
# Runs where systemd is PID 1: here on a systemd host, else inside a test host (in-testhost.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NSPOD=${NSPOD:-/usr/local/bin/nspod}
work=${DEMO_DIR:-/var/tmp/nspod-demo}

if [ "${1:-}" != "--inside" ]; then
	rm -rf "$work" && mkdir -p "$work"
	echo "+ sh examples/hello-image.sh $work/hello.aci   (nspod image build of a busybox layout)"
	NSPOD=$NSPOD sh "$here/../../examples/hello-image.sh" "$work/hello.aci"
	exec "$here/in-testhost.sh" "$0" --inside
fi

step() { echo; echo "+ $*"; "$@"; }
# The demo image is unsigned, so it is run with --insecure-options=image (see README: trust + fetch).
step "$NSPOD" --insecure-options=image run --detach --name=hello "$work/hello.aci"
step machinectl list
step systemctl status nspod-hello.service --no-pager --lines=0
sleep 0.5
step journalctl -u nspod-hello.service --output=cat --no-pager --grep='Hello from pod'
step journalctl --machine=hello --identifier=hello --output=short --no-pager
step "$NSPOD" list
step "$NSPOD" stop hello   # pods answer to their name as to their UUID
step "$NSPOD" gc --grace-period=0s
