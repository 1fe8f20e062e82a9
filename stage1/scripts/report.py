#!/usr/bin/python3
# report APP COUNT: APP has started (and said READY=1 if it speaks sd_notify); tell the host unit
# how many of the pod's COUNT apps are ready, as its STATUS=.
# report --ended: every app has ended. Say READY=1 in case the pod ends before its boot completed
# (when the pod's systemd would have said it): a unit that never said it fails with 'protocol'.
import contextlib
import os
import socket
import struct
import sys

if sys.argv[1:] == ["--ended"]:
    message = b"READY=1"
else:
    os.makedirs("/run/nspod-ready", exist_ok=True)
    open(f"/run/nspod-ready/{sys.argv[1]}", "w").close()
    message = f"STATUS={len(os.listdir('/run/nspod-ready'))}/{sys.argv[2]} apps ready".encode()
# sent in the name of the pod's PID 1: the host manager attributes a message by its sender's PID,
# looked up when it reads the message, and this script may be gone by then; PID 1 lasts the pod
credentials = (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("3i", 1, 0, 0))
# no host manager listening (a pod run outside systemd): nothing to report
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
    sock.sendmsg([message], [credentials], 0, "/run/nspod/host-notify")
