"""``nspod image …``: build, validate and inspect images, and manage the image store."""

from __future__ import annotations

import argparse
import json
import os
import sys

from stage0.cli.args import duration
from stage0.cli.output import add_format
from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = verbs.add_parser("image", help="build, validate, inspect and manage images")
    sub = image.add_subparsers(dest="image_verb", metavar="VERB", required=True)

    build = sub.add_parser("build", help="build an ACI from an image layout (manifest + rootfs/)")
    build.add_argument("layout", metavar="LAYOUT_DIR")
    build.add_argument("output", metavar="OUT.aci")
    build.add_argument(
        "--compression",
        choices=["gzip", "xz", "zstd", "none"],
        default="gzip",
        help="compression of the archive (default: %(default)s)",
    )
    build.add_argument("--owner-root", action="store_true", help="store every entry as owned by root:root")
    build.add_argument("--overwrite", action="store_true", help="replace OUT.aci if it exists")
    build.set_defaults(handler=run_build)

    validate = sub.add_parser("validate", help="validate ACIs, image layouts and manifests")
    validate.add_argument("paths", nargs="+", metavar="FILE.aci|LAYOUT_DIR|MANIFEST")
    validate.set_defaults(handler=run_validate)

    cat = sub.add_parser("cat-manifest", help="print the manifest of a stored image or an ACI file")
    cat.add_argument("image", metavar="IMAGE|FILE.aci")
    cat.add_argument("--pretty-print", action="store_true", help="indent the JSON")
    cat.set_defaults(handler=run_cat_manifest)

    listing = sub.add_parser("list", help="list the images in the store")
    listing.add_argument(
        "--fields",
        default=",".join(("id", "name", "size", "importtime", "lastused")),
        help="comma list of: id, name, size, importtime, lastused, latest, signer, source",
    )
    listing.add_argument("--sort", default="importtime", help="field to sort by (default: %(default)s)")
    listing.add_argument("--order", choices=["asc", "desc"], default="asc", help="sort order (default: asc)")
    listing.add_argument("--no-legend", action="store_true", help="leave out the header line")
    listing.add_argument("--full", action="store_true", help="show whole image IDs")
    add_format(listing)
    listing.set_defaults(handler=run_list)

    rm = sub.add_parser("rm", help="remove images (by ID prefix or name[:version][,labels])")
    rm.add_argument("images", nargs="+", metavar="IMAGE")
    rm.set_defaults(handler=run_rm)

    gc = sub.add_parser("gc", help="remove images not used for a while, and stale rendered trees")
    gc.add_argument(
        "--grace-period",
        type=duration,
        default=duration("24h"),
        metavar="DURATION",
        help="keep images used within this time (default: 24h)",
    )
    gc.set_defaults(handler=run_gc)

    export = sub.add_parser("export", help="write a stored image out as an ACI (exactly as fetched)")
    export.add_argument("image", metavar="IMAGE")
    export.add_argument("output", metavar="OUT.aci")
    export.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    export.set_defaults(handler=run_export)

    for verb, text in (
        ("extract", "extract an image's own files (without dependencies) into a directory"),
        ("render", "render an image with its dependencies into a directory"),
    ):
        parser = sub.add_parser(verb, help=text)
        parser.add_argument("image", metavar="IMAGE")
        parser.add_argument("target", metavar="DIR")
        parser.add_argument("--rootfs-only", action="store_true", help="write the root file system only")
        parser.set_defaults(handler=run_extract if verb == "extract" else run_render)

    verify = sub.add_parser(
        "verify", help="re-check stored images: content against ID, signature against trust"
    )
    verify.add_argument("images", nargs="+", metavar="IMAGE")
    verify.set_defaults(handler=run_verify)


def run_build(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.images.aci.build import build_aci
    from stage0.images.aci.compression import Compression

    image_id = build_aci(
        args.layout,
        args.output,
        compression=Compression(args.compression),
        owner_root=args.owner_root,
        overwrite=args.overwrite,
    )
    print(image_id)
    return 0


def validate_one(path: str) -> str:
    """One line describing a valid input; raises the first problem found."""
    from stage0.errors import InputError
    from stage0.images.aci.archive import inspect_aci
    from stage0.images.aci.compression import SNIFF_SIZE, sniff
    from stage0.images.aci.layout import check_layout
    from stage0.schema.boundary import parse_manifest

    if os.path.isdir(path):
        layout = check_layout(path)
        return f"{path}: valid image layout ({layout.manifest.name})"
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_SIZE)
            if sniff(head) is None:  # not an archive: a manifest on its own
                manifest = parse_manifest(head + file.read(), path)
                return f"{path}: valid {type(manifest).__name__}"
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    info = inspect_aci(path)
    return f"{path}: valid ACI {info.manifest.name} {info.image_id}"


def run_validate(options: GlobalOptions, args: argparse.Namespace) -> int:
    for path in args.paths:
        print(validate_one(path))
    return 0


def run_cat_manifest(options: GlobalOptions, args: argparse.Namespace) -> int:
    import contextlib

    if os.path.isfile(args.image):
        from stage0.images.aci.archive import read_manifest_bytes

        data = read_manifest_bytes(args.image)
    else:
        from stage0.context import open_store
        from stage0.images.catalog import resolve_one

        with open_store(options) as store:
            data = resolve_one(store, args.image, options.config_dirs).manifest
    if args.pretty_print:
        # printed as stored, valid or not: cat-manifest is how one looks at a broken manifest
        with contextlib.suppress(ValueError):
            data = (json.dumps(json.loads(data), indent=2) + "\n").encode()
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
    return 0


def run_list(options: GlobalOptions, args: argparse.Namespace) -> int:
    import time

    from stage0.api.images import list_images
    from stage0.cli.format import HEADERS, Field, row_value, sort_key, table
    from stage0.errors import UsageError

    try:
        fields = [Field(f.strip()) for f in args.fields.split(",") if f.strip()]
        order_by = Field(args.sort)
    except ValueError as error:
        raise UsageError(f"{error}", hint=f"fields are: {', '.join(f.value for f in Field)}") from None
    rows = sorted(list_images(options), key=lambda r: sort_key(r, order_by), reverse=args.order == "desc")
    now = time.time()
    if args.format == "json":  # every field, whatever --fields says: stable keys for programs
        from stage0.cli.output import dump, image_json

        dump([image_json(r) for r in rows])
        return 0
    cells = [[row_value(r, f, full=args.full, now=now) for f in fields] for r in rows]
    sys.stdout.write(table(cells, None if args.no_legend else [HEADERS[f] for f in fields]))
    return 0


def run_rm(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.images import remove_image

    for image_id in remove_image(options, *args.images):
        print(f"removed {image_id}")
    return 0


def run_gc(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.context import open_store
    from stage0.images.catalog import display_name, gc

    with open_store(options) as store:
        for row in gc(store, options.dir, args.grace_period):
            print(f"removed {row.id} ({display_name(row)})")
    return 0


def run_export(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.context import open_store
    from stage0.images.catalog import export, resolve_one

    with open_store(options) as store:
        export(
            store,
            resolve_one(store, args.image, options.config_dirs),
            args.output,
            overwrite=args.overwrite,
        )
    return 0


def run_extract(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.context import open_store
    from stage0.images.catalog import extract, resolve_one

    with open_store(options) as store:
        extract(
            store,
            resolve_one(store, args.image, options.config_dirs),
            args.target,
            rootfs_only=args.rootfs_only,
        )
    return 0


def run_render(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.context import fetcher, open_store
    from stage0.images.catalog import copy_rendered, resolve_one
    from stage0.images.fetch.policy import PullPolicy
    from stage0.images.render import rendered_rootfs

    with open_store(options) as store:
        row = resolve_one(store, args.image, options.config_dirs)
        if row.is_oci:
            from stage0.images.catalog import extract

            extract(store, row, args.target, rootfs_only=args.rootfs_only)  # no dependencies to render
            return 0
        rootfs = rendered_rootfs(store, row, fetcher(options, store, PullPolicy.NEW).resolve_dependency)
        copy_rendered(rootfs, row.manifest, args.target, rootfs_only=args.rootfs_only)
    return 0


def run_verify(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.context import keystore, open_store
    from stage0.images.catalog import resolve, verify

    with open_store(options) as store:
        for text in args.images:
            for row in resolve(store, text, options.config_dirs):
                result = verify(store, keystore(options), row)
                signed = f"signed by {result.signer}" if result.signer else "no signature stored"
                print(f"{row.id}: content matches its ID; {signed}")
    return 0
