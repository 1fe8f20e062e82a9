"""``nspod image …``: build, validate and inspect App Container Images."""

from __future__ import annotations

import argparse
import os
import sys

from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = verbs.add_parser("image", help="build, validate and inspect images")
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

    cat = sub.add_parser("cat-manifest", help="print the manifest of an ACI")
    cat.add_argument("aci", metavar="FILE.aci")
    cat.add_argument("--pretty-print", action="store_true", help="indent the JSON")
    cat.set_defaults(handler=run_cat_manifest)


def run_build(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.aci.build import build_aci
    from stage0.aci.compression import Compression

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
    from stage0.aci.archive import inspect_aci
    from stage0.aci.compression import SNIFF_SIZE, sniff
    from stage0.aci.layout import check_layout
    from stage0.errors import InputError
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
    import json

    from stage0.aci.archive import read_manifest_bytes

    data = read_manifest_bytes(args.aci)
    if args.pretty_print:
        # printed as stored, valid or not: cat-manifest is how one looks at a broken manifest
        with contextlib.suppress(ValueError):
            data = (json.dumps(json.loads(data), indent=2) + "\n").encode()
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
    return 0
