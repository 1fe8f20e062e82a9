#!/bin/sh
# reaper [--keep-pod] [--relayed] APP: record the app's exit status; the first app to fail ends the
# pod with its code, unless the pod is an app sandbox (--keep-pod), where apps come and go.
# --relayed: the app's output went to the host's relay (stdio sockets), none to journald, so there
# is no journal stream to wait for (two process spawns fewer on every such app's end).
keep='' relayed=''
if [ "$1" = --keep-pod ]; then keep=1; shift; fi
if [ "$1" = --relayed ]; then relayed=1; shift; fi
crilog=/run/nspod/crilog/$1
main='' sync=''
if [ -p "$crilog.ctl" ]; then
    # A CRI container: its output went to its log writer through FIFOs, not to journald. The writer
    # never sees their end (the pod's systemd holds them), so it is asked to drain them now that the
    # app and all its processes are gone: the log file is whole once the app is "exited". It answers
    # with our PID and how the app ended, which it asks the pod's systemd over its bus (no systemctl
    # spawned; other lines are answers to reapers that gave up). A writer that died is started again
    # by the request's data; one that hangs is given up after 5 s.
    (/usr/bin/sleep 5 && echo "$$" > "$crilog.ack") &
    guard=$!
    echo "drain $$" > "$crilog.ctl"
    while read -r answer code status result < "$crilog.ack"; do [ "$answer" = "$$" ] && break; done
    kill "$guard" 2>/dev/null
    [ -z "$result" ] || main="ExecMainCode=$code ExecMainStatus=$status Result=$result"
elif [ -z "$relayed" ]; then
    # Let journald finish reading the app's output before the pod may end (alongside the status
    # query): --sync makes it handle what is pending (a stream it has not accepted yet), then it
    # drops each stream's file once read to the end.
    /usr/bin/journalctl --sync 2>/dev/null &
    sync=$!
fi
[ -n "$main" ] || main=$(/usr/bin/systemctl show --property=ExecMainCode --property=ExecMainStatus --property=Result "$1.service")
[ -z "$sync" ] || wait "$sync"
code=${main#*ExecMainCode=}
code=${code%%[!0-9]*}
status=${main#*ExecMainStatus=}
status=${status%%[!0-9]*}
# killed (CLD_KILLED, CLD_DUMPED): 128+N, as shells and podman say, and the signal beside it
# (status/APP.signal, written first: whoever sees the code sees the signal)
signal="/nspod/status/$1.signal"
case $code in
2 | 3)
    echo "$status" > "$signal.tmp" && /usr/bin/mv "$signal.tmp" "$signal"
    status=$((128 + status))
    ;;
*) [ ! -e "$signal" ] || /usr/bin/rm -f "$signal" ;;
esac
# the kernel's OOM killer ended it (systemd's Result; cgroup v2 alone reports it): status/APP.reason,
# written before status/APP as the signal is
reason="/nspod/status/$1.reason"
case $main in
*Result=oom-kill*) echo oom-kill > "$reason.tmp" && /usr/bin/mv "$reason.tmp" "$reason" ;;
*) [ ! -e "$reason" ] || /usr/bin/rm -f "$reason" ;;
esac
if [ -n "$sync" ]; then
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        /usr/bin/grep -qs "^UNIT=$1.service$" /run/systemd/journal/streams/* || break
        /usr/bin/sleep 0.05
    done
fi
echo "$status" > "/nspod/status/$1.tmp" && /usr/bin/mv "/nspod/status/$1.tmp" "/nspod/status/$1"
[ "$status" = 0 ] || [ -n "$keep" ] && exit 0
# an app stopped because the pod is shutting down (systemctl stop, another app's failure) has not failed
[ "$(/usr/bin/systemctl is-system-running 2>/dev/null)" = stopping ] && exit 0
if /usr/bin/mkdir /run/nspod-exit-code 2>/dev/null; then
    exec /usr/bin/systemctl exit "$status"
fi
