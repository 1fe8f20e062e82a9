# shellcheck shell=bash
# testhost.sh, part: cgroup discovery on the host side (sourced by testhost.sh; uses its variables and helpers)

# ---------------------------------------------------------------------------
# cgroup discovery (host side)
# ---------------------------------------------------------------------------

# Print one line per mounted cgroup hierarchy:
#   MOUNTPOINT TYPE MOUNT_OPTIONS CALLER_PATH
# MOUNT_OPTIONS is what "mount -t cgroup -o" needs to mount the same v1
# hierarchy again ("cpu", "none,name=systemd"); "-" for cgroup2.  CALLER_PATH
# is this process's cgroup in that hierarchy (from /proc/self/cgroup).
cg_hierarchies() {
    # one awk pass (the shell version forked ~300 times: half a second)
    awk '
    function sortcsv(s,    n, a, i, j, t, out) {     # "cpuacct,cpu" -> "cpu,cpuacct"
        n = split(s, a, ",")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        out = a[1]; for (i = 2; i <= n; i++) out = out "," a[i]
        return out
    }
    FNR == NR {                                         # /proc/self/cgroup  ID:CTRLS:PATH
        id = $0; sub(/:.*/, "", id)
        rest = substr($0, length(id) + 2); ctrls = rest; sub(/:.*/, "", ctrls)
        path = substr(rest, length(ctrls) + 2)
        if (id == "0") v2path = path; else cg[sortcsv(ctrls)] = path
        next
    }
    {                                                   # /proc/self/mountinfo
        for (i = 1; i <= NF; i++) if ($i == "-") break
        t = $(i + 1)
        if (t == "cgroup2") {
            if (!seen["cgroup2"]++) print $5, t, "-", v2path
            next
        }
        if (t != "cgroup") next
        n = split($(i + 3), o, ","); c = ""
        for (j = 1; j <= n; j++)                        # keep controllers and name=...
            if (o[j] !~ /^(rw|ro|xattr|noprefix|clone_children|cpuset_v2_mode|favordynmods|none|release_agent=.*)$/)
                c = c (c == "" ? "" : ",") o[j]
        key = sortcsv(c)
        if (!(key in cg)) { print "testhost: warning: no /proc/self/cgroup entry for " $5 ", skipped" > "/dev/stderr"; next }
        if (seen[key]++) next                           # same hierarchy mounted twice
        print $5, t, (c ~ /^name=/ ? "none," c : c), cg[key]
    }' /proc/self/cgroup /proc/self/mountinfo
}

# Move process $1 into every cgroup directory listed in file $2 ("MP TYPE OPTS DIR").
cg_move() {
    local pid=$1 file=$2 mp t o dir rc=0
    while read -r mp t o dir; do
        echo "$pid" >"$dir/cgroup.procs" 2>/dev/null || { log "warning: cannot move $pid into $dir"; rc=1; }
    done <"$file"
    return $rc
}
