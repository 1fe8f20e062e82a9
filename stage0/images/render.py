"""Rendering: an image and its dependencies → one rootfs, as ``spec/ace.md`` "Filesystem Setup" and the
spec authors' acirenderer define it.

The dependency list is flat and ordered highest priority first: each image is followed by its
dependencies, the last-listed dependency first ([A, C, D, B] for A → [B, C], C → [D]). A path comes
from the first image that has it; a non-directory must be in its image's own ``pathWhitelist``
(when that is set) and in the whitelist of the farthest image above it on its branch that has one;
nothing is placed under a path an upper image made a non-directory.

:func:`plan` is pure; :func:`render_tree` hard-links the chosen files out of the per-image layers
(extracted at import) into a new tree, which appears whole by one rename.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from stage0.errors import Error, ErrorKind, space_on
from stage0.images.store.locks import Workspace
from stage0.images.store.rows import ImageRow
from stage0.images.store.store import Store
from stage0.schema.boundary import parse_image_manifest
from stage0.schema.image import Dependency, ImageManifest

MAX_DEPTH = 32


class RenderError(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "check the image's dependencies with 'nspod image cat-manifest'"


@dataclass(frozen=True, slots=True)
class Layer:
    """One image in the flat dependency list."""

    image_id: str
    level: int
    whitelist: frozenset[str] | None  # rootfs-relative paths ("etc/hosts"), None when unset

    @staticmethod
    def whitelist_of(manifest: ImageManifest) -> frozenset[str] | None:
        paths = {p.strip("/") for p in manifest.path_whitelist}
        return frozenset(paths) if paths else None


def dependency_list(
    top: ImageRow, resolve: Callable[[Dependency], ImageRow]
) -> list[tuple[ImageRow, Layer]]:
    """The flat, priority-ordered dependency list of ``top`` (acirenderer's createDepList)."""

    def expand(row: ImageRow, level: int) -> list[tuple[ImageRow, Layer]]:
        if level > MAX_DEPTH:
            raise RenderError(f"dependencies of {top.name} nest deeper than {MAX_DEPTH} (a cycle?)")
        manifest = parse_image_manifest(row.manifest, row.name, trusted=True)
        here = [(row, Layer(row.id, level, Layer.whitelist_of(manifest)))]
        for dependency in reversed(manifest.dependencies):
            here += expand(resolve(dependency), level + 1)
        return here

    return expand(top, 0)


def _upper_whitelist(layers: list[Layer], position: int) -> frozenset[str] | None:
    """The whitelist that bounds ``layers[position]``: the farthest ancestor on its branch with one."""
    found: frozenset[str] | None = None
    level = layers[position].level
    for layer in reversed(layers[: position + 1]):
        if layer.level < level and layer.whitelist is not None:
            found = layer.whitelist
        level = min(level, layer.level)
    return found


def plan(layers: list[Layer], files: Sequence[Mapping[str, bool]]) -> dict[str, int]:
    """Which layer provides each path. ``files[i]`` maps layer i's paths to "is a directory"."""
    chosen: dict[str, int] = {}
    is_dir: dict[str, bool] = {}
    for i, layer in enumerate(layers):
        upper = _upper_whitelist(layers, i)
        for rel, directory in files[i].items():
            if rel in chosen:
                continue
            if rel:
                if not directory and layer.whitelist is not None and rel not in layer.whitelist:
                    continue
                if upper is not None and rel not in upper:
                    continue
                parent = os.path.dirname(rel)
                while parent:
                    if is_dir.get(parent) is False:
                        break
                    parent = os.path.dirname(parent)
                else:
                    chosen[rel], is_dir[rel] = i, directory
                continue
            chosen[rel], is_dir[rel] = i, True
    return chosen


def layer_files(rootfs: str) -> dict[str, bool]:
    """Every path in an extracted layer, relative to its rootfs, with "is a directory"."""
    found: dict[str, bool] = {"": True}
    for directory, dirs, names in os.walk(rootfs):
        rel_dir = os.path.relpath(directory, rootfs)
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in dirs:
            found[prefix + name] = not os.path.islink(os.path.join(directory, name))
        for name in names:
            found[prefix + name] = False
    return found


def tree_key(layers: list[Layer]) -> str:
    chain = ",".join(layer.image_id for layer in layers)
    return "deps-" + hashlib.sha512(chain.encode()).hexdigest()[:64]


def _copy_meta(source: str, target: str) -> None:
    st = os.lstat(source)
    if os.geteuid() == 0:
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(target, stat.S_IMODE(st.st_mode))


def render_tree(store: Store, layers: list[Layer], target: str) -> None:
    """Build the rendered rootfs in ``target`` (a new directory) by hard links into the layers."""
    roots = [os.path.join(store.paths.layer(layer.image_id), "rootfs") for layer in layers]
    chosen = plan(layers, [layer_files(root) for root in roots])
    made_dirs: list[tuple[str, str]] = []
    for rel in sorted(chosen, key=lambda r: (r.count("/"), r) if r else (-1, r)):
        source = os.path.join(roots[chosen[rel]], rel) if rel else roots[chosen[rel]]
        path = os.path.join(target, rel) if rel else target
        parent = os.path.dirname(path)
        if rel and not os.path.isdir(parent):
            os.makedirs(parent, 0o755)  # its own entry was filtered out by a whitelist
        if os.path.isdir(source) and not os.path.islink(source):
            if rel:
                os.mkdir(path, 0o700)
            made_dirs.append((source, path))
        else:
            os.link(source, path, follow_symlinks=False)
    for source, path in reversed(made_dirs):
        _copy_meta(source, path)
        st = os.lstat(source)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def rendered_rootfs(store: Store, image: ImageRow, resolve: Callable[[Dependency], ImageRow]) -> str:
    """The path of ``image``'s rendered rootfs, rendering it (once, under a lock) if needed."""
    layers = [layer for _, layer in dependency_list(image, resolve)]
    for layer in layers:  # the image and its dependencies, kept from removal (Store.hold)
        if not store.hold(layer.image_id):
            raise RenderError(f"dependency {layer.image_id[:39]} was removed while the pod was prepared")
    if len(layers) == 1 and layers[0].whitelist is None:
        return os.path.join(store.paths.layer(image.id), "rootfs")  # the extracted layer is the tree
    key = tree_key(layers)
    final = os.path.join(store.paths.trees, key)
    with store.key_lock(key):
        if not os.path.isdir(final):
            with Workspace(store.paths.tmp) as work, space_on(store.paths.root):
                tree = os.path.join(work.path, "tree")
                os.mkdir(tree, 0o700)
                render_tree(store, layers, os.path.join(tree, "rootfs"))
                with open(os.path.join(tree, "images"), "w") as file:
                    file.write("".join(layer.image_id + "\n" for layer in layers))
                os.rename(tree, final)  # the tree appears whole or not at all
    return os.path.join(final, "rootfs")


def store_resolver(store: Store) -> Callable[[Dependency], ImageRow]:
    """Resolve a dependency from the store alone (pinned by ID, else by name and labels)."""

    def resolve(dependency: Dependency) -> ImageRow:
        if dependency.image_id is not None:
            row = store.index.image(dependency.image_id)
        else:
            row = store.find(str(dependency.image_name), {str(x.name): x.value for x in dependency.labels})
        if row is None:
            raise RenderError(
                f"dependency {dependency.image_name} is not in the store",
                hint=f"fetch it first: nspod fetch {dependency.image_name}",
            )
        if row.name != dependency.image_name:
            raise RenderError(f"dependency {dependency.image_id} is {row.name}, not {dependency.image_name}")
        return row

    return resolve
