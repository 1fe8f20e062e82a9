"""The appc metadata service (issue #12, item 5): pods registered as they start, every endpoint
answered to the pod's own token from the pod's own address, HMAC signatures verified across pods,
forged requests refused, and a pod dropped as soon as machined says it is gone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage1.abi import MDS_SOCKET
from tests.integration.test_pod_units import probe_image
from tests.integration.test_pods import Nspod

pytestmark = pytest.mark.systemd


def registered() -> list[dict[str, str]]:
    """What the service holds, asked on its registration socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(MDS_SOCKET)
        sock.sendall(b"GET /pods HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


def answer(text: str) -> tuple[int, str, str]:
    """(status, content type, body) from the probe's ``mds`` output."""
    status, _, rest = text.partition("\n")
    kind, _, body = rest.partition("\n") if rest.startswith("type ") else ("", "", rest)
    return int(status.split()[1]), kind.removeprefix("type "), body.removesuffix("\n")


@pytest.fixture(scope="module")
def pods(
    tmp_path_factory: pytest.TempPathFactory, probe: Path, metadata_service: None
) -> Iterator[dict[str, object]]:
    base = tmp_path_factory.mktemp("mds")
    image = probe_image(base / "img", probe, ["sleep", "600"], notify=False)
    nspod = Nspod(base / "data")
    uuids = {}
    for name in ("mds-a", "mds-b"):
        ran = nspod("run", "--detach", f"--name={name}", "--mds-register", str(image), "--name=app")
        assert ran.returncode == 0, ran.stderr
        uuids[name] = ran.stdout.strip()

    def probe_in(pod: str, *args: str) -> tuple[int, str, str]:
        done = nspod("enter", pod, "--", "/probe", "mds", *args)
        assert done.returncode == 0, done.stderr
        return answer(done.stdout)

    def url(pod: str) -> str:
        done = nspod("enter", pod, "--", "/probe", "report")
        return next(
            line.split("=", 1)[1]
            for line in done.stdout.splitlines()
            if line.startswith("env AC_METADATA_URL=")
        )

    try:
        yield {"nspod": nspod, "uuids": uuids, "probe_in": probe_in, "url": url, "image": image}
    finally:
        for name in uuids:
            nspod("stop", name)


def test_pods_are_registered_with_a_secret_token_in_their_url(pods: dict[str, object]) -> None:
    uuids, url = pods["uuids"], pods["url"]
    assert isinstance(uuids, dict) and callable(url)
    assert {p["uuid"] for p in registered()} >= set(uuids.values())
    a = url("mds-a")
    token = a.rsplit("/", 1)[1]
    assert a.startswith("http://172.16.28.1:18112/") and len(token) >= 32 and uuids["mds-a"] not in a
    assert url("mds-b").rsplit("/", 1)[1] != token


def test_every_endpoint_answers_the_pods_own_app(pods: dict[str, object]) -> None:
    probe_in, uuids = pods["probe_in"], pods["uuids"]
    assert callable(probe_in) and isinstance(uuids, dict)
    v1 = "/acMetadata/v1"
    assert probe_in("mds-a", "GET", f"{v1}/pod/uuid") == (
        200,
        "text/plain; charset=us-ascii",
        uuids["mds-a"],
    )
    status, kind, body = probe_in("mds-a", "GET", f"{v1}/pod/manifest")
    manifest = json.loads(body)
    assert (status, kind, manifest["acKind"]) == (200, "application/json", "PodManifest")
    status, _, body = probe_in("mds-a", "GET", f"{v1}/pod/annotations")
    assert json.loads(body) == manifest["annotations"]
    status, _, body = probe_in("mds-a", "GET", f"{v1}/apps/app/image/manifest")
    assert json.loads(body)["name"] == "example.com/probe"
    assert probe_in("mds-a", "GET", f"{v1}/apps/app/image/id")[2] == manifest["apps"][0]["image"]["id"]
    status, _, body = probe_in("mds-a", "GET", f"{v1}/apps/app/annotations")
    assert status == 200 and {
        "name": "appc.io/executor/supports-systemd-notify",
        "value": "false",
    } in json.loads(body)
    assert probe_in("mds-a", "GET", f"{v1}/apps/nope/image/id")[0] == 404


def test_a_signature_made_in_one_pod_verifies_in_another(pods: dict[str, object]) -> None:
    probe_in, uuids = pods["probe_in"], pods["uuids"]
    assert callable(probe_in) and isinstance(uuids, dict)
    status, _, signature = probe_in("mds-a", "POST", "/acMetadata/v1/pod/hmac/sign", "content=Old+MacDonald")
    assert status == 200 and signature
    form = urllib.parse.urlencode(
        {"content": "Old MacDonald", "uuid": uuids["mds-a"], "signature": signature}
    )
    assert probe_in("mds-b", "POST", "/acMetadata/v1/pod/hmac/verify", form)[0] == 200
    for forged in (
        {"content": "Old MacDonald!", "uuid": uuids["mds-a"], "signature": signature},
        {"content": "Old MacDonald", "uuid": uuids["mds-b"], "signature": signature},  # not b's
    ):
        assert (
            probe_in("mds-b", "POST", "/acMetadata/v1/pod/hmac/verify", urllib.parse.urlencode(forged))[0]
            == 403
        )


def test_another_pods_token_is_refused_from_here_and_from_the_host(pods: dict[str, object]) -> None:
    probe_in, url = pods["probe_in"], pods["url"]
    assert callable(probe_in) and callable(url)
    a = url("mds-a")
    stolen = probe_in("mds-b", "GET", "/acMetadata/v1/pod/uuid", "", a)
    assert stolen[0] == 403, stolen
    signed = probe_in("mds-b", "POST", "/acMetadata/v1/pod/hmac/sign", "content=x", a)
    assert signed[0] == 403, signed
    with pytest.raises(urllib.error.HTTPError) as refused:  # the right token from the wrong address
        urllib.request.urlopen(a + "/acMetadata/v1/pod/uuid", timeout=5)
    assert refused.value.code == 403


def test_a_pod_that_dies_is_dropped_at_once(pods: dict[str, object]) -> None:
    nspod, image = pods["nspod"], pods["image"]
    assert isinstance(nspod, Nspod) and isinstance(image, Path)
    ran = nspod("run", "--detach", "--name=mds-dies", "--mds-register", str(image))
    assert ran.returncode == 0, ran.stderr
    uuid = ran.stdout.strip()
    assert uuid in {p["uuid"] for p in registered()}
    pid = int(dict(line.split("=", 1) for line in nspod("status", uuid).stdout.splitlines())["pid"])
    os.kill(pid, signal.SIGKILL)  # no stop, no deregistration: machined's signal alone
    deadline = time.monotonic() + 5
    while uuid in {p["uuid"] for p in registered()}:
        assert time.monotonic() < deadline, "a dead pod is still registered"
        time.sleep(0.05)


def test_a_pod_without_a_network_to_the_host_cannot_require_registration(pods: dict[str, object]) -> None:
    nspod, image = pods["nspod"], pods["image"]
    assert isinstance(nspod, Nspod) and isinstance(image, Path)
    done = nspod("run", "--net=none", "--mds-register", str(image), "--exec=/probe", "--", "report")
    assert done.returncode == 254 and "no network that reaches the host" in done.stderr, done.stderr
    quiet = nspod("run", "--net=none", str(image), "--exec=/probe", "--", "report")
    assert quiet.returncode == 0 and "AC_METADATA_URL" not in quiet.stdout, quiet.stderr


def test_a_restarted_service_knows_the_running_pods_again(
    tmp_path: Path, probe: Path, metadata_service: None
) -> None:
    # #23 item 22: a restart lost every registration, and the running pods got 403 for good. The
    # service reads what the pods' stage1 kept (their directories: not under /tmp, which the
    # service's PrivateTmp= hides; /var/lib/nspod in use)
    image = probe_image(tmp_path / "img", probe, ["sleep", "600"], notify=False)
    data = Path(f"/run/nspod-test-mds-{os.getpid()}")
    nspod = Nspod(data)
    ran = nspod("run", "--detach", "--name=mds-restart", "--mds-register", str(image), "--name=app")
    assert ran.returncode == 0, ran.stderr
    uuid = ran.stdout.strip()
    try:

        def ask() -> tuple[int, str, str]:
            done = nspod("enter", uuid, "--", "/probe", "mds", "GET", "/acMetadata/v1/pod/uuid")
            assert done.returncode == 0, done.stderr
            return answer(done.stdout)

        assert ask()[0::2] == (200, uuid)
        for _ in range(2):
            subprocess.run(["systemctl", "restart", "nspod-metadata.service"], check=True)
            assert ask()[0::2] == (200, uuid)
            assert uuid in {p["uuid"] for p in registered()}
    finally:
        nspod("stop", uuid)
        nspod("gc", "--grace-period=0s")
        subprocess.run(["rm", "-rf", str(data)], check=False)
