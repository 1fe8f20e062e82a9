"""Real servers and keys for fetch tests: a throw-away CA, nginx over TLS, and GnuPG keys."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness.sandbox import Sandbox


def make_pki(directory: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``names``; returns (ca.crt, server.crt, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nspod test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


NGINX_CONF = """
daemon off;
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    types {{ text/html html; application/octet-stream aci; text/plain asc; application/pgp-keys gpg; }}
    default_type application/octet-stream;
    log_format nspod '$request_method $uri $status $body_bytes_sent "$http_range" "$http_if_none_match"';
    access_log {dir}/access.log nspod;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:443 ssl;
        listen 127.0.0.1:80;
        server_name _;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
        index index.html;
        location / {{ try_files $uri $uri.html $uri/ =404; }}
        location /slow/ {{ limit_rate 2m; }}
        location /cached/ {{ add_header Cache-Control "max-age=3600"; }}
        location /basic/ {{ auth_basic "nspod"; auth_basic_user_file {dir}/htpasswd; }}
        location /bearer/ {{ if ($http_authorization != "Bearer sesame") {{ return 401; }} }}
    }}
}}
"""


@dataclass
class Nginx:
    dir: Path
    www: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, sandbox: Sandbox, directory: Path, cert: Path, key: Path) -> Nginx:
        www = directory / "www"
        (directory / "tmp").mkdir(parents=True, exist_ok=True)
        www.mkdir(parents=True, exist_ok=True)
        (directory / "htpasswd").write_text("alice:{PLAIN}wonderland\n")
        conf = directory / "nginx.conf"
        # workers run as nobody unless told otherwise, and pytest's temp dirs are 0700
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CONF.format(dir=directory, www=www, cert=cert, key=key, user=user))
        process = sandbox.popen(
            "nginx",
            "-e",
            str(directory / "error.log"),
            "-p",
            str(directory),
            "-c",
            str(conf),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(directory, www, process)
        deadline = time.monotonic() + 10
        while sandbox.run("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/443").returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nginx did not start: " + (directory / "error.log").read_text()[-2000:])
            time.sleep(0.05)
        return server

    def log(self) -> list[dict[str, str]]:
        """Access log entries: method, uri, status, bytes, range, if_none_match."""
        entries = []
        pattern = re.compile(r'(\S+) (\S+) (\d+) (\d+) "([^"]*)" "([^"]*)"')
        for line in (self.dir / "access.log").read_text().splitlines():
            match = pattern.match(line)
            if match:
                keys = ("method", "uri", "status", "bytes", "range", "if_none_match")
                entries.append(dict(zip(keys, match.groups(), strict=True)))
        return entries

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)


class Gpg:
    """A private GnuPG home making real keys and detached signatures."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)

    def gpg(self, *args: str, stdin: bytes | None = None) -> bytes:
        result = subprocess.run(
            [
                "gpg",
                "--homedir",
                str(self.home),
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--no-tty",
                *args,
            ],
            input=stdin,
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)}: {result.stderr.decode()}")
        return result.stdout

    def new_key(self, uid: str, *, subkey: bool = True) -> str:
        """A certify-only Ed25519 primary with a signing subkey (or a signing primary); its fingerprint."""
        self.gpg("--quick-gen-key", uid, "ed25519", "cert" if subkey else "sign", "never")
        out = self.gpg("--with-colons", "--list-keys", uid).decode()
        fingerprint = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
        if subkey:
            self.gpg("--quick-add-key", fingerprint, "ed25519", "sign", "never")
        return fingerprint.lower()

    def export(self, fingerprint: str, *, armor: bool = True) -> bytes:
        return self.gpg(*(["--armor"] if armor else []), "--export", fingerprint)

    def sign(self, fingerprint: str, path: Path) -> Path:
        signature = path.with_name(path.name + ".asc")
        self.gpg(
            "--yes",
            "--local-user",
            fingerprint,
            "--armor",
            "--detach-sign",
            "--output",
            str(signature),
            str(path),
        )
        return signature

    def revoke(self, fingerprint: str) -> None:
        """Import the revocation certificate gpg wrote when it made the key."""
        cert = (self.home / "openpgp-revocs.d" / f"{fingerprint.upper()}.rev").read_text()
        self.gpg("--import", stdin=cert.replace(":-----BEGIN", "-----BEGIN").encode())

    def close(self) -> None:
        if shutil.which("gpgconf"):
            subprocess.run(
                ["gpgconf", "--homedir", str(self.home), "--kill", "all"], capture_output=True, check=False
            )


def gpgv_accepts(keyring: Path, signature: Path, data: Path) -> bool:
    """The reference verdict: gpgv's status lines (its exit code accepts revoked and expired keys)."""
    empty = keyring.parent / "gpgv-home"
    empty.mkdir(mode=0o700, exist_ok=True)
    result = subprocess.run(
        [
            "gpgv",
            "--homedir",
            str(empty),
            "--keyring",
            str(keyring),
            "--status-fd",
            "1",
            str(signature),
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    status = result.stdout
    return (
        "[GNUPG:] GOODSIG " in status
        and "[GNUPG:] VALIDSIG " in status
        and "REVKEYSIG" not in status
        and "EXPKEYSIG" not in status
    )
