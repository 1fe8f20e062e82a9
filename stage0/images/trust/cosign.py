"""Signatures of OCI images in cosign's key-based format, checked with ``cryptography``.

A signature is an OCI image in the signed image's repository, tagged ``sha256-<hex>.sig`` after
the signed manifest's digest. Each of its layers is a "simple signing" payload (media type
``application/vnd.dev.cosign.simplesigning.v1+json``)::

    {"critical": {"identity": {"docker-reference": "REGISTRY/REPO"},
                  "image": {"docker-manifest-digest": "sha256:…"},
                  "type": "cosign container image signature"}, "optional": …}

whose ECDSA P-256 / SHA-256 signature (ASN.1 DER, base64) is the layer's annotation
``dev.cosignproject.cosign/signature``. A payload counts when its signature verifies with a key
trusted for the repository and it names the very digest being pulled.

Trusted keys (PEM public keys) live beside the OpenPGP ones::

    trustedkeys/cosign.d/<registry>/<repository path>/<sha256 of the key>.pub
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass

from stage0.errors import Error, ErrorKind
from stage0.host.atomic import write_atomic

PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_KIND = "cosign container image signature"


class CosignError(Error):
    kind = ErrorKind.PERMISSION_DENIED
    hint = "the image is refused: trust the right key (nspod trust --prefix docker://… --cosign-key)"


@dataclass(frozen=True, slots=True)
class CosignKey:
    fingerprint: str  # sha256 of the key's DER SubjectPublicKeyInfo
    pem: bytes
    prefix: str


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def load_key(pem: bytes, what: str) -> tuple[str, bytes]:
    """(fingerprint, PEM) of an ECDSA P-256 public key; a clear error for anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise CosignError(f"{what} is not a PEM public key", hint="give cosign's cosign.pub") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CosignError(f"{what} is not an ECDSA P-256 key (cosign's key-based signatures)")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest(), key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_repository_prefix(prefix: str) -> str:
    """``docker://REGISTRY/REPO`` (or a shorter prefix of whole components) → ``REGISTRY/REPO``."""
    from stage0.images.oci.reference import COMPONENT, DOMAIN

    bare = prefix.removeprefix("docker://").strip("/")
    first, *rest = bare.split("/")
    if not DOMAIN.fullmatch(first) or not all(COMPONENT.fullmatch(part) for part in rest):
        raise CosignError(
            f"bad prefix {prefix!r}", hint="e.g. --prefix docker://registry.example.com/team/app"
        )
    return bare


class CosignKeys:
    """The cosign keys under the system's and the local ``trustedkeys/`` (the local one wins)."""

    def __init__(self, system_trustedkeys: str, local_trustedkeys: str) -> None:
        self._dirs = (system_trustedkeys, local_trustedkeys)

    def keys_for(self, repository: str) -> list[CosignKey]:
        """The keys trusted for ``REGISTRY/REPO``: those of every whole-component prefix of it."""
        parts = repository.split("/")
        found: dict[tuple[str, str], CosignKey] = {}
        for directory in self._dirs:
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                place = os.path.join(directory, "cosign.d", prefix)
                try:
                    names = sorted(n for n in os.listdir(place) if n.endswith(".pub"))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for name in names:
                    with open(os.path.join(place, name), "rb") as file:
                        pem = file.read()
                    if not pem.strip():  # an empty local file masks the system's
                        found.pop((prefix, name), None)
                        continue
                    found[(prefix, name)] = CosignKey(name.removesuffix(".pub"), pem, prefix)
        return list(found.values())

    def add(self, prefix: str, pem: bytes, what: str) -> tuple[str, bool]:
        fingerprint, normal = load_key(pem, what)
        place = os.path.join(self._dirs[1], "cosign.d", check_repository_prefix(prefix))
        os.makedirs(place, mode=0o755, exist_ok=True)
        path = os.path.join(place, fingerprint + ".pub")
        new = not os.path.exists(path)
        write_atomic(path, normal)
        return path, new


def verify(
    signatures: list[tuple[bytes, str]], digest: str, repository: str, keys: list[CosignKey]
) -> CosignKey:
    """The key one of ``signatures`` ((payload, base64 signature) pairs) verifies with, for the
    manifest ``digest`` of ``repository``; CosignError if none does."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    reasons = []
    for payload, encoded in signatures:
        try:
            critical = json.loads(payload)["critical"]
            named = critical["image"]["docker-manifest-digest"]
            kind = critical["type"]
            signature = base64.b64decode(encoded, validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            reasons.append("a malformed payload")
            continue
        if kind != SIGNATURE_KIND or named != digest:
            reasons.append(f"a signature of {named}, not {digest}")
            continue
        for key in keys:
            public = serialization.load_pem_public_key(key.pem)
            assert isinstance(public, ec.EllipticCurvePublicKey)
            try:
                public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return key
        reasons.append("a signature by no trusted key")
    raise CosignError(
        f"{repository}@{digest}: no valid signature ({', '.join(reasons) or 'none found'})",
        hint=f"sign it with a key trusted for {repository} (nspod trust --prefix docker://{repository} "
        "--cosign-key KEY.pub), or --insecure-options=image to run it unverified",
    )
