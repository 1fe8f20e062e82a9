"""A token service for the registry's ``auth: token`` mode (what Docker Hub and most public
registries do): HTTPS on 127.0.0.1, Basic credentials in, an RS256 JWT out whose x5c header carries
the certificate the registry trusts (``rootcertbundle``)."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

ISSUER, SERVICE = "nspod-test-issuer", "nspod-test-registry"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(self, directory: Path, cert: Path, key: Path, user: str, password: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        directory.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nspod test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        day = datetime.timedelta(days=1)
        signer = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 30 * day)
            .sign(self._key, hashes.SHA256())
        )  # fmt: skip
        self.bundle = directory / "token.crt"
        self.bundle.write_bytes(signer.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(signer.public_bytes(serialization.Encoding.DER)).decode()
        self._basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[str] = []
        handler = self._handler()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"https://127.0.0.1:{self.port}/token"

    def token(self, scope: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        kind, _, rest = scope.partition(":")
        repository, _, actions = rest.rpartition(":")
        now = int(time.time())
        access = [{"type": kind, "name": repository, "actions": actions.split(",")}] if scope else []
        claims = {"iss": ISSUER, "sub": "tester", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}  # fmt: skip
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64(signature)}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.requests.append(self.path)
                if self.headers.get("Authorization") != server._basic:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(" ".join(query.get("scope", [""])))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
