"""A real OCI registry for tests (Debian's docker-registry, distribution 2.8) on 127.0.0.1, and
images built without docker: umoci edits an OCI layout, skopeo pushes it. Stopped by PID."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG = """version: 0.1
log: {{level: info, formatter: text, accesslog: {{disabled: false}}}}
storage:
  filesystem: {{rootdirectory: {storage}}}
  delete: {{enabled: true}}
  maintenance: {{uploadpurging: {{enabled: false}}}}
http: {{addr: "127.0.0.1:{port}", secret: test-secret{tls}}}
{auth}"""
TLS = ", tls: {{certificate: {cert}, key: {key}}}"
BASIC = "auth: {{htpasswd: {{realm: nspod-test, path: {path}}}}}\n"
TOKEN = (
    "auth: {{token: {{realm: '{realm}', service: {service}, issuer: {issuer}, rootcertbundle: {bundle}}}}}\n"
)
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}'
ACCESS = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d+)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Registry:
    dir: Path
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, directory: Path, *, tls: tuple[Path, Path] | None = None, auth: str = "") -> Registry:
        """``tls``: (certificate, key); ``auth``: the config's auth line (BASIC, TOKEN), formatted."""
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        secure = TLS.format(cert=tls[0], key=tls[1]) if tls else ""
        (directory / "config.yml").write_text(
            CONFIG.format(storage=directory / "storage", port=port, tls=secure, auth=auth)
        )
        with open(directory / "log", "wb") as log:
            process = subprocess.Popen(
                ["docker-registry", "serve", str(directory / "config.yml")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        registry = cls(directory, port, process)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return registry
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    registry.stop()
                    raise RuntimeError(
                        "docker-registry did not start: " + registry.log_text()[-2000:]
                    ) from None
                time.sleep(0.05)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return (self.dir / "log").read_text(errors="replace")

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far, from the access log."""
        return [(m, p, int(s)) for m, p, s in ACCESS.findall(self.log_text())]

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_ = digest.split(":")
        return self.dir / "storage/docker/registry/v2/blobs" / algorithm / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Layout:
    """An OCI image layout edited with umoci; images pushed with skopeo."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "oci"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "policy.json").write_text(POLICY)
        subprocess.run(["umoci", "init", "--layout", str(self.path)], check=True)

    def _umoci(self, *args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True)

    def new(self, tag: str) -> None:
        self._umoci("new", "--image", f"{self.path}:{tag}")

    def layer(self, base: str, tag: str, change: dict[str, str | None]) -> None:
        """A new layer on ``base`` (tag ``tag``): paths set to text, or removed (None)."""
        bundle = self.dir / f"bundle-{tag}"
        shutil.rmtree(bundle, ignore_errors=True)
        self._umoci("unpack", "--image", f"{self.path}:{base}", str(bundle))
        for rel, text in change.items():
            target = bundle / "rootfs" / rel
            if text is None:
                shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self._umoci("repack", "--image", f"{self.path}:{tag}", str(bundle))
        shutil.rmtree(bundle)

    def busybox(
        self, tag: str, applets: tuple[str, ...] = ("sh", "echo", "cat", "ls", "id", "true")
    ) -> None:
        """A base layer with busybox, passwd and group."""
        self.new(tag)
        bundle = self.dir / f"bundle-{tag}"
        shutil.rmtree(bundle, ignore_errors=True)
        self._umoci("unpack", "--image", f"{self.path}:{tag}", str(bundle))
        root = bundle / "rootfs"
        (root / "bin").mkdir(parents=True)
        (root / "etc").mkdir()
        shutil.copy("/bin/busybox", root / "bin/busybox")
        for applet in applets:
            os.symlink("busybox", root / "bin" / applet)
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:web:/srv:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\nweb:x:1001:\n")
        self._umoci("repack", "--image", f"{self.path}:{tag}", str(bundle))
        shutil.rmtree(bundle)

    def raw_layer(self, tag: str, tar: Path) -> None:
        """Append a tar made by hand (opaque directories: umoci 0.4.7's own are malformed)."""
        self._umoci("raw", "add-layer", "--image", f"{self.path}:{tag}", str(tar))

    def config(self, tag: str, *args: str) -> None:
        self._umoci("config", "--image", f"{self.path}:{tag}", *args)

    def push(self, tag: str, destination: str, *flags: str) -> None:
        """To a registry; plain HTTP unless ``flags`` say otherwise (--dest-cert-dir, --dest-creds)."""
        plain = [] if any(f.startswith("--dest-cert-dir") for f in flags) else ["--dest-tls-verify=false"]
        subprocess.run(
            ["skopeo", "--policy", str(self.dir / "policy.json"), "copy", "-q", *plain,
             *flags, f"oci:{self.path}:{tag}", f"docker://{destination}"],
            check=True, capture_output=True,
        )  # fmt: skip

    def manifest(self, tag: str) -> dict[str, Any]:
        index = json.loads((self.path / "index.json").read_text())
        entry = next(
            m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag
        )
        return json.loads(self.blob(entry["digest"]))  # type: ignore[no-any-return]

    def blob(self, digest: str) -> bytes:
        return (self.path / "blobs" / digest.replace(":", "/")).read_bytes()

    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.path / "blobs/sha256" / digest.split(":")[1]).write_bytes(data)
        return digest

    def tag_document(self, tag: str, document: dict[str, object], media_type: str) -> None:
        """Tag a manifest or index written by hand (umoci makes neither indexes nor zstd layers)."""
        data = json.dumps(document).encode()
        digest = self.add_blob(data)
        index = json.loads((self.path / "index.json").read_text())
        index["manifests"] = [
            m
            for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
        ]
        index["manifests"].append({"mediaType": media_type, "digest": digest, "size": len(data),
                                   "annotations": {"org.opencontainers.image.ref.name": tag}})  # fmt: skip
        (self.path / "index.json").write_text(json.dumps(index))


def manifest_digest(registry: Registry, repository: str, tag: str) -> str:
    """What the registry says a tag points at (all four manifest types accepted)."""
    import urllib.request

    accept = ", ".join(
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
    )
    request = urllib.request.Request(
        f"http://{registry.host}/v2/{repository}/manifests/{tag}", method="HEAD", headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.headers["Docker-Content-Digest"])


def cosign_sign(layout: Layout, registry: Registry, repository: str, tag: str, key: Any) -> None:
    """Sign what ``repository:tag`` points at as cosign does with a key (an ECDSA P-256 private
    key): a simple-signing payload, its signature in the layer's annotation, pushed as the image
    ``sha256-<hex>.sig`` of the same repository. cosign is not in Debian; this follows its format."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    digest = manifest_digest(registry, repository, tag)
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{registry.host}/{repository}"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    config = json.dumps(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(payload).hexdigest()]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": layout.add_blob(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": layout.add_blob(payload),
                "size": len(payload),
                "annotations": {"dev.cosignproject.cosign/signature": signature},
            }
        ],
    }
    sig_tag = digest.replace(":", "-") + ".sig"
    layout.tag_document(sig_tag, manifest, "application/vnd.oci.image.manifest.v1+json")
    layout.push(sig_tag, f"{registry.host}/{repository}:{sig_tag}")
