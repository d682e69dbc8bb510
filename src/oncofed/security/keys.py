"""Ed25519 key pairs: the hub signs tasks, a node signs its results and requests.

Public keys travel as unpadded base64url of the raw 32 bytes (as in JWK `x`), and a key is
named by its *key id*: the first 16 hex chars of the SHA-256 of those bytes, so that a
signature says which key made it and a rotated key never verifies an old name by accident.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class KeyFileError(ValueError):
    """A key file or encoded key is unusable."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    @classmethod
    def from_b64(cls, text: str) -> PublicKey:
        # The same few keys (the hub's, the nodes') are read on every message: one object
        # each, so that the decoded key below is built once.
        return _public_key(text)

    @property
    def b64(self) -> str:
        return b64url(self.raw)

    @cached_property
    def kid(self) -> str:
        return key_id(self.raw)

    @cached_property
    def _key(self) -> Ed25519PublicKey:
        # Decoding the point costs about as much as a signature check: done once per key.
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def to_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.b64, "kid": self.kid, "use": "sig"}


@lru_cache(maxsize=4096)
def _public_key(text: str) -> PublicKey:
    try:
        raw = unb64url(text)
    except (ValueError, TypeError) as exc:
        raise KeyFileError("public key is not base64url") from exc
    if len(raw) != 32:
        raise KeyFileError(f"an Ed25519 public key has 32 bytes, this one has {len(raw)}")
    return PublicKey(raw)


class SigningKey:
    """A private Ed25519 key; created once per hub or node and kept in its directory."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyFileError(f"signing key {path} is missing") from exc
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise KeyFileError(f"{path} is not a PEM private key") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"{path} holds a key that is not Ed25519")
        return cls(private)

    def save(self, path: Path) -> None:
        """Write the key readable by its owner only; never overwrite an existing key."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)

    @property
    def kid(self) -> str:
        return self.public.kid

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """For PyJWT (EdDSA) signing of visas and tokens."""
        return self._private
