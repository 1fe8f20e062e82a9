"""The appc schema types: value types, round trips, the shipped JSON Schema, the lenient reader."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from stage0.errors import SchemaError
from stage0.schema import types
from stage0.schema.boundary import dump, parse_manifest, schema
from stage0.schema.image import ImageManifest
from stage0.schema.lastditch import read_loose
from stage0.schema.pod import PodManifest
from stage0.schema.quantity import Quantity
from stage0.schema.types import ACIdentifier, ACName, ImageID, Invalid, SemVer, Timestamp

MANIFESTS = sorted((Path(__file__).parent.parent / "data/manifests").glob("*.json"))


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_round_trip(path: Path) -> None:
    first = parse_manifest(path.read_bytes(), str(path))
    dumped = dump(first)
    second = parse_manifest(dumped.encode(), "dumped")
    assert second == first
    assert dump(second) == dumped
    # nothing the file says is lost: the canonical dump equals the file minus defaults
    original = json.loads(path.read_text())
    assert json.loads(dump(first)).keys() == {k for k, v in original.items() if v not in ([], {}, None)}


def test_full_manifest_is_read_field_by_field() -> None:
    manifest = parse_manifest((MANIFESTS[0].parent / "image-full.json").read_bytes(), "x")
    assert isinstance(manifest, ImageManifest) and manifest.app is not None
    assert manifest.label("os") == "linux" and manifest.annotation("homepage") == "https://example.com"
    assert manifest.app.supplementary_gids == (400, 500)
    assert [p.count for p in manifest.app.ports] == [1, 10]
    assert manifest.app.ports[0].socket_activated and manifest.app.mount_points[0].read_only
    assert manifest.dependencies[0].size == 4096


def test_pod_allows_unknown_isolators_but_apps_do_not() -> None:
    pod = parse_manifest((MANIFESTS[0].parent / "pod-runtime.json").read_bytes(), "x")
    assert isinstance(pod, PodManifest)
    assert "example.com/vendor-extension" in [i.name for i in pod.isolators]
    assert pod.apps[1].mounts[1].app_volume is not None


@pytest.mark.parametrize(
    ("cls", "good", "bad"),
    [
        (ACIdentifier, ["example.com/app", "a", "a-b.c_d~e/f"], ["", "A", "-a", "a-", "a..b", "a b", "a/"]),
        (ACName, ["web", "web-1", "0"], ["", "Web", "a--b", "a.b", "-a", "a_b"]),
        (
            ImageID,
            ["sha512-" + "0" * 128],
            ["sha512-" + "0" * 127, "sha256-" + "0" * 64, "sha512-" + "G" * 128],
        ),
        (SemVer, ["0.8.11", "1.0.0-rc.1+build.5", "0.0.1"], ["0.8", "01.2.3", "0.0.0", "v1.0.0", "1.0.0-"]),
        (
            Timestamp,
            ["2014-10-27T19:32:58.000Z", "2014-10-27t19:32:58+02:00"],
            ["2014-10-27", "2014-13-01T00:00:00Z"],
        ),
    ],
)
def test_value_types(cls: type[str], good: list[str], bad: list[str]) -> None:
    for value in good:
        assert cls(value) == value
    for value in bad:
        with pytest.raises(Invalid):
            cls(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1k", Decimal(1000)),
        ("1Ki", Decimal(1024)),
        ("250m", Decimal("0.25")),
        ("0.3", Decimal("0.3")),
        ("1e3", Decimal(1000)),
        ("1.5Mi", Decimal(1572864)),
        ("1G", Decimal(10**9)),
        (128, Decimal(128)),
        ("-1", Decimal(-1)),
        ("100u", Decimal("0.0001")),
    ],
)
def test_quantities(text: str | int, value: Decimal) -> None:
    assert Quantity(text).value == value


@pytest.mark.parametrize("text", ["1GB", "1K", "", "1.2.3", "k", True, None, "1 G"])
def test_bad_quantities(text: object) -> None:
    with pytest.raises(Invalid):
        Quantity(text)


def test_json_schema_patterns_match_the_python_types() -> None:
    """The shipped JSON Schemas and the value types state one rule each, never two."""
    for kind in ("ImageManifest", "PodManifest"):
        defs = schema(kind)["$defs"]
        assert defs["acIdentifier"]["pattern"] == types.AC_IDENTIFIER_RE
        assert defs["acName"]["pattern"] == types.AC_NAME_RE
        assert defs["imageID"]["pattern"] == types.IMAGE_ID_RE
        assert defs["semver"]["pattern"] == types.SEMVER_RE
        assert defs["envName"]["pattern"] == types.ENV_NAME_RE


@pytest.mark.parametrize(
    ("doc", "pointer", "problem"),
    [
        ('{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": 5}', "/name", "must be of type string"),
        (
            '{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "a", "app": {"user": "0"}}',
            "/app/group",
            "is required",
        ),
        (
            '{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "a", "labels": {}}',
            "/labels",
            "must be of type array",
        ),
        ("[1, 2]", "/", "must be a JSON object"),
        ('{"acKind": "ImageManifest",', "/", "is not valid JSON"),
        (b"\xff\xfe".decode("latin-1"), "/", ""),
        ('{"acVersion": "0.8.11"}', "/acKind", "expected ImageManifest or PodManifest"),
    ],
)
def test_errors_name_the_field(doc: str, pointer: str, problem: str) -> None:
    with pytest.raises(SchemaError) as caught:
        parse_manifest(doc.encode("latin-1"), "m.json")
    assert caught.value.message.startswith(f"m.json: {pointer}: ")
    assert problem in caught.value.message


def test_lenient_reader_survives_anything() -> None:
    loose = read_loose(b'{"acKind": "PodManifest", "apps": [{"name": "web"}, 7, {"name": 3}], "labels": 5}')
    assert loose.kind == "PodManifest" and loose.app_names == ("web",) and loose.labels == ()
    assert read_loose(b"\xff not json") == read_loose(b"[]")
    image = read_loose(b'{"name": "Bad Name", "labels": [{"name": "os", "value": "plan9"}, {"x": 1}]}')
    assert image.name == "Bad Name" and image.labels == (("os", "plan9"),)
