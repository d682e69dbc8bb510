"""Signed envelopes: how a task (hub → node) and a result (node → hub) travel.

The payload is serialised canonically (sorted keys, no whitespace, UTF-8) before signing, so
a verifier re-serialises what it received and checks the signature over exactly the bytes
that were signed; any change to any field, including the addressee, the expiry or the task id
a result answers, breaks the signature. Replay is stopped by the receiver: a task carries an
id and an expiry, and a node executes each task id once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from oncofed.security.keys import PublicKey, SigningKey, b64url, unb64url


class SignatureError(ValueError):
    """A message failed verification; the text says why (logged, never acted on)."""


def canonical_json(payload: Any) -> bytes:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SignedEnvelope(BaseModel):
    payload: dict[str, Any]
    kid: str
    signature: str

    @classmethod
    def sign(cls, payload: dict[str, Any], key: SigningKey) -> SignedEnvelope:
        return cls(
            payload=payload, kid=key.kid, signature=b64url(key.sign(canonical_json(payload)))
        )

    def verify(self, key: PublicKey) -> dict[str, Any]:
        """Return the payload when it was signed by `key`; raise SignatureError otherwise."""
        return self.verify_canonical(key)[0]

    def verify_canonical(self, key: PublicKey) -> tuple[dict[str, Any], bytes]:
        """`verify`, also returning the canonical bytes that were checked.

        For a receiver that hashes the message too (the hub's result digest): the payload
        is serialised once instead of twice.
        """
        if self.kid != key.kid:
            raise SignatureError(f"signed by key {self.kid}, expected key {key.kid}")
        try:
            signature = unb64url(self.signature)
        except ValueError as exc:
            raise SignatureError("signature is not base64url") from exc
        canonical = canonical_json(self.payload)
        if not key.verify(signature, canonical):
            raise SignatureError("signature does not match the message (altered or forged)")
        return self.payload, canonical
