# shellcheck shell=bash
# testhost.sh, part: booting and powering off (sourced by testhost.sh; uses its variables and helpers)

# ---------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------
cmd_up() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    DIR=$(realpath -m "$1")
    mkdir -p "$DIR"
    if [ -f "$DIR/pid" ]; then
        PID=$(cat "$DIR/pid"); LAUNCHER=$(cat "$DIR/launcher.pid" 2>/dev/null || true)
        host_alive && die "a test host is already running from $DIR (pid $PID)"
        log "stale state in $DIR, cleaning it first"
        cmd_down "$DIR" >/dev/null || true
    fi
    rm -rf "$DIR/etc.upper" "$DIR/etc.work" "$DIR/pid" "$DIR/pid.tmp" "$DIR/pidns" \
           "$DIR/pidns.tmp" "$DIR/launcher.pid" "$DIR/console.log" "$DIR/down.report"

    local hash base
    hash=$(printf '%s' "$DIR" | sha256sum | cut -c1-8)
    base=$(basename "$DIR" | tr -c 'a-zA-Z0-9\n-' '-' | cut -c1-20)
    NAME=${TESTHOST_NAME:-$base-$hash}
    MID=$(tr -d '-' </proc/sys/kernel/random/uuid)
    echo "$NAME" >"$DIR/name"

    # 1. one cgroup per hierarchy, below the caller's own cgroup
    local cgname=testhost-$hash mp t o p dir
    : >"$DIR/cgroups"
    : >"$DIR/caller.cgroups"
    while read -r mp t o p; do
        dir=$(realpath -m "$mp/$p/$cgname")
        [ -d "$dir" ] && { find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
        mkdir "$dir" || die "cannot create cgroup $dir"
        # a new v1 cpuset is empty and refuses tasks: copy the parent's sets
        if [ -f "$dir/cpuset.cpus" ] && [ -z "$(cat "$dir/cpuset.cpus")" ]; then
            cat "$dir/../cpuset.cpus" >"$dir/cpuset.cpus"
            cat "$dir/../cpuset.mems" >"$dir/cpuset.mems"
        fi
        echo "$mp $t $o $dir" >>"$DIR/cgroups"
        echo "$mp $t $o $(realpath -m "$mp/$p")" >>"$DIR/caller.cgroups"
    done < <(cg_hierarchies)
    [ -s "$DIR/cgroups" ] || die "no cgroup hierarchies found"

    write_init
    date +%s >"$DIR/up.epoch"
    touch "$DIR/up.stamp"

    # 2. launch: move into the new cgroups, then unshare everything
    local t0 t1 state rc
    t0=$(now_ms)
    (
        cg_move "$BASHPID" "$DIR/cgroups" || exit 1
        exec setsid unshare --pid --fork --kill-child=SIGKILL --mount --propagation private \
            --uts --ipc --net --cgroup -- /bin/bash "$DIR/init.sh"
    ) </dev/null >"$DIR/console.log" 2>&1 &
    local bg=$!

    # a failed boot must not leave cgroups or processes behind
    fail_up() {
        log "error: $*"
        cat "$DIR/console.log" >&2
        [ -n "${PID:-}" ] || { PID=$(cat "$DIR/pid.tmp" 2>/dev/null || true); }
        if [ -n "${PID:-}" ]; then kill -KILL "$PID" 2>/dev/null || true; fi
        if alive "$bg"; then kill -KILL "$bg" 2>/dev/null || true; fi
        sleep 0.2
        cmd_down "$DIR" >&2 || true
        exit 1
    }

    # 3. wait for init.sh to hand over to systemd, then for boot to finish
    local deadline=$(( $(date +%s) + BOOT_TIMEOUT ))
    while [ ! -f "$DIR/pid" ]; do
        alive "$bg" || fail_up "launcher died before systemd started"
        [ "$(date +%s)" -lt "$deadline" ] || fail_up "timeout waiting for $DIR/pid"
        sleep 0.02
    done
    PID=$(cat "$DIR/pid"); LAUNCHER=$(cat "$DIR/launcher.pid")
    # the unshare process stays outside; put it back into the caller's cgroups
    # so systemd's root cgroup holds no foreign process (matters on cgroup2)
    if alive "$LAUNCHER"; then cg_move "$LAUNCHER" "$DIR/caller.cgroups" || true; fi
    while [ ! -S "/proc/$PID/root/run/systemd/private" ]; do
        host_alive || fail_up "systemd exited during boot"
        [ "$(date +%s)" -lt "$deadline" ] || break
        sleep 0.02
    done
    set +e
    state=$(in_host timeout "$(( deadline - $(date +%s) > 1 ? deadline - $(date +%s) : 1 ))" \
            systemctl is-system-running --wait 2>/dev/null)
    rc=$?
    set -e
    t1=$(now_ms)
    echo "$state" >"$DIR/boot.state"
    case $state in
        running) ;;
        degraded)
            log "boot finished DEGRADED; failed units:"
            in_host systemctl --failed --no-legend --plain >&2 || true ;;
        *)
            in_host systemctl list-jobs --no-pager >&2 || true
            in_host systemctl --failed --no-legend --plain >&2 || true
            fail_up "boot did not finish (state '${state:-?}', rc $rc) within ${BOOT_TIMEOUT}s" ;;
    esac
    # anything running beyond the expected set means something on this machine
    # leaks into the test host's boot: say so (does not fail the boot)
    local extra
    extra=$(in_host systemctl list-units --state=active --no-legend --plain \
                --type=service,socket,timer,path,automount 2>/dev/null | awk '{print $1}' |
            grep -vxE 'dbus\.(service|socket)|systemd-journald(-dev-log)?\.(service|socket)|systemd-machined\.service|systemd-tmpfiles-setup\.service' |
            tr '\n' ' ' || true)
    [ -n "$extra" ] && log "note: also active at boot: $extra"
    local analyze
    analyze=$(in_host systemd-analyze time 2>/dev/null | head -1 || true)
    echo "$(( t1 - t0 ))" >"$DIR/boot.ms"
    echo "testhost $NAME up: pid=$PID state=$state boot_ms=$(( t1 - t0 )) ($analyze)"
}

# ---------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------
cmd_down() {
    DIR=$(realpath -m "$1")
    [ -f "$DIR/cgroups" ] || die "no test host state in $DIR"
    PID=$(cat "$DIR/pid" 2>/dev/null || true)
    LAUNCHER=$(cat "$DIR/launcher.pid" 2>/dev/null || true)
    local t0 t1 how=none report=$DIR/down.report
    : >"$report"; : >"$DIR/down.notes"
    t0=$(now_ms)

    if [ -n "$PID" ] && host_alive; then
        stop_execs
        how=poweroff
        # the proper way (like the earlier manual test); fall back to the
        # signal systemd documents for "start poweroff.target"
        in_host timeout 10 systemctl poweroff --no-block >/dev/null 2>&1 \
            || { how=SIGRTMIN+4; kill -s RTMIN+4 "$PID" 2>/dev/null || true; }
        local deadline=$(( $(date +%s) + DOWN_TIMEOUT )) n=0
        while host_alive && [ "$(date +%s)" -lt "$deadline" ]; do
            sleep 0.02; n=$((n + 1))
            [ $((n % 10)) = 0 ] && unstick
        done
        if host_alive; then
            how="$how+SIGKILL"
            echo "systemd did not exit within ${DOWN_TIMEOUT}s: SIGKILL to pid $PID" >>"$report"
            kill -KILL "$PID" 2>/dev/null || true   # kills the whole PID namespace
            deadline=$(( $(date +%s) + 10 ))
            while alive "$PID" && [ "$(date +%s)" -lt "$deadline" ]; do unstick; sleep 0.1; done
            alive "$PID" && echo "pid $PID still exists after SIGKILL (state $(proc_state "$PID"))" >>"$report"
        fi
    fi
    # The unshare parent exits right after its child, once the kernel has torn
    # down the namespaces it holds (a non-volatile /etc overlay would make
    # that a disk sync).  As its parent ("up") is gone, the VM's init reaps
    # it, here 1-2 s later, so a zombie counts as exited.
    local i=0 st
    while [ -n "$LAUNCHER" ] && [ $i -lt 500 ]; do
        st=$(proc_state "$LAUNCHER")
        if [ -z "$st" ] || [ "$st" = Z ] || [ "$(cat /proc/"$LAUNCHER"/comm 2>/dev/null)" != unshare ]; then
            break
        fi
        sleep 0.02; i=$((i + 1))
    done
    t1=$(now_ms)

    # leftovers 1: processes still in the test host's PID namespace (one
    # find over /proc; -lname compares the ns link without a fork per pid)
    local pidns p left=0
    pidns=$(cat "$DIR/pidns" 2>/dev/null || true)
    if [ -n "$pidns" ]; then
        local pat=${pidns//[/\\[}; pat=${pat//]/\\]}     # -lname takes a glob
        for p in $(find /proc/[0-9]*/ns -maxdepth 1 -name pid -lname "$pat" 2>/dev/null | cut -d/ -f3); do
            [ "$(proc_state "$p")" = Z ] && continue   # dead, the VM's init reaps it
            echo "leftover process in pid ns: $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >>"$report"
            kill -KILL "$p" 2>/dev/null || true
            left=$((left + 1))
        done
    fi
    # leftovers 2: processes still in its cgroups (e.g. a stuck "exec")
    for p in $(cg_pids); do
        [ "$(proc_state "$p")" = Z ] && continue
        echo "leftover process in its cgroups: $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >>"$report"
        kill -KILL "$p" 2>/dev/null || true
        left=$((left + 1))
    done
    [ $left -gt 0 ] && sleep 0.2
    local mp t o dir

    # leftovers 3: cgroup directories it created (depth-first rmdir)
    local ncg=0 nfail=0 d
    while read -r mp t o dir; do
        [ -d "$dir" ] || continue
        while IFS= read -r d; do
            ncg=$((ncg + 1))
            rmdir "$d" 2>/dev/null || { nfail=$((nfail + 1)); echo "cannot remove cgroup $d" >>"$report"; }
        done < <(find "$dir" -depth -type d)
    done <"$DIR/cgroups"

    # leftovers 4: mounts on the VM that mention DIR (there should be none:
    # everything was mounted in the private mount namespace)
    local mnts
    mnts=$(awk -v d="$DIR" 'index($5, d) == 1 || index($0, "upperdir=" d) {print $5}' /proc/self/mountinfo)
    if [ -n "$mnts" ]; then
        echo "leftover mounts on the VM: $mnts" >>"$report"
        for d in $(sort -r <<<"$mnts"); do umount -l "$d" 2>/dev/null || true; done
    fi
    # leftovers 5: files it may have left in the VM's shared /tmp and /var
    if [ -f "$DIR/up.stamp" ]; then
        find /tmp /var/tmp -maxdepth 1 -name 'systemd-private-*' -newer "$DIR/up.stamp" 2>/dev/null \
            | sed 's/^/new PrivateTmp dir (may be this host'"'"'s): /' >>"$report" || true
        find /var/log/journal /var/lib/systemd -newer "$DIR/up.stamp" 2>/dev/null \
            | sed 's/^/changed under \/var since up: /' >>"$report" || true
    fi

    rm -rf "$DIR/etc.upper" "$DIR/etc.work"
    rm -f "$DIR/pid" "$DIR/pidns" "$DIR/launcher.pid"
    echo "testhost down: how=$how shutdown_ms=$(( t1 - t0 )) cgroups_removed=$((ncg - nfail)) cgroups_left=$nfail leftover_procs=$left"
    [ -s "$DIR/down.notes" ] && sed 's/^/  note: /' "$DIR/down.notes"
    if [ -s "$report" ]; then
        sed 's/^/  residue: /' "$report"
    else
        echo "  residue: none"
    fi
}
