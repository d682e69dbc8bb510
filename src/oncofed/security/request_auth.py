"""Signed HTTP requests from a node to the hub.

A node proves who it is on every call with its Ed25519 key, not with a bearer secret that
could leak from a proxy log: it signs method, path, timestamp, a fresh nonce and the SHA-256
of the body. The hub checks the node's registered key, the clock skew, and that the nonce
was never seen before, so a captured request cannot be replayed or altered.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from oncofed.security.keys import PublicKey, SigningKey, b64url, unb64url

HEADER_NODE = "Oncofed-Node"
HEADER_DATE = "Oncofed-Date"
HEADER_NONCE = "Oncofed-Nonce"
HEADER_SIGNATURE = "Oncofed-Signature"


class RequestAuthError(ValueError):
    pass


def _message(
    method: str, target: str, timestamp: str, nonce: str, body: bytes, digest: str | None = None
) -> bytes:
    digest = digest or hashlib.sha256(body).hexdigest()
    return "\n".join([method.upper(), target, timestamp, nonce, digest]).encode()


def sign_request(
    node_id: str,
    key: SigningKey,
    method: str,
    target: str,
    body: bytes = b"",
    body_sha256: str | None = None,
) -> dict[str, str]:
    """Headers for one request; `target` is the path with its query string. A large body
    (a weights blob) may be signed by its SHA-256 instead of held in memory."""
    timestamp = str(int(time.time()))
    nonce = secrets.token_urlsafe(18)
    signature = key.sign(_message(method, target, timestamp, nonce, body, body_sha256))
    return {
        HEADER_NODE: node_id,
        HEADER_DATE: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: b64url(signature),
    }


def verify_request(
    key: PublicKey,
    method: str,
    target: str,
    body: bytes,
    timestamp: str,
    nonce: str,
    signature: str,
    max_skew: int,
    body_sha256: str | None = None,
) -> None:
    """Check signature and freshness; the caller checks the nonce was not seen before.
    `body_sha256` stands for `body` when the caller streamed the body and hashed it."""
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise RequestAuthError("Oncofed-Date is not a unix timestamp") from exc
    skew = abs(time.time() - ts)
    if skew > max_skew:
        raise RequestAuthError(
            f"request time is {skew:.0f} s away from the hub's clock (limit {max_skew} s); "
            "check the node's clock (NTP)"
        )
    if not 16 <= len(nonce) <= 64:
        raise RequestAuthError("Oncofed-Nonce has the wrong length")
    try:
        raw = unb64url(signature)
    except ValueError as exc:
        raise RequestAuthError("Oncofed-Signature is not base64url") from exc
    if not key.verify(raw, _message(method, target, timestamp, nonce, body, body_sha256)):
        raise RequestAuthError("request signature does not verify with the node's key")
