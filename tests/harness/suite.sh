#!/usr/bin/env bash
# suite.sh PYTHON [PYTEST_ARGS...] — `make test`'s session, where systemd is PID 1 (in-testhost.sh).
#
# With PYTEST_ARGS (a targeted run): one pytest with them, nothing else.
# Without (the whole suite): three lanes that share nothing run side by side, so the work that
# needs no systemd fills the time the systemd tests spend waiting on pods, and the suite's wall
# time is the longest lane rather than the sum (lane 1, the longest, has the CPU first: the others
# run at nice 10):
#   1. the tests that need systemd (everything but lane 2's), in a test host, on the terminal;
#   2. the tests that need no systemd: the pure ones (tests/unit), the linters (ruff, mypy and the
#      shell linter), and the store's against real servers in a private network namespace
#      (tests/net: its 1,000 parallel fetches are a fifth of the suite), beside lane 1 in the same
#      test host, so they see what they saw before; their output follows lane 1's;
#   1b. the systemd tests of whole verbs that need only pods of their own, and the kvm flavor's
#      VMs (BESIDE below), in a test host of their own beside lane 1 (a host's machines, units, mounts and veths are its
#      own, so lane 1's leak counts do not see theirs); output after lane 2's;
#   3. fresh-check.sh package, then demo (each in a debootstrapped root and test host of its own),
#      unless NSPOD_FRESH_ROOT says this is that root already; output in one piece at the end.
# Exit status: 0 when every lane passed, else the first failing lane's.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 PYTHON [PYTEST_ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

BESIDE=(tests/integration/test_verbs_a.py tests/integration/test_verbs_b.py tests/integration/test_events.py
	tests/integration/test_health.py tests/integration/test_auto_update.py tests/integration/test_podman_flags.py
	tests/attacks/test_cp_links.py tests/attacks/test_publish_loopback.py
	# the kvm flavor's (issue #25): each a VM booted under QEMU (TCG where /dev/kvm is not hardware
	# virtualization: ~10-20 s a boot, a core each), so off lane 1's path
	tests/integration/test_kvm.py tests/integration/test_kvm_net.py tests/integration/test_kvm_pod_net.py
	tests/integration/test_ace_kvm.py tests/integration/test_flavor_exits.py tests/attacks/test_kvm_loopback.py
	tests/attacks/test_kvm_port.py tests/attacks/test_kvm_reach.py
	# the attacks on the app profile's kernel protections (issue #26 item 2) and the cold run's end
	tests/attacks/test_kernel_binds.py tests/attacks/test_kernel_knobs.py tests/attacks/test_chroot_escape.py
	tests/attacks/test_keyrings.py tests/integration/test_cold_end.py)

if [ "${1:-}" = --inside ]; then  # in the test host: lanes 1 and 2
	python=$2 log=$3
	lane2=(tests/unit tests/test_linters.py tests/net)
	# (each session numbers its own temporary directory under pytest-of-root, as any two pytests
	# at once do, in the run's own root: PYTEST_DEBUG_TEMPROOT, removed with it)
	nice -n 10 "$python" -m pytest "${lane2[@]}" >"$log" 2>&1 &
	pure=$!
	trap 'kill -TERM "$pure" 2>/dev/null || true' EXIT
	rc=0
	"$python" -m pytest "${lane2[@]/#/--ignore=}" "${BESIDE[@]/#/--ignore=}" || rc=$?
	# lane 1 interrupted (pytest's 2, or a signal): lane 2 goes too, as a background job ignores
	# the terminal's SIGINT
	if [ "$rc" -eq 2 ] || [ "$rc" -gt 128 ]; then kill -TERM "$pure" 2>/dev/null || true; fi
	pure_rc=0
	wait "$pure" || pure_rc=$?
	trap - EXIT
	echo
	echo "suite: ${lane2[*]} (run beside the tests above):"
	cat "$log"
	[ "$rc" -ne 0 ] && exit "$rc"
	exit "$pure_rc"
fi

if [ "${1:-}" = --fresh ]; then  # lane 3: on a fresh Debian 12 root (debootstrap, cached): the .deb
	# installed with apt and checked (packaging/, fresh-package.sh), then a clean clone's `make demo`
	child=""
	trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; fi; exit 143' TERM INT
	started=$(date +%s)
	for what in package demo; do
		"$here/fresh-check.sh" "$what" &
		child=$!
		rc=0
		wait "$child" || rc=$?
		child=""
		[ "$rc" -eq 0 ] || exit "$rc"
	done
	echo "suite: the fresh checks took $(($(date +%s) - started)) s"
	exit 0
fi

python=$1
shift
if [ $# -gt 0 ]; then
	exec "$here/in-testhost.sh" "$python" -m pytest "$@"
fi

work=$(mktemp -d /tmp/nspod-suite.XXXXXX)
# the lanes' temporary directories under this run's own root, not the machine's shared
# /tmp/pytest-of-root: pytest cleans old sessions there at exit, and one left by another run (a
# tree deeper than Python's recursion limit, say) failed a session whose tests all passed
mkdir "$work/tmp"
export PYTEST_DEBUG_TEMPROOT=$work/tmp
fresh="" beside=""
cleanup() {
	for lane in $fresh $beside; do kill -TERM "$lane" 2>/dev/null || true; wait "$lane" 2>/dev/null || true; done
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
if [ -z "${NSPOD_FRESH_ROOT:-}" ]; then
	nice -n 10 "$here/suite.sh" --fresh >"$work/fresh.log" 2>&1 &
	fresh=$!
fi
nice -n 10 "$here/in-testhost.sh" "$python" -m pytest "${BESIDE[@]}" >"$work/beside.log" 2>&1 &
beside=$!
rc=0
"$here/in-testhost.sh" "$here/suite.sh" --inside "$python" "$work/pure.log" || rc=$?
beside_rc=0
wait "$beside" || beside_rc=$?
beside=""
echo
echo "suite: ${BESIDE[*]} (in a test host of their own, beside the tests above):"
cat "$work/beside.log"
[ "$rc" -ne 0 ] || rc=$beside_rc
if [ -n "$fresh" ]; then
	fresh_rc=0
	wait "$fresh" || fresh_rc=$?
	fresh=""
	echo
	echo "suite: the fresh-root checks (run beside the tests above):"
	cat "$work/fresh.log"
	[ "$rc" -ne 0 ] || rc=$fresh_rc
fi
exit "$rc"
