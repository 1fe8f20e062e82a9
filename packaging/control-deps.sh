#!/bin/sh
# control-deps.sh FIELD [CONTROL] — the package names in one field of debian/control (Depends,
# Build-Depends …), one a line: versions, architecture qualifiers and ${substvars} dropped, the first
# of alternatives kept. awk only: the Makefile reads it on a fresh Debian before python3 is there.
set -eu
field=$1
control=${2:-$(dirname "$0")/debian/control}
awk -v field="$field" '
	/^[^ \t#][^:]*:/ {
		name = substr($0, 1, index($0, ":") - 1)
		infield = (tolower(name) == tolower(field))
		if (infield) { buf = buf "," substr($0, index($0, ":") + 1) }
		next
	}
	/^[ \t]/ && infield { buf = buf " " $0; next }
	/^$/ { infield = 0 }
	END {
		n = split(buf, deps, ",")
		for (i = 1; i <= n; i++) {
			d = deps[i]
			sub(/\|.*/, "", d)            # the first alternative
			gsub(/\([^)]*\)|\[[^]]*\]|<[^>]*>/, "", d)   # versions, architectures, profiles
			gsub(/[ \t]/, "", d)
			sub(/:any$|:native$/, "", d)
			if (d != "" && d !~ /^\$\{/) print d
		}
	}
' "$control"
