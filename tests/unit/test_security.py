"""Signatures, signed requests, secrets and pseudonyms."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oncofed.security.envelope import SignatureError, SignedEnvelope, canonical_json
from oncofed.security.keys import KeyFileError, PublicKey, SigningKey
from oncofed.security.pseudonym import load_secret, new_secret, pseudonymise
from oncofed.security.request_auth import RequestAuthError, sign_request, verify_request
from oncofed.security.secrets_ import hash_password, token_hash, verify_password

KEY = SigningKey.generate()
OTHER = SigningKey.generate()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_envelope_round_trip_and_any_change_is_detected(payload: dict) -> None:
    envelope = SignedEnvelope.sign(payload, KEY)
    assert envelope.verify(KEY.public) == payload
    # Any added field is detected.
    altered = SignedEnvelope(
        payload={**payload, "\x00extra": 1}, kid=envelope.kid, signature=envelope.signature
    )
    with pytest.raises(SignatureError):
        altered.verify(KEY.public)


def test_envelope_refuses_other_key_and_reordering_is_harmless() -> None:
    envelope = SignedEnvelope.sign({"a": 1, "b": [1, 2]}, KEY)
    with pytest.raises(SignatureError, match="expected key"):
        envelope.verify(OTHER.public)
    forged = SignedEnvelope(
        payload=envelope.payload,
        kid=KEY.kid,
        signature=SignedEnvelope.sign(envelope.payload, OTHER).signature,
    )
    with pytest.raises(SignatureError, match="altered or forged"):
        forged.verify(KEY.public)
    reordered = SignedEnvelope(
        payload={"b": [1, 2], "a": 1}, kid=envelope.kid, signature=envelope.signature
    )
    assert reordered.verify(KEY.public) == {"a": 1, "b": [1, 2]}
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_public_key_encoding() -> None:
    assert PublicKey.from_b64(KEY.public.b64) == KEY.public
    with pytest.raises(KeyFileError, match="32 bytes"):
        PublicKey.from_b64("AAAA")
    assert KEY.public.to_jwk()["kid"] == KEY.kid


def test_key_file_is_private_and_never_overwritten(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "k.pem"
    KEY.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(path).kid == KEY.kid
    with pytest.raises(FileExistsError):
        OTHER.save(path)
    with pytest.raises(KeyFileError, match="missing"):
        SigningKey.load(tmp_path / "none.pem")


def test_signed_request_checks() -> None:
    headers = sign_request("node-1", KEY, "PUT", "/api/x?y=1", b"{}")
    args = dict(
        timestamp=headers["Oncofed-Date"],
        nonce=headers["Oncofed-Nonce"],
        signature=headers["Oncofed-Signature"],
        max_skew=60,
    )
    verify_request(KEY.public, "PUT", "/api/x?y=1", b"{}", **args)
    for method, target, body in (
        ("GET", "/api/x?y=1", b"{}"),
        ("PUT", "/api/x?y=2", b"{}"),
        ("PUT", "/api/x?y=1", b"{ }"),
    ):
        with pytest.raises(RequestAuthError, match="does not verify"):
            verify_request(KEY.public, method, target, body, **args)
    with pytest.raises(RequestAuthError, match="clock"):
        verify_request(
            KEY.public,
            "PUT",
            "/api/x?y=1",
            b"{}",
            **{**args, "timestamp": str(int(time.time()) - 3600)},
        )


def test_secrets_are_hashed() -> None:
    stored = hash_password("correct horse")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "wrong")
    assert not verify_password("not-a-hash", "x")
    assert len(token_hash("oft_x")) == 64


def test_pseudonyms_are_keyed_stable_and_prefixed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = new_secret(tmp_path / "s")
    assert load_secret(tmp_path / "s") == secret
    a = pseudonymise(secret, "de-berlin", "MRN123")
    assert a == pseudonymise(secret, "de-berlin", " MRN123 ")
    assert a.startswith("de-berlin-") and "MRN123" not in a
    assert a != pseudonymise(b"another secret!!", "de-berlin", "MRN123")
    assert a != pseudonymise(secret, "de-berlin", "MRN123", kind="sample")
    with pytest.raises(RuntimeError, match="Restore it"):
        load_secret(tmp_path / "missing")
