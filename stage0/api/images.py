"""Image operations every front end calls: pull (fetch into the store, dependencies rendered),
list, status and removal; typed results (:class:`stage0.api.views.ImageView`), nothing printed.
An image is named as the CLI names it: an ID or a unique prefix, NAME[:VERSION], or an OCI
reference (stage0/images/catalog.py resolve)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stage0 import context
from stage0.api.views import ImageView
from stage0.events import emit
from stage0.images.catalog import remove_images, resolve, resolve_one
from stage0.images.fetch.policy import QUIET, PullPolicy, Report
from stage0.options import GlobalOptions

if TYPE_CHECKING:
    from stage0.images.fetch.auth import Credentials


def pull(
    options: GlobalOptions,
    reference: str,
    *,
    policy: PullPolicy = PullPolicy.UPDATE,
    signature: str | None = None,
    auth: Credentials | None = None,
    unsigned_without_key: bool = False,
    report: Report = QUIET,
) -> ImageView:
    """Fetch an image into the store (as ``nspod fetch``): verified as the options say; an ACI's
    dependencies fetched and its tree rendered now, so a later run needs no network. ``auth``: the
    credentials for the image's registry (over auth.d's); ``unsigned_without_key``: an OCI image
    no trusted key covers is taken unsigned (the CRI's pull policy, stage0/cri/images.py)."""
    with context.open_store(options) as store:
        fetcher = context.fetcher(
            options,
            store,
            policy,
            report,
            auth=_auth_for(options, reference, auth),
            unsigned_without_key=unsigned_without_key,
        )
        row = fetcher.fetch(reference, signature=signature)
        if not row.is_oci:  # an OCI image has no dependencies: its layers are its tree
            # imported here: it loads the appc schema (~15 ms), which an OCI pull never needs
            from stage0.images.render import rendered_rootfs

            rendered_rootfs(store, row, fetcher.resolve_dependency)
        view = ImageView.of(store.by_id(row.id))
    if row.signer:  # verified on its way into the store (now or when it was first fetched)
        emit("verify", image=row.id, image_name=view.name, signer=row.signer, reference=reference)
    emit("pull", image=row.id, image_name=view.name, reference=reference)
    return view


def _auth_for(options: GlobalOptions, reference: str, auth: Credentials | None) -> dict[str, Credentials]:
    if auth is None:
        return {}
    from stage0.images.fetch.refs import RefKind, parse_ref
    from stage0.images.oci.reference import default_registry, parse_oci_ref

    ref = parse_ref(reference)
    if ref.kind is not RefKind.OCI:
        return {}
    return {parse_oci_ref(ref.target, default_registry(options.config_dirs)).registry.lower(): auth}


def list_images(options: GlobalOptions) -> list[ImageView]:
    with context.open_store(options) as store:
        sharing = store.index.layer_sharing()
        return [ImageView.of(row, sharing) for row in store.index.images()]


def image_status(options: GlobalOptions, reference: str) -> ImageView:
    """One image; raises ImageNotFound (kind not-found) or an ambiguity error."""
    with context.open_store(options) as store:
        row = resolve_one(store, reference, options.config_dirs)
        return ImageView.of(row, store.index.layer_sharing())


def remove_image(options: GlobalOptions, *references: str) -> list[str]:
    """Remove the images the references name (every image a reference matches); their IDs. An image
    a prepared or running pod uses is not removed (an error says which)."""
    with context.open_store(options) as store:
        rows = {row.id: row for text in references for row in resolve(store, text, options.config_dirs)}
        removed = remove_images(store, options.dir, list(rows.values()))
    for image in removed:
        emit("image-remove", image=image, image_name=rows[image].name if image in rows else None)
    return removed
