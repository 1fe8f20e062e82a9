"""What `nspod fetch docker://…` loads: a pull's command is ~100 ms of interpreter and imports
before its first byte (bench/pull, issue #26 item 6), so the modules of other paths (a pod's
request schema, the pod directories, the ACI importer, the trust modules of a check not asked
for, an OCI layout's reader) stay unloaded. The pull is real: a registry served from the probe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO
from tests.unit.test_cli import _oci_layout

# a registry's three routes over an OCI layout (tagged 1), on a free loopback port
SERVER = textwrap.dedent(
    """
    import http.server, json, os, threading
    LAYOUT = os.environ["LAYOUT"]

    class Registry(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.do_GET(body=False)

        def do_GET(self, body=True):
            index = json.load(open(os.path.join(LAYOUT, "index.json")))["manifests"][0]
            route = self.path.split("/")
            if self.path == "/v2/":
                data, media = b"{}", "application/json"
            elif route[-2] == "manifests" and route[-1] in ("1", index["digest"]):
                data, media = self.blob(index["digest"]), index["mediaType"]
            elif route[-2] == "blobs":
                data, media = self.blob(route[-1]), "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Docker-Content-Digest", index["digest"])
            self.end_headers()
            if body:
                self.wfile.write(data)

        def blob(self, digest):
            with open(os.path.join(LAYOUT, "blobs", *digest.split(":")), "rb") as file:
                return file.read()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    PORT = server.server_address[1]
    """
)


def test_a_registry_fetch_loads_only_the_pull(tmp_path: Path) -> None:
    _oci_layout(tmp_path / "layout")
    probe = SERVER + textwrap.dedent(
        f"""
        import contextlib, io, sys
        before = set(sys.modules)
        from stage0.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = main(["--dir", {str(tmp_path / "data")!r}, "--insecure-options=image,http",
                         "fetch", f"docker://127.0.0.1:{{PORT}}/t:1"])
        assert code == 0 and out.getvalue().startswith("sha512-"), (code, out.getvalue())
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "LAYOUT": str(tmp_path / "layout")},
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"stage0.images.oci.pull", "stage0.images.oci.layer"} <= loaded
    unneeded = {
        "stage0.pods.requests",  # --stage1's parse needs the flavor's names alone
        "stage0.schema.app",
        "stage0.pods.dirs",
        "stage0.images.aci.archive",
        "stage0.images.trust.cosign",
        "stage0.images.trust.verify",
        "stage0.images.oci.local",
        "stage0.images.render",
    }
    assert not unneeded & loaded, sorted(unneeded & loaded)
