"""Bearer secrets (API tokens, enrolment tokens) and passwords.

Secrets are stored only as hashes: a database dump never yields a usable token. Tokens are
long random strings, so a plain SHA-256 is enough for them; passwords are low-entropy and
get argon2id. Look-ups go by hash, and any comparison of secrets is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def new_token(prefix: str) -> str:
    """A random token with a readable prefix (`oft_` API token, `ofe_` enrolment token)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_password() -> str:
    """A generated password for a first account (no default passwords, ever)."""
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
