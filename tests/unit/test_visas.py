"""Visas as the node verifies them: forged, expired, other dataset, other node, revoked,
alg=none and HS256 tricks are all refused; the node fails closed without a fresh
revocation list and logs every refusal; an edited or deleted audit entry is detected."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa

from oncofed.audit import AuditLog, audit_entry
from oncofed.node.grants import RevocationState, split_passport, verified_datasets
from oncofed.node.state import state_engine
from oncofed.security.keys import SigningKey
from oncofed.security.visas import (
    VisaError,
    sign_revocation_list,
    sign_visa,
    tokens_from_headers,
    verify_revocation_list,
    verify_visa,
    visa_claims,
)
from oncofed.settings import NodeSettings

HUB = "https://hub.example.org"
NODE = "node-0123456789abcdef"


@pytest.fixture(scope="module")
def hub_key() -> SigningKey:
    return SigningKey.generate()


def make(
    key: SigningKey,
    dataset: str = "ds-1",
    lifetime: timedelta = timedelta(days=1),
    now: datetime | None = None,
    audience: str = NODE,
    subject: str = "alice",
) -> str:
    claims = visa_claims(
        issuer=HUB,
        subject=subject,
        audience=audience,
        dataset=dataset,
        source=f"{HUB}/providers/p1/dac",
        lifetime=lifetime,
        now=now,
    )
    return sign_visa(claims, key)


def reason(token: str, key: SigningKey, **kw: object) -> str:
    with pytest.raises(VisaError) as err:
        verify_visa(token, key.public, **kw)  # type: ignore[arg-type]
    return err.value.reason


def test_a_good_visa_verifies(hub_key: SigningKey) -> None:
    token = make(hub_key)
    visa = verify_visa(token, hub_key.public, issuer=HUB, audience=NODE, dataset="ds-1")
    assert (visa.subject, visa.dataset, visa.audience) == ("alice", "ds-1", NODE)
    assert visa.claims["ga4gh_visa_v1"]["type"] == "ControlledAccessGrants"
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    # Same claims, same token (Ed25519 is deterministic): the hub stores claims only.
    assert sign_visa(visa.claims, hub_key) == token


def test_forged_visa_wrong_key(hub_key: SigningKey) -> None:
    assert reason(make(SigningKey.generate()), hub_key) == "forged"


def test_tampered_payload_is_forged(hub_key: SigningKey) -> None:
    header, payload, sig = make(hub_key, dataset="ds-1").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["ga4gh_visa_v1"]["value"] = "ds-2"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert reason(f"{header}.{forged}.{sig}", hub_key, dataset="ds-2") == "forged"


def test_expired_visa(hub_key: SigningKey) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    assert reason(make(hub_key, lifetime=timedelta(days=1), now=old), hub_key) == "expired"


def test_visa_for_another_dataset_or_node_or_person(hub_key: SigningKey) -> None:
    token = make(hub_key, dataset="ds-1")
    assert reason(token, hub_key, dataset="ds-2") == "dataset"
    assert reason(token, hub_key, audience="node-other") == "audience"
    assert reason(token, hub_key, subject="mallory") == "subject"
    assert reason(token, hub_key, issuer="https://evil.example") == "issuer"


def test_revoked_visa(hub_key: SigningKey) -> None:
    token = make(hub_key)
    jti = verify_visa(token, hub_key.public).jti
    assert reason(token, hub_key, revoked={jti}) == "revoked"


def test_alg_none_and_hs256_with_the_public_key_are_refused(hub_key: SigningKey) -> None:
    claims = verify_visa(make(hub_key), hub_key.public).claims
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert reason(unsigned, hub_key) == "algorithm"
    # The classic confusion attack: HMAC keyed with the (public) verification key.
    hs = jwt.encode(claims, hub_key.public.raw * 2, algorithm="HS256")
    assert reason(hs, hub_key) == "algorithm"
    assert reason("not-a-jwt", hub_key) == "malformed"


def test_other_kid_and_non_visa_tokens(hub_key: SigningKey) -> None:
    claims = verify_visa(make(hub_key), hub_key.public).claims
    other_kid = jwt.encode(claims, hub_key.private_key, algorithm="EdDSA", headers={"kid": "x"})
    assert reason(other_kid, hub_key) == "forged"
    not_a_grant = dict(
        claims, ga4gh_visa_v1={**claims["ga4gh_visa_v1"], "type": "AffiliationAndRole"}
    )
    assert reason(sign_visa(not_a_grant, hub_key), hub_key) == "type"
    # A revocation list is not a visa, and a visa is not a revocation list.
    rl = sign_revocation_list([], hub_key, HUB)
    assert reason(rl, hub_key) == "malformed"
    with pytest.raises(VisaError):
        verify_revocation_list(make(hub_key), hub_key.public)


def test_revocation_list_signature_and_rollback(hub_key: SigningKey, tmp_path: Path) -> None:
    with pytest.raises(VisaError) as err:
        verify_revocation_list(
            sign_revocation_list(["a"], SigningKey.generate(), HUB), hub_key.public
        )
    assert err.value.reason == "forged"
    state = RevocationState(state_engine(tmp_path / "state.db"))
    now = datetime.now(UTC)
    new = verify_revocation_list(
        sign_revocation_list(["a", "b"], hub_key, HUB, now=now), hub_key.public
    )
    assert state.store(new.revoked, new.issued_at) == ["a", "b"]
    old = verify_revocation_list(
        sign_revocation_list([], hub_key, HUB, now=now - timedelta(seconds=30)), hub_key.public
    )
    with pytest.raises(VisaError, match="older"):
        state.store(old.revoked, old.issued_at)  # replaying an old list un-revokes nothing
    assert state.load()[0] == {"a", "b"}


def test_presented_tokens() -> None:
    a, b = "h.p.s", "h2.p2.s2"
    assert tokens_from_headers({"GA4GH-Passport": f"{a}, {b}"}) == [a, b]
    assert tokens_from_headers({"authorization": f"Bearer {a}"}) == [a]
    assert tokens_from_headers({"authorization": "Bearer oft_opaque"}) == []
    assert split_passport(f"{a} junk {b}") == [a, b]


def node(tmp_path: Path, key: SigningKey, **kw: object) -> tuple[NodeSettings, sa.Engine, AuditLog]:
    settings = NodeSettings(
        name="n1",
        node_id=NODE,
        hub_url=HUB,
        hub_public_key=key.public.b64,
        **kw,  # type: ignore[arg-type]
    )
    engine = state_engine(tmp_path / "state.db")
    return settings, engine, AuditLog(engine)


def test_node_grants_fail_closed_and_log(hub_key: SigningKey, tmp_path: Path) -> None:
    settings, engine, audit = node(tmp_path, hub_key)
    good = make(hub_key, dataset="ds-1")
    forged = make(SigningKey.generate(), dataset="ds-2")
    expired = make(hub_key, dataset="ds-3", now=datetime.now(UTC) - timedelta(days=9))
    elsewhere = make(hub_key, dataset="ds-4", audience="node-other")
    # No revocation list fetched yet: nothing is granted.
    assert verified_datasets(settings, engine, audit, [good]) == set()
    RevocationState(engine).store(frozenset(), datetime.now(UTC))
    granted = verified_datasets(settings, engine, audit, [good, forged, expired, elsewhere])
    assert granted == {"ds-1"}
    # Asking about one dataset: a visa for another is refused.
    assert verified_datasets(settings, engine, audit, [good], datasets={"ds-9"}) == set()
    # Revoked at the hub → refused at the node.
    jti = verify_visa(good, hub_key.public).jti
    RevocationState(engine).store(frozenset({jti}), datetime.now(UTC))
    assert verified_datasets(settings, engine, audit, [good]) == set()
    rows = [e for e in audit.entries() if e["action"] == "visa.verify"]
    reasons = [json.loads(e["details"]).get("reason") for e in rows if e["decision"] == "deny"]
    assert reasons[0] is None  # the stale-list refusal
    assert reasons[1:] == ["forged", "expired", "audience", "dataset", "revoked"]
    assert [e["decision"] for e in rows].count("allow") == 1
    text = json.dumps(list(audit.entries()))
    assert good not in text and good.split(".")[2] not in text  # tokens never logged


def test_stale_revocation_list_refuses(hub_key: SigningKey, tmp_path: Path) -> None:
    settings, engine, audit = node(tmp_path, hub_key, grant_max_stale_seconds=1)
    RevocationState(engine).store(frozenset(), datetime.now(UTC))
    with engine.begin() as con:
        old = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        con.execute(sa.text("UPDATE visa_revocations SET fetched_at = :t"), {"t": old})
    assert verified_datasets(settings, engine, audit, [make(hub_key)]) == set()
    assert "old" in list(audit.entries())[-1]["reason"]


def test_tampered_and_deleted_audit_entries_are_detected(
    hub_key: SigningKey, tmp_path: Path
) -> None:
    settings, engine, audit = node(tmp_path, hub_key)
    RevocationState(engine).store(frozenset(), datetime.now(UTC))
    for _ in range(4):
        verified_datasets(settings, engine, audit, [make(hub_key)])
    assert audit.verify() == []
    with engine.begin() as con:  # an insider turns an allow into a deny
        con.execute(sa.update(audit_entry).where(audit_entry.c.seq == 2).values(decision="deny"))
    problems = audit.verify()
    assert [(p.seq, "changed" in p.problem) for p in problems] == [(2, True)]
    with engine.begin() as con:
        con.execute(sa.delete(audit_entry).where(audit_entry.c.seq == 3))
    problems = audit.verify()
    assert any("missing" in p.problem for p in problems)
    assert any(p.seq == 4 and "link" in p.problem for p in problems)
