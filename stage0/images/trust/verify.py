"""Detached OpenPGP signature checks (pysequoia; the only module that imports it: ``_sequoia``).

Policy: a signature counts when it is by a trusted key that is not revoked and was valid when
the signature was made. A key that has expired *since* still verifies what it signed before
(the image did not change); a signature made after the key expired is refused.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from stage0.errors import Error, ErrorKind, FailedPreconditionError
from stage0.images.trust.keystore import TrustedKey

log = logging.getLogger(__name__)
# Debian 12 has no pysequoia: the package carries it here, away from the system's modules
PRIVATE_MODULES = "/usr/lib/nspod/python"


def _sequoia() -> Any:
    try:
        import pysequoia
    except ImportError:
        if PRIVATE_MODULES in sys.path or not os.path.isdir(PRIVATE_MODULES):
            raise FailedPreconditionError(
                "pysequoia is not installed", hint="reinstall nspod (it checks signatures with it)"
            ) from None
        sys.path.append(PRIVATE_MODULES)
        import pysequoia
    return pysequoia


class SignatureError(Error):
    kind = ErrorKind.PERMISSION_DENIED
    hint = "trust the signer ('nspod trust --prefix NAME KEY'), or skip the check: --insecure-options=image"


@dataclass(frozen=True, slots=True)
class Verified:
    fingerprint: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    fingerprint: str
    user_ids: tuple[str, ...]
    armored: bytes
    revoked: bool


def read_keys(data: bytes, source: str) -> list[KeyInfo]:
    """The public keys in ``data`` (armored or binary; one key or a keyring)."""
    sq = _sequoia()

    try:
        certs = sq.Cert.split_bytes(data)
    except Exception as error:  # pysequoia raises plain exceptions with Rust messages
        raise SignatureError(
            f"{source}: not an OpenPGP public key: {_first_line(error)}",
            hint="give an armored public key (gpg --armor --export)",
        ) from None
    if not certs:
        raise SignatureError(f"{source}: no OpenPGP key in it")
    found = []
    for cert in certs:
        if cert.has_secret_keys:
            raise SignatureError(f"{source}: contains a secret key", hint="export only the public key")
        found.append(
            KeyInfo(
                str(cert.fingerprint).lower(),
                tuple(str(u) for u in cert.user_ids),
                str(cert).encode(),
                bool(cert.is_revoked),
            )
        )
    return found


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def verify_file(path: str, signature: bytes, keys: list[TrustedKey], *, what: str) -> Verified:
    """Check ``signature`` over the file at ``path`` against ``keys``."""
    sq = _sequoia()

    try:
        sig = sq.Sig.from_bytes(signature)
    except Exception as error:
        raise SignatureError(
            f"{what}: the signature is not an OpenPGP signature: {_first_line(error)}"
        ) from None
    issuer = str(sig.issuer_fingerprint or sig.issuer_key_id or "").lower() or None
    certs: list[Any] = []
    for key in keys:
        try:
            certs += sq.Cert.split_file(key.path)
        except Exception as error:
            raise SignatureError(
                f"{key.path}: unreadable trusted key: {_first_line(error)}",
                hint="remove or replace the file",
            ) from None
    if not certs:
        raise SignatureError(
            f"{what}: no trusted key for this image (signed by {issuer or 'an unknown key'})"
        )
    matching = [c for c in certs if issuer is None or issuer in _key_ids(c)]
    if not matching:
        raise SignatureError(f"{what}: signed by {issuer}, which is not a trusted key for this image")
    for cert in matching:
        if cert.is_revoked:
            raise SignatureError(
                f"{what}: signed by revoked key {str(cert.fingerprint).lower()}",
                hint="the signer revoked this key; get a newly signed image",
            )
    try:
        result = sq.verify(file=path, signature=sig, store=lambda _ids: matching)
    except Exception as error:
        raise SignatureError(
            f"{what}: bad signature ({_first_line(error)})",
            hint="the image or its signature was changed after signing; do not use it",
        ) from None
    valid = result.valid_sigs
    if not valid:
        raise SignatureError(f"{what}: no valid signature")
    fingerprint = str(valid[0].certificate).lower()
    cert = next((c for c in matching if str(c.fingerprint).lower() == fingerprint), matching[0])
    log.debug("signature on %s verified with %s", what, fingerprint)
    return Verified(fingerprint, tuple(str(u) for u in cert.user_ids))


def _key_ids(cert: Any) -> set[str]:
    """Fingerprints and key IDs of the primary key and every subkey (signatures name either)."""
    sq = _sequoia()

    ids: set[str] = set()
    for packet in sq.packet.PacketPile.from_bytes(str(cert).encode()):
        for value in (packet.fingerprint, packet.key_id):
            if value:
                ids.add(str(value).lower())
    return ids
