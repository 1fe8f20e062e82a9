#!/usr/bin/env bash
# in-testhost.sh CMD... — run CMD where a real systemd is PID 1.
# On a systemd host that is here; elsewhere it boots a disposable test host (testhost.sh: systemd
# as PID 1 of fresh namespaces), runs CMD inside it, powers it off and passes CMD's exit status on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] || [ -n "${TESTHOST_DIR:-}" ]; then
	exec "$@"
fi
dir=$(mktemp -d /tmp/nspod-testhost.XXXXXX)
down() { "$here/testhost.sh" down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap down EXIT
trap 'exit 143' TERM INT
"$here/testhost.sh" up "$dir" >&2
rc=0
"$here/testhost.sh" exec "$dir" "$@" || rc=$?
exit "$rc"
