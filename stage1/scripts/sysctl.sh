#!/bin/sh
# sysctl KEY=VALUE…: set the pod's own kernel settings (its IPC namespace's; stage0 lets no other
# key through). nspawn mounts the pod's /proc/sys read-only, so they are written through a procfs of
# this unit's own, mounted in its private mount namespace (PrivateMounts=) and gone with it.
set -eu
/usr/bin/mount -t proc proc /proc
for setting; do
    key=$(printf %s "${setting%%=*}" | /usr/bin/tr . /)
    printf '%s\n' "${setting#*=}" >"/proc/sys/$key"
done
