"""The CRI stubs are generated from stage0/cri/proto/api.proto (packaging/gen-cri-proto.sh) and
committed; this regenerates them and compares, and loads them with both protobuf runtimes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, tool

GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    tool("protoc")
    tool("grpc_python_plugin")
    subprocess.run(["sh", str(REPO / "packaging/gen-cri-proto.sh"), str(tmp_path)], check=True)
    for name in GENERATED:
        made = (tmp_path / "stage0/cri/proto" / name).read_bytes()
        assert made == (REPO / "stage0/cri/proto" / name).read_bytes(), (
            f"{name}: run packaging/gen-cri-proto.sh"
        )


LOAD = """
from stage0.cri.proto import api_pb2, api_pb2_grpc
m = api_pb2.PodSandboxConfig(hostname="h", labels={"a": "b"})
assert api_pb2.PodSandboxConfig.FromString(m.SerializeToString()).labels["a"] == "b"
assert api_pb2_grpc.RuntimeServiceServicer and api_pb2_grpc.ImageServiceStub
"""


@pytest.mark.parametrize("python", [sys.executable, "/usr/bin/python3"], ids=["venv", "debian"])
def test_stubs_load(python: str) -> None:
    """The venv's PyPI protobuf and Debian 12's python3-protobuf 3.21 both load them."""
    if python != sys.executable and subprocess.run([python, "-c", "import grpc, google.protobuf"],
                                                   capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("Debian's python3-grpcio and python3-protobuf are not installed")
    subprocess.run([python, "-W", "error", "-c", LOAD], check=True, cwd=REPO)
