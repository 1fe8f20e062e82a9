"""One image, one set of names (issue #23 item 14): every name any verb prints for an image —
`image list` (text and JSON), `list` (text and JSON), `image gc` — and its docker:// reference and
its ID are taken by every verb that takes an image. OCI images from a real registry (127.0.0.1:PORT,
whose colon an appc name cannot hold) and an ACI alike."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.registry import Layout, Registry
from tests.integration.test_pods import Nspod, busybox_image

pytestmark = pytest.mark.systemd


class OciNspod(Nspod):
    def argv(self, *args: str) -> list[str]:
        argv = super().argv(*args)
        argv[argv.index("--insecure-options=image")] = "--insecure-options=image,http"
        return argv


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    base = tmp_path_factory.mktemp("names")
    registry = Registry.start(base / "registry")
    try:
        layout = Layout(base / "layout")
        layout.busybox("bb")
        layout.config("bb", "--config.entrypoint", "/bin/true", "--os", "linux", "--architecture", "amd64")
        layout.push("bb", f"{registry.host}/test/bb:1")
        layout.push("bb", f"{registry.host}/test/gone:1")
        yield registry
    finally:
        registry.stop()


def printed_names(nspod: Nspod, image_id: str) -> set[str]:
    """Every name a verb prints for the image: image list, list (a pod of it), both formats."""
    names = {image_id}
    text = nspod("image", "list", "--fields=id,name", "--no-legend")
    names |= {line.split()[1] for line in text.stdout.splitlines() if image_id.startswith(line.split()[0])}
    names |= {line.split()[0] for line in text.stdout.splitlines() if image_id.startswith(line.split()[0])}
    (row,) = [r for r in json.loads(nspod("image", "list", "--format=json").stdout) if r["id"] == image_id]
    names |= {row["name"], row["reference"], f"{row['name']}:{row['version']}"}
    pod = nspod("prepare", image_id).stdout.split()[-1]
    listed = nspod("list", "--no-legend", "--full").stdout
    names |= {line.split()[4] for line in listed.splitlines() if line.startswith(pod)}
    (entry,) = [p for p in json.loads(nspod("list", "--format=json").stdout) if p["uuid"] == pod]
    image = entry["apps"][0]["image"]
    names |= {image["name"], f"{image['name']}:{image['version']}"}
    assert nspod("rm", pod).returncode == 0
    return names


def takes(nspod: Nspod, name: str, image_id: str, tmp: Path, refetch: str, sandbox: str) -> list[str]:
    """Feed ``name`` to every verb that takes an image; what went wrong."""
    wrong = []

    def check(*args: str, expect: str | None = None) -> None:
        done = nspod(*args)
        if done.returncode != 0 or (expect is not None and expect not in done.stdout):
            wrong.append(f"nspod {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-300:]}")

    check("image", "cat-manifest", name)
    check("image", "verify", name, expect=image_id)
    out = tmp / "out"
    check("image", "export", "--overwrite", name, str(tmp / "x.aci"))
    subprocess.run(["rm", "-rf", str(out)], check=True)
    check("image", "extract", name, str(out))
    subprocess.run(["rm", "-rf", str(out)], check=True)
    check("image", "render", name, str(out))
    subprocess.run(["rm", "-rf", str(out)], check=True)
    check("fetch", "--pull-policy=new", name, expect=image_id)
    check("fetch", name, expect=image_id)
    check("run", "--rm", name, "--exec=/bin/true")
    prepared = nspod("prepare", name)
    if prepared.returncode == 0 and image_id in nspod("cat-manifest", prepared.stdout.split()[-1]).stdout:
        nspod("rm", prepared.stdout.split()[-1])
    else:
        wrong.append(f"nspod prepare {name}: {prepared.stderr.strip()[-300:]}")
    app = f"a{abs(hash(name)) % 10**8}"
    check("app", "add", sandbox, name, f"--name={app}", "--exec=/bin/true")
    nspod("app", "rm", sandbox, "--app", app)  # the sandbox no longer holds the image
    check("image", "rm", name, expect=image_id)
    refetched = nspod("fetch", refetch)
    assert refetched.returncode == 0, refetched.stderr
    return wrong


def test_every_printed_name_is_taken_by_every_verb(tmp_path: Path, registry: Registry) -> None:
    nspod = OciNspod(tmp_path / "data")
    reference = f"docker://{registry.host}/test/bb:1"
    aci = busybox_image(tmp_path / "aci", app={"exec": ["/bin/true"], "user": "0", "group": "0"})
    wrong = []
    sandbox = nspod("app", "sandbox").stdout.split()[-1]
    for source in (reference, str(aci)):
        fetched = nspod("fetch", source)
        assert fetched.returncode == 0, fetched.stderr
        image_id = fetched.stdout.split()[-1]
        names = printed_names(nspod, image_id)
        if source == reference:
            assert f"{registry.host}/test/bb:1" in names  # what image list shows
            names |= {reference}
        for name in sorted(names):
            wrong += takes(nspod, name, image_id, tmp_path, source, sandbox)
    nspod("stop", sandbox)
    nspod("rm", sandbox)
    assert not wrong, "\n".join(wrong)


def test_image_gc_prints_the_name_image_list_shows(tmp_path: Path, registry: Registry) -> None:
    nspod = OciNspod(tmp_path / "data")
    fetched = nspod("fetch", f"docker://{registry.host}/test/gone:1")
    assert fetched.returncode == 0, fetched.stderr
    image_id = fetched.stdout.split()[-1]
    shown = nspod("image", "list", "--fields=name", "--no-legend").stdout.split()
    with sqlite3.connect(nspod.data / "images" / "index.db") as db:
        db.execute("UPDATE images SET last_used=?", (time.time() - 2 * 86400,))
    done = nspod("image", "gc")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"removed {image_id} ({shown[0]})"
    assert shown == [f"{registry.host}/test/gone:1"]
