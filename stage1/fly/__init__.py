"""The ``fly`` way of running apps (issue #25's flavor, seeded by the CRI's hostPID sandboxes):
each app a transient unit of the HOST's systemd, its rendered root as ``RootDirectory=``, the
same confinement profile an app gets inside an nspawn pod (stage1/app_unit.py ``profile``), in
the host's PID namespace. Like rkt's fly it is no isolation boundary for processes: an app sees,
and with the capabilities it has may signal, every process of the host.

Today its only user is an app sandbox whose spec says ``host_pid`` (the CRI's NamespaceOption
pid=NODE): the sandbox's nspawn pod stays its "pause" container, holding the network namespace
CNI made and the IPC namespace its apps share, and its apps join those from the host
(``NetworkNamespacePath=``/``IPCNamespacePath=`` of the pod's leader), bound to the pod's unit
(``BindsTo=``), so the pod's stop stops them. ``plan`` is pure (unit properties, command
lines); ``apps`` does the mounts and starts.
"""
