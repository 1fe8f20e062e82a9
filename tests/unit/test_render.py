"""Rendering images with dependencies and path whitelists, as the appc spec and acirenderer define it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stage0.images.aci.build import build_aci
from stage0.images.render import Layer, RenderError, plan, rendered_rootfs, store_resolver
from stage0.images.store.store import Store


def layer(name: str, level: int, whitelist: list[str] | None = None) -> Layer:
    return Layer(name, level, frozenset(whitelist) if whitelist else None)


def test_order_and_override_spec_example() -> None:
    """A → [B, C], C → [D]: the flat list is A, C, D, B; upper images win."""
    layers = [layer("A", 0), layer("C", 1), layer("D", 2), layer("B", 1)]
    files = [
        {"": True, "a": False},
        {"": True, "x": False, "c": False},
        {"": True, "x": False, "d": False},
        {"": True, "x": False, "b": False, "d": False},
    ]
    chosen = plan(layers, files)
    assert chosen == {"": 0, "a": 0, "x": 1, "c": 1, "d": 2, "b": 3}


def test_whitelists() -> None:
    layers = [layer("A", 0), layer("B", 1, ["etc/keep", "bin/sh"]), layer("C", 2)]
    files = [
        {"": True, "app": False},
        {"": True, "etc": True, "etc/keep": False, "etc/drop": False},
        {"": True, "bin": True, "bin/sh": False, "bin/ls": False, "var": True, "var/log": False},
    ]
    chosen = plan(layers, files)
    # B's own files obey its whitelist (its directories are exempt); C's obey B's, directories too
    assert set(chosen) == {"", "app", "etc", "etc/keep", "bin/sh"}


def test_farthest_whitelist_bounds_the_branch() -> None:
    layers = [layer("A", 0, ["app", "bin/sh"]), layer("B", 1, ["bin/sh", "lib/libc"]), layer("C", 2)]
    files = [{"": True, "app": False}, {"": True}, {"": True, "bin/sh": False, "lib/libc": False}]
    assert set(plan(layers, files)) == {"", "app", "bin/sh"}


def test_nothing_under_an_upper_non_directory() -> None:
    layers = [layer("A", 0), layer("B", 1)]
    files = [{"": True, "lib": False}, {"": True, "lib": True, "lib/x": False}]
    assert plan(layers, files) == {"": 0, "lib": 0}


# -- real images: a three-level chain built, imported and rendered --------------------------------


def make_image(
    tmp: Path,
    name: str,
    files: dict[str, str],
    *,
    deps: list[dict[str, Any]] | None = None,
    whitelist: list[str] | None = None,
) -> Path:
    root = tmp / name.replace("/", "_")
    for rel, text in files.items():
        path = root / "rootfs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "rootfs").mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [{"name": "version", "value": "1"}],
    }
    if deps:
        manifest["dependencies"] = deps
    if whitelist:
        manifest["pathWhitelist"] = whitelist
    (root / "manifest").write_text(json.dumps(manifest))
    aci = tmp / f"{root.name}.aci"
    build_aci(str(root), str(aci))
    return aci


def tree(rootfs: str) -> dict[str, str]:
    base = Path(rootfs)
    return {str(p.relative_to(base)): p.read_text() for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Store, dict[str, str]]:
    store = Store.open(str(tmp_path / "store"))
    ids = {}
    base = make_image(
        tmp_path,
        "example.com/base",
        {
            "bin/sh": "sh from base",
            "etc/os-release": "base",
            "etc/secret": "secret",
            "usr/lib/libc.so": "libc",
            "var/x": "var",
        },
    )
    ids["base"] = store.import_file(str(base)).id
    middle = make_image(
        tmp_path,
        "example.com/middle",
        {"opt/b/tool": "tool", "opt/b/extra": "extra", "etc/os-release": "middle"},
        deps=[{"imageName": "example.com/base", "imageID": ids["base"]}],
        whitelist=["/bin/sh", "/etc/os-release", "/usr/lib/libc.so", "/opt/b/tool"],
    )
    ids["middle"] = store.import_file(str(middle)).id
    top = make_image(
        tmp_path,
        "example.com/top",
        {"app/run": "run"},
        deps=[{"imageName": "example.com/middle", "labels": [{"name": "version", "value": "1"}]}],
    )
    ids["top"] = store.import_file(str(top)).id
    return store, ids


def test_three_level_chain(chain: tuple[Store, dict[str, str]]) -> None:
    store, ids = chain
    rootfs = rendered_rootfs(store, store.by_id(ids["top"]), store_resolver(store))
    assert tree(rootfs) == {
        "app/run": "run",
        "bin/sh": "sh from base",
        "etc/os-release": "middle",
        "opt/b/tool": "tool",
        "usr/lib/libc.so": "libc",
    }
    assert not Path(rootfs, "var").exists()  # a directory outside the middle image's whitelist is gone
    again = rendered_rootfs(store, store.by_id(ids["top"]), store_resolver(store))
    assert again == rootfs  # rendered once, reused
    assert (
        Path(rootfs, "bin/sh").stat().st_ino
        == Path(store.paths.layer(ids["base"]), "rootfs/bin/sh").stat().st_ino
    )


def test_image_without_dependencies_is_its_layer(chain: tuple[Store, dict[str, str]]) -> None:
    store, ids = chain
    rootfs = rendered_rootfs(store, store.by_id(ids["base"]), store_resolver(store))
    assert rootfs == str(Path(store.paths.layer(ids["base"]), "rootfs"))


def test_missing_dependency(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "store"))
    aci = make_image(tmp_path, "example.com/orphan", {"x": "x"}, deps=[{"imageName": "example.com/gone"}])
    row = store.import_file(str(aci))
    with pytest.raises(RenderError, match=r"dependency example\.com/gone is not in the store"):
        rendered_rootfs(store, row, store_resolver(store))
