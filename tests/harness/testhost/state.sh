# shellcheck shell=bash
# testhost.sh, part: the running test host: its state, processes and commands run inside (sourced by testhost.sh; uses its variables and helpers)

# ---------------------------------------------------------------------------
# state helpers
# ---------------------------------------------------------------------------
load_state() {
    DIR=$(realpath -m "$1")
    [ -f "$DIR/pid" ] || die "$DIR/pid missing: no test host was booted in $DIR"
    PID=$(cat "$DIR/pid")
    LAUNCHER=$(cat "$DIR/launcher.pid" 2>/dev/null || true)
}

# Is $PID still the systemd we started?  (guards against PID reuse; a zombie
# waiting for the VM's init to reap it counts as gone)
host_alive() {
    alive "$PID" || return 1
    [ "$(proc_state "$PID")" != Z ] || return 1
    [ -f "$DIR/pidns" ] || return 0
    [ "$(readlink "/proc/$PID/ns/pid" 2>/dev/null)" = "$(cat "$DIR/pidns")" ]
}

# State letter of a process (R, S, D, T, Z, ...), empty if gone.
proc_state() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    echo "${s%% *}"
}

# PIDs (host view) of every process in the test host's cgroup trees.
cg_pids() {
    local mp t o dir
    while read -r mp t o dir; do
        if [ -d "$dir" ]; then find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
    done <"$DIR/cgroups" | sort -un
}

# Why this exists: "nsenter --pid" forks; its parent stays outside the PID
# namespace and waits.  When systemd-shutdown freezes every process of the
# namespace with SIGSTOP, that parent sees its child stopped and SIGSTOPs
# itself; the child is then killed, but its zombie is never reaped, and the
# kernel keeps the dying PID 1 (and so the whole test host) around forever
# waiting for it.  So: while the host is shutting down, wake stopped
# processes that live in our cgroups (the nsenter parents do, see in_host).
unstick() {
    local p
    for p in $(cg_pids); do
        if [ "$(proc_state "$p")" = T ]; then kill -CONT "$p" 2>/dev/null || true; fi
    done
    return 0
}

# Is host PID $1 a member of the test host's PID namespace?
in_pidns() {
    [ "$(readlink "/proc/$1/ns/pid" 2>/dev/null)" = "$(cat "$DIR/pidns" 2>/dev/null)" ]
}

# Processes that "exec" started and that are still running sit in the test
# host's root cgroup (systemd never adopted them), each below an nsenter
# parent that lives outside the PID namespace.  End them before poweroff:
# systemd-shutdown would SIGTERM them too, but it only notices the death of
# a process that is not its own child when its 10 s timeout expires.  Only
# the processes inside the namespace are signalled: their nsenter parents
# then reap them and exit.  (Killing an nsenter parent instead would hand its
# child to the VM's init, which on this VM reaps lazily: the same 10 s stall.)
stop_execs() {
    local root p n=0 pids inner=""
    # only the hierarchy systemd tracks units in (cgroup2, else name=systemd)
    # tells "not in any unit"; in v1 controller trees services share the root
    root=$(awk '$2 == "cgroup2" {print $4; exit}' "$DIR/cgroups")
    [ -n "$root" ] || root=$(awk '$3 ~ /name=systemd/ {print $4; exit}' "$DIR/cgroups")
    [ -n "$root" ] || return 0
    pids=$(cat "$root/cgroup.procs" 2>/dev/null || true)
    for p in $pids; do in_pidns "$p" && inner="$inner $p"; done
    [ -n "$inner" ] || return 0
    for p in $inner; do kill -TERM "$p" 2>/dev/null || true; done
    while [ -n "$(cat "$root/cgroup.procs" 2>/dev/null)" ] && [ $n -lt 100 ]; do
        sleep 0.02; n=$((n + 1))
        [ $((n % 10)) = 0 ] && unstick
    done
    for p in $(cat "$root/cgroup.procs" 2>/dev/null); do
        if in_pidns "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    echo "stopped $(wc -w <<<"$inner") process(es) still running from exec" >>"$DIR/down.notes"
}

# Signal the command(s) that nsenter $1 runs inside the host.
forward_signal() {
    local c
    for c in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do kill -s "$2" "$c" 2>/dev/null || true; done
    return 0
}

# Run a command inside the test host.  Used by "exec" and internally.
#  - the nsenter process is first moved into the test host's root cgroups so
#    that, after entering the cgroup namespace, /proc/self/cgroup reads "/"
#    (otherwise tools see paths like /../../.. and systemd-run/nspawn get
#    confused), and so that "down" can find it;
#  - nsenter runs as our child and SIGTERM/SIGINT/SIGHUP sent to this script
#    (e.g. by "timeout" or a test runner) are forwarded to the command inside,
#    which then exits and is reaped normally; nsenter itself never dies first;
#  - a small watchdog SIGCONTs nsenter if it gets stopped while the host shuts
#    down (see unstick);
#  - environment: caller's, minus variables that would point at the caller's
#    service manager, plus the system bus address;
#  - working directory: the caller's, if it exists inside, else /;
#  - exit status: the command's (128+N if it died of signal N).
in_host() {
    local wd=/ ns_pid rc
    [ -d "/proc/$PID/root$PWD" ] && wd=$PWD
    (
        me=$BASHPID
        (   # watchdog: forked before the move, so it stays outside the host
            while kill -0 "$me" 2>/dev/null; do
                if [ "$(proc_state "$me")" = T ] &&
                   { ! kill -0 "$PID" 2>/dev/null || [ "$(cat "/proc/$PID/comm" 2>/dev/null)" = systemd-shutdow ]; }; then
                    kill -CONT "$me" 2>/dev/null
                fi
                sleep 0.5
            done
        ) </dev/null >/dev/null 2>&1 &
        cg_move "$me" "$DIR/cgroups" || true
        # --root: the root systemd was started in (/ on a machine, the root of a fresh-check chroot)
        exec nsenter --target "$PID" --root --mount --uts --ipc --net --pid --cgroup -- \
            env -C "$wd" \
            -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES \
            -u INVOCATION_ID -u JOURNAL_STREAM -u MANAGERPID -u WATCHDOG_PID \
            -u WATCHDOG_USEC -u DBUS_SESSION_BUS_ADDRESS -u XDG_RUNTIME_DIR \
            DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket \
            SYSTEMD_PAGER=cat PAGER=cat TESTHOST_DIR="$DIR" \
            "$@"
    ) <&0 &     # explicit <&0: bash would give a background job /dev/null
    ns_pid=$!
    trap 'forward_signal "$ns_pid" TERM' TERM
    trap 'forward_signal "$ns_pid" INT' INT
    trap 'forward_signal "$ns_pid" HUP' HUP
    while :; do
        rc=0
        { wait "$ns_pid"; } 2>/dev/null || rc=$?     # no "Killed" job notice
        kill -0 "$ns_pid" 2>/dev/null || break    # else: wait was interrupted by a trap
    done
    trap - TERM INT HUP
    return $rc
}

# Units the VM's administrator enabled into targets that basic.target pulls
# in (e.g. podman.socket in sockets.target.wants, apt-daily.timer in
# timers.target.wants).  They would start in every test host and make it
# depend on what happens to be installed on the machine, so they are masked
# too, except those listed in $TESTHOST_KEEP_UNITS.
vm_enabled_units() {
    local t u
    for t in sysinit basic sockets timers paths local-fs remote-fs swap cryptsetup; do
        for u in "/etc/systemd/system/$t.target.wants"/*; do
            [ -e "$u" ] || [ -L "$u" ] || continue
            u=${u##*/}
            case " ${TESTHOST_KEEP_UNITS:-} " in *" $u "*) continue ;; esac
            echo "$u"
        done
    done | sort -u | tr '\n' ' '
}
