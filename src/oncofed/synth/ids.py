"""Deterministic identifiers and random streams derived from the seed.

Nothing in the synthetic federation may depend on wall-clock time or on `uuid4`: the same
seed must give byte-identical output. Every identifier is therefore a hash of the seed and
the path of the thing it names (provider, patient, study, series, instance).
"""

from __future__ import annotations

import hashlib
import random
import uuid

# DICOM UIDs under the ISO/ITU "2.25" arc: a UUID written as a decimal integer (PS3.5 B.2).
# Hash-derived UUIDs keep them unique without registering a private root.
UID_ROOT = "2.25."
_FHIR_NAMESPACE = uuid.UUID("6f6e636f-6665-4400-8000-73796e746800")


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()


def rng_for(*parts: object) -> random.Random:
    """A random stream that depends only on `parts` (e.g. seed, provider, patient index), so
    that patient i is the same whatever the number of patients asked for."""
    return random.Random(int.from_bytes(_digest("rng", *parts)[:16], "big"))


def dicom_uid(*parts: object) -> str:
    """A DICOM UID (at most 44 characters) derived from `parts`."""
    return UID_ROOT + str(int.from_bytes(_digest("uid", *parts)[:16], "big"))


def fhir_id(*parts: object) -> str:
    """A FHIR logical id (a UUID, version 5) derived from `parts`."""
    return str(uuid.uuid5(_FHIR_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def digits(n: int, *parts: object) -> str:
    """`n` decimal digits derived from `parts` (accession numbers, phone numbers)."""
    value = int.from_bytes(_digest("digits", *parts), "big")
    return str(value % 10**n).zfill(n)
