"""Pseudonyms: keyed hashes computed at the node with a secret that never leaves it.

The same source identifier gives the same pseudonym at the same node whatever the source
(DICOM PatientID, a CSV's MRN, a FHIR Patient id, a VCF sample's patient), which is what links
a patient's images, clinical records and variants. Without the secret the pseudonym cannot be
recomputed from a guessed identifier, unlike a plain hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_BYTES = 32


def new_secret(path: Path) -> bytes:
    """Create the node's pseudonymisation secret, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret.hex().encode())
    return secret


def load_secret(path: Path) -> bytes:
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"pseudonymisation secret {path} is missing; it was created by `oncofed node init`."
            " Restore it from the node's backup: without it, new data will not link to old."
        ) from exc
    if len(secret) < 16:
        raise RuntimeError(f"pseudonymisation secret {path} is too short")
    return secret


def pseudonymise(secret: bytes, provider_id: str, source_id: str, kind: str = "patient") -> str:
    """`<provider>-<20 hex chars>`: the provider prefix keeps pseudonyms unique federation-wide.

    `kind` separates name spaces (patient, sample, accession) so that equal source strings of
    different kinds do not collide.
    """
    mac = hmac.new(secret, f"{kind}\x1f{source_id.strip()}".encode(), hashlib.sha256)
    return f"{provider_id}-{mac.hexdigest()[:20]}"
