"""GA4GH Passport visas (ControlledAccessGrants) signed by the hub, verified by nodes.

An approval in access negotiation becomes a visa: a JWT signed with the hub's Ed25519 key
(alg EdDSA) that says *this researcher may access this dataset at this node until then*.

    {"iss": hub URL, "sub": researcher, "aud": node id, "iat", "exp", "jti",
     "ga4gh_visa_v1": {"type": "ControlledAccessGrants", "asserted": iat,
                       "value": dataset id, "source": DAC URL, "by": "dac"},
     "oncofed": {"node": node name, "negotiation": id, "duo": [...], "conditions": text}}

Verification never trusts the token's header: the algorithm must be EdDSA (never ``none``,
never HS*), the key is the one the verifier pinned (a node pins the hub key at enrolment),
the ``kid`` must name that key, and issuer, audience, expiry, visa type, dataset and the
revocation list are all checked. Every failure is a `VisaError` whose `reason` is one of
`REASONS`, so a caller can log and count refusals without ever logging the token.

The hub also signs its **revocation list** (revoked, not yet expired visa ids); nodes fetch
it at least every 30 s and refuse a visa whose ``jti`` is on it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt

from oncofed.security.keys import PublicKey, SigningKey, unb64url

VISA_TYPE = "ControlledAccessGrants"
REVOCATION_TYP = "oncofed-visa-revocations+jwt"
ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 30
REASONS = (
    "malformed",
    "algorithm",
    "forged",
    "expired",
    "issuer",
    "audience",
    "type",
    "dataset",
    "revoked",
    "subject",
)


class VisaError(ValueError):
    """A visa that must be refused; `reason` is one of REASONS."""

    def __init__(self, reason: str, message: str, jti: str = "") -> None:
        super().__init__(message)
        self.reason, self.jti = reason, jti


@dataclass(frozen=True)
class Visa:
    """A verified ControlledAccessGrants visa."""

    jti: str
    issuer: str
    subject: str
    audience: str
    dataset: str
    expires_at: datetime
    source: str
    claims: dict[str, Any] = field(repr=False)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def visa_claims(
    *,
    issuer: str,
    subject: str,
    audience: str,
    dataset: str,
    source: str,
    lifetime: timedelta,
    extra: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    issued = int(_now(now).timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": jti or secrets.token_hex(16),
        "ga4gh_visa_v1": {
            "type": VISA_TYPE,
            "asserted": issued,
            "value": dataset,
            "source": source,
            "by": "dac",
        },
    }
    if extra:
        claims["oncofed"] = dict(extra)
    return claims


def sign_visa(claims: Mapping[str, Any], key: SigningKey, jku: str = "") -> str:
    """Sign visa claims with the hub key (deterministic: same claims, same token)."""
    headers: dict[str, Any] = {"kid": key.kid, "typ": "JWT"}
    if jku:
        headers["jku"] = jku
    return jwt.encode(dict(claims), key.private_key, algorithm=ALGORITHM, headers=headers)


def _checked_header(token: str, key: PublicKey) -> None:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise VisaError("malformed", f"not a JWT: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise VisaError(
            "algorithm", f"visa algorithm {header.get('alg')!r} refused: only EdDSA is accepted"
        )
    if header.get("kid") not in (None, key.kid):
        raise VisaError("forged", f"visa signed by key {header.get('kid')!r}, not the hub key")


def _unverified_jti(token: str) -> str:
    try:
        payload = json.loads(unb64url(token.split(".")[1]))
        return str(payload.get("jti", ""))[:64] if isinstance(payload, dict) else ""
    except (ValueError, IndexError):
        return ""


def verify_visa(
    token: str,
    key: PublicKey,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    dataset: str | None = None,
    subject: str | None = None,
    revoked: Collection[str] = (),
    now: datetime | None = None,
    leeway: int = LEEWAY_SECONDS,
) -> Visa:
    """Verify a visa against the pinned hub key; raise VisaError saying why it is refused.

    `issuer`, `audience`, `dataset` and `subject` are checked when given (a node passes its
    own node id as audience and the dataset it is about to reveal).
    """
    jti = _unverified_jti(token)
    _checked_header(token, key)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            Ed25519PublicKey.from_public_bytes(key.raw),
            algorithms=[ALGORITHM],
            options={
                "require": ["iss", "sub", "iat", "exp", "jti"],
                "verify_aud": audience is not None,
            },
            audience=audience,
            leeway=leeway,
        )
    except jwt.InvalidSignatureError as exc:
        raise VisaError("forged", "visa signature does not verify with the hub key", jti) from exc
    except jwt.ExpiredSignatureError as exc:
        raise VisaError("expired", "visa has expired", jti) from exc
    except jwt.InvalidAudienceError as exc:
        raise VisaError("audience", "visa was issued for another node", jti) from exc
    except jwt.MissingRequiredClaimError as exc:
        reason = "audience" if exc.claim == "aud" else "malformed"
        raise VisaError(reason, f"visa refused: {exc}", jti) from exc
    except jwt.PyJWTError as exc:
        raise VisaError("malformed", f"visa refused: {exc}", jti) from exc
    # PyJWT checks exp against the wall clock; a caller-supplied `now` is checked here too.
    if now is not None and claims["exp"] + leeway < now.timestamp():
        raise VisaError("expired", "visa has expired", jti)
    if issuer is not None and claims.get("iss") != issuer:
        raise VisaError("issuer", f"visa issued by {claims.get('iss')!r}, not {issuer!r}", jti)
    visa = claims.get("ga4gh_visa_v1")
    if not isinstance(visa, dict) or visa.get("type") != VISA_TYPE:
        raise VisaError("type", f"not a {VISA_TYPE} visa", jti)
    value = visa.get("value")
    if not isinstance(value, str) or not value:
        raise VisaError("malformed", "visa names no dataset (ga4gh_visa_v1.value)", jti)
    if dataset is not None and value != dataset:
        raise VisaError("dataset", f"visa is for dataset {value!r}, not {dataset!r}", jti)
    if subject is not None and claims.get("sub") != subject:
        raise VisaError("subject", "visa belongs to another researcher", jti)
    if claims["jti"] in revoked:
        raise VisaError("revoked", "visa was revoked by the hub", claims["jti"])
    aud = claims.get("aud", "")
    return Visa(
        jti=str(claims["jti"]),
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        audience=str(aud if isinstance(aud, str) else ",".join(aud)),
        dataset=value,
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        source=str(visa.get("source", "")),
        claims=claims,
    )


# -- revocation list ----------------------------------------------------------------------


@dataclass(frozen=True)
class RevocationList:
    issuer: str
    issued_at: datetime
    expires_at: datetime
    revoked: frozenset[str]


def sign_revocation_list(
    revoked: Iterable[str],
    key: SigningKey,
    issuer: str,
    lifetime: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> str:
    issued = _now(now)
    claims = {
        "iss": issuer,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "revoked": sorted(set(revoked)),
    }
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": REVOCATION_TYP},
    )


def verify_revocation_list(token: str, key: PublicKey, issuer: str | None = None) -> RevocationList:
    """Verify the hub-signed revocation list (same algorithm and key rules as a visa)."""
    _checked_header(token, key)
    if jwt.get_unverified_header(token).get("typ") != REVOCATION_TYP:
        raise VisaError("type", "not a visa revocation list")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        claims = jwt.decode(
            token,
            Ed25519PublicKey.from_public_bytes(key.raw),
            algorithms=[ALGORITHM],
            options={"require": ["iss", "iat", "exp"], "verify_aud": False},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.InvalidSignatureError as exc:
        raise VisaError("forged", "revocation list signature does not verify") from exc
    except jwt.ExpiredSignatureError as exc:
        raise VisaError("expired", "revocation list has expired") from exc
    except jwt.PyJWTError as exc:
        raise VisaError("malformed", f"revocation list refused: {exc}") from exc
    if issuer is not None and claims["iss"] != issuer:
        raise VisaError("issuer", f"revocation list issued by {claims['iss']!r}")
    revoked = claims.get("revoked")
    if not isinstance(revoked, list) or not all(isinstance(j, str) for j in revoked):
        raise VisaError("malformed", "revocation list has no list of ids")
    return RevocationList(
        issuer=str(claims["iss"]),
        issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        revoked=frozenset(revoked),
    )


# -- presenting visas ----------------------------------------------------------------------

PASSPORT_HEADER = "GA4GH-Passport"


def tokens_from_headers(headers: Mapping[str, str]) -> list[str]:
    """The visa JWTs a request presents: `GA4GH-Passport: <jwt> <jwt>...` (space or comma
    separated) and/or `Authorization: Bearer <jwt>` when that bearer value is a JWT."""
    lowered = {k.lower(): v for k, v in headers.items()}
    tokens: list[str] = []
    raw = lowered.get(PASSPORT_HEADER.lower(), "")
    tokens += [t for t in raw.replace(",", " ").split() if t.count(".") == 2]
    scheme, _, bearer = lowered.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer.strip().count(".") == 2:
        tokens.append(bearer.strip())
    return tokens[:50]


class GrantChecker(Protocol):
    """Given what a request presents, the dataset ids it holds a VERIFIED grant for."""

    def granted(self, headers: Mapping[str, str], datasets: Collection[str]) -> set[str]: ...
