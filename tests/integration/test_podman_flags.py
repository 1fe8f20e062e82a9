"""podman's habits on ``nspod run`` against a real systemd (issue #27, item 5): ``run IMAGE
/COMMAND ARGS``, ``-e``, ``-u``, ``-w``, ``-v`` (a host file written through it), ``-d`` with ``-p
HOSTPORT:PORT`` (by the image's port number, and by a number the image does not declare) reached
on the host's loopback as test_network.py reaches ``--port``'s, and bad input refused with nothing made."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_network import fetch, web_image
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)
from tests.integration.test_pool import Pool, pool  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


@dataclass
class Host:
    tool: Nspod
    image: Path  # busybox with httpd; its port 80 is named http
    base: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.tool("run", *args)
        done.stdout = "".join(line.split(": ", 1)[-1] + "\n" for line in done.stdout.splitlines())
        return done

    def pods(self) -> list[dict[str, object]]:
        return json.loads(self.tool("list", "--full", "--format", "json").stdout or "[]")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("podman")
    tool = Nspod(base / "data")
    yield Host(tool, web_image(base), base)
    for pod in json.loads(tool("list", "--full", "--format", "json").stdout or "[]"):
        tool("stop", "--force", pod["uuid"])


def test_image_command_args_exit_code_and_e_u_w(host: Host) -> None:
    done = host.run(
        "--rm", "-e", "GREETING=hi there", "-u", "1000:2000", "-w", "/www", str(host.image),
        "/bin/sh", "-c", 'echo "$GREETING"; id -u; id -g; pwd; exit 7',
    )  # fmt: skip
    assert done.returncode == 7, done.stderr
    assert done.stdout.splitlines()[-4:] == ["hi there", "1000", "2000", "/www"]


def test_v_writes_to_the_host_and_ro_stays_read_only(host: Host) -> None:
    data = host.base / "data-v"
    data.mkdir()
    (data / "given").write_text("from-host\n")
    done = host.run(
        "--rm", "-v", f"{data}:/data", "-v", f"{data}:/ro:ro", str(host.image), "/bin/sh", "-c",
        "cat /data/given; echo from-pod > /data/out; echo x > /ro/nope || echo refused",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "from-host\n" in done.stdout and "refused\n" in done.stdout
    assert (data / "out").read_text() == "from-pod\n"
    assert not (data / "nope").exists()


def test_d_and_p_by_number(host: Host) -> None:
    by_name = host.tool("run", "-d", "--name=pm-web", "-p", "18190:80", "-p", "18193:80", str(host.image))
    assert by_name.returncode == 0, by_name.stderr
    made_up = host.tool(
        "run", "-d", "--name=pm-web81", "-p", "127.0.0.1:18191:81/tcp", str(host.image),
        "/bin/httpd", "-f", "-p", "81", "-h", "/www",
    )  # fmt: skip
    assert made_up.returncode == 0, made_up.stderr
    try:
        uuid = by_name.stdout.strip()
        assert uuid and any(p["uuid"] == uuid for p in host.pods())  # -d printed the pod it started
        for url in ("http://127.0.0.1:18190/index.html", "http://[::1]:18190/index.html",
                    "http://127.0.0.1:18193/index.html", "http://127.0.0.1:18191/index.html"):  # fmt: skip
            assert fetch(url) == "hello-from-pod\n", url
        manifest = json.loads(host.tool("cat-manifest", "pm-web81").stdout)
        assert [p["name"] for p in manifest["ports"]] == ["tcp-81"]
        manifest = json.loads(host.tool("cat-manifest", "pm-web").stdout)
        assert [p["name"] for p in manifest["ports"]] == ["http", "tcp-80-18193"]  # the image's name first
    finally:
        host.tool("stop", "pm-web", "pm-web81")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-p", "http:18192"], "bad -p 'http:18192'"),
        (["-v", "data:/data"], "'data' is a named volume"),
        (["-e", "NAME"], "bad -e/--set-env 'NAME'"),
        (["-d", "--rm"], "--rm needs a foreground run"),
    ],
)
def test_bad_input_is_one_line_and_makes_nothing(host: Host, flags: list[str], message: str) -> None:
    before = host.pods()
    done = host.tool("run", *flags, str(host.image), "/bin/true")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("nspod: ") and message in done.stderr.splitlines()[0], done.stderr
    assert host.pods() == before


def test_a_bare_word_after_the_image_is_refused(host: Host) -> None:
    done = host.tool("run", str(host.image), "echo", "hi")
    assert done.returncode == 2 and "a command or another image?" in done.stderr, done.stderr
    assert "/bin/echo" in done.stderr


def test_the_pool_serves_podmans_habits(pool: Pool, bb: Path) -> None:  # noqa: F811
    image = pool.nspod("fetch", str(bb)).stdout.strip()
    spare = pool.wait_spares()[0]
    ran = pool.run("run", "-e", "K=pooled", "-w", "/etc", image, "/bin/sh", "-c", 'echo "$K $PWD"; exit 7')
    assert ran.returncode == 7, ran.stderr
    assert "pooled /etc" in ran.stdout and spare not in pool.spares()  # a spare served it
    spare = pool.wait_spares()[0]
    detached = pool.run("run", "-d", image, "/bin/sleep", "30")
    assert detached.returncode == 0, detached.stderr
    assert detached.stdout.strip() == spare  # served by the spare, its UUID printed
    pool.nspod("stop", spare)
