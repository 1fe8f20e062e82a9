"""The domain API: the operations every front end calls — the command line (stage0/cli), the pool
keeper (stage0/pool) and the CRI server (stage0/cri). Typed requests in (:class:`PodRequest`,
:class:`AppRequest` from stage0/pods/requests.py), typed results out (the read model in
:mod:`stage0.api.views`). Nothing here prints: what a long operation tells as it goes is a
:class:`Report` of callbacks (``say`` for lines, ``progress`` for transfers; quiet by default).
Failures raise :class:`stage0.errors.Error` subclasses, each with a ``kind``
(:class:`stage0.errors.ErrorKind`); front ends map kinds (exit codes: stage0/errors.py
``EXIT_CODES``; gRPC codes: stage0/cri/status.py). Every function takes the global options first
and opens what it needs itself (the store, the pods directory), so calls from several threads at
once are safe: no state is kept between calls (the image index gives each thread its own
connection). A pod is named by its UUID, a unique prefix of it, or its machine name.

Pods (:mod:`stage0.api.pods`)::

    prepare(options, request, *, to_run, pull_policy="new", uuid_file=None, unit=None,
            report=QUIET) -> Prepared                     # fetch, render, plan, write the pod
    Prepared.start(options, *stage1_args, verb="run") -> int   # stage1 runs it (exit status)
    start_prepared(options, pod_id) -> Prepared           # a prepared pod moved to run/
    list_pods(options) -> list[PodView]
    pod_status(options, pod_id) -> PodView                # with the host unit's main PID
    wait_pod(options, pod_id, until="exited"|"ready", timeout) -> Pod
    profile(view) -> Any                                  # each app's confinement (profile.json)
    find(options, pod_id) -> Pod
    stop(options, pod, *, force=False) -> bool            # False: stage1 failed (it said why)
    remove(options, pod_id) -> str                        # a pod that no longer runs; its UUID
    remove_dir(options, pod) -> bool                      # clean up and remove, whatever its state
    relaxing(options, request) -> PodRequest              # --insecure-options lifting the profile

App sandboxes (:mod:`stage0.api.sandbox`; a failed stage1 step raises ``Stage1Failed(code)``)::

    create_sandbox(options, request, *, pull_policy="new", uuid_file=None, report=QUIET) -> PodView
    add_app(options, pod_id, app: AppRequest, *, pull_policy="new", report=QUIET) -> str  # its name
    start_app(options, pod_id, app) -> None
    stop_app(options, pod_id, app, timeout: float | None = None) -> None   # then SIGKILL
    remove_app(options, pod_id, app) -> None
    app_views(options, pod_id, app=None) -> list[AppView]

Images (:mod:`stage0.api.images`)::

    pull(options, reference, *, policy=PullPolicy.UPDATE, signature=None,
         auth: Credentials | None = None, report=QUIET) -> ImageView
    list_images(options) -> list[ImageView]
    image_status(options, reference) -> ImageView         # ImageNotFound (kind not-found)
    remove_image(options, *references) -> list[str]       # the removed IDs

Reading more of a pod (:mod:`stage0.api.inspect`, :mod:`stage0.api.stats`)::

    pod_details(options, pod_id) -> PodDetails            # view, apps' AppViews, spec, finished
    running(options, refs) -> list[PodView]               # the pods named (each must run), or all running
    pod_usage(view) -> PodUsage                           # CPU ns, memory, limit, PIDs, block and net I/O

The read model (:mod:`stage0.api.views`): ``PodView`` (uuid, path, state, machine, unit, created,
started, apps: ``PodApp`` with image, exit code and signal, networks: ``NetView`` with addresses
and gateways, pid; ``addresses()``), ``AppView`` (name, state: ``AppState``, exit code, signal,
started, exited, pid), ``ImageView`` (id, name, reference, digest, labels, sizes, times, signer,
source, manifest).
"""

from stage0.images.fetch.policy import QUIET, Report, Transfer

__all__ = ["QUIET", "Report", "Transfer"]
