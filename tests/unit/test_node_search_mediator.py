"""The EUCAIM mediator endpoint: auth, both request forms, errors and the response shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from oncofed.node.mediator import MediatorContext, ast_from_params, make_mediator_router
from oncofed.node.store import NodeStore
from oncofed.privacy import DisclosureDecision, DisclosurePolicy, PrivacyLedger
from oncofed.query import parse_query

KEY = "s3cret-key"
ENVELOPE = {
    "ast": {
        "operand": "OR",
        "children": [
            {
                "operand": "AND",
                "children": [
                    {
                        "operand": "OR",
                        "children": [
                            {
                                "key": "SNOMEDCT263495000",
                                "system": "",
                                "type": "EQUALS",
                                "value": "SNOMEDCT248153007",
                            }
                        ],
                    },
                    {
                        "operand": "OR",
                        "children": [
                            {
                                "key": "RID10311",
                                "system": "urn:oid:x",
                                "type": "EQUALS",
                                "value": "RID10312",
                            }
                        ],
                    },
                    {
                        "operand": "OR",
                        "children": [
                            {
                                "key": "SNOMEDCT123037004",
                                "system": "",
                                "type": "EQUALS",
                                "value": "SNOMEDCT41216001",
                            }
                        ],
                    },
                ],
            }
        ],
    },
    "id": "66b8bbf4-ded2-4f94-87ab-3a3ca2f4edc0__search__66b8bbf4-ded2-4f94-87ab-3a3ca2f4edc0",
}


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[TestClient, list[DisclosureDecision], dict[str, Any]]:
    store = NodeStore(tmp_path / "node.duckdb")
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO dataset (id, name, description) VALUES "
            "('prostate-mri', 'Prostate MRI', 'mpMRI of the prostate')"
        )
        cur.execute(
            "INSERT INTO patient (id, dataset_id, sex) "
            "SELECT 'p' || i, 'prostate-mri', 'male' FROM range(60) t(i)"
        )
        cur.execute(
            "INSERT INTO disease (id, patient_id, site_snomed, age_at_diagnosis) "
            "SELECT 'd' || i, 'p' || i, '399068003', 55 + i % 10 FROM range(60) t(i)"
        )
        cur.execute(
            "INSERT INTO imaging_series (uid, study_uid, patient_id, modality, "
            "body_part, manufacturer) SELECT 'se' || i, 'st' || i, 'p' || i, 'MR', "
            "'PROSTATE', 'SIEMENS' FROM range(60) t(i)"
        )
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    decisions: list[DisclosureDecision] = []
    settings: dict[str, Any] = {"api_key": KEY}

    def context() -> MediatorContext:
        return MediatorContext(
            store=store,
            policy=DisclosurePolicy(rate_limit_per_minute=5),
            state_engine=engine,
            node_id="node-a",
            api_key=settings["api_key"],
            audit=decisions.append,
            ledger=PrivacyLedger(engine),
        )

    app = FastAPI()
    app.include_router(make_mediator_router(context))
    return TestClient(app), decisions, settings


AUTH = {"Authorization": f"ApiKey {KEY}"}


def test_post_envelope_returns_mediator_shape(setup: Any) -> None:
    client, decisions, _ = setup
    r = client.post("/mediator", json=ENVELOPE, headers=AUTH)
    assert r.status_code == 200, r.text
    (coll,) = r.json()["collections"]
    assert set(coll) >= {
        "id",
        "name",
        "description",
        "subjects_count",
        "studies_count",
        "age_range",
        "gender",
        "modalities",
        "body_parts",
    }
    assert coll["id"] == "prostate-mri" and coll["name"] == "Prostate MRI"
    assert coll["subjects_count"] % 5 == 0 and 45 <= coll["subjects_count"] <= 75
    assert coll["gender"] == ["male"] and coll["modalities"] == ["MR"]
    assert coll["body_parts"] == ["prostate"]
    assert coll["age_range"]["min"] in (50, 55) and coll["age_range"]["max"] in (60, 65, 70)
    assert decisions[-1].decision == "answered"
    assert decisions[-1].requester == "mediator:eucaim"
    # Focus's flat GET form asks the same thing and gets the same answer
    g = client.get(
        "/mediator",
        params={"gender": "male", "modality": "MR", "bodyPart": "prostate"},
        headers=AUTH,
    )
    assert g.status_code == 200 and g.json() == r.json()


@pytest.mark.parametrize("header", [None, "ApiKey wrong", f"Basic {KEY}", KEY])
def test_wrong_or_missing_key_is_refused(setup: Any, header: str | None) -> None:
    client, decisions, _ = setup
    headers = {} if header is None else {"Authorization": header}
    r = client.post("/mediator", json=ENVELOPE, headers=headers)
    assert r.status_code == 401
    assert "collections" not in r.json() and decisions == []


def test_no_key_configured_refuses_everything(setup: Any) -> None:
    client, _, settings = setup
    settings["api_key"] = None
    assert client.post("/mediator", json=ENVELOPE, headers=AUTH).status_code == 403
    assert (
        client.post("/mediator", json=ENVELOPE, headers={"Authorization": "ApiKey "}).status_code
        == 403
    )


def test_invalid_query_names_key_and_value(setup: Any) -> None:
    client, _, _ = setup
    bad = {
        "ast": {
            "operand": "AND",
            "children": [{"key": "RID10311", "type": "EQUALS", "value": "RID424242"}],
        },
        "id": "x",
    }
    r = client.post("/mediator", json=bad, headers=AUTH)
    assert r.status_code == 422
    problem = r.json()["problems"][0]
    assert problem["key"] == "RID10311" and problem["value"] == "RID424242"
    r = client.get("/mediator", params={"modality": "Ultrasound"}, headers=AUTH)
    assert r.status_code == 422 and "Ultrasound" in r.text
    r = client.post(
        "/mediator", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 422


def test_rate_limit_gives_429_with_retry_after(setup: Any) -> None:
    client, _, _ = setup
    codes = [client.post("/mediator", json=ENVELOPE, headers=AUTH).status_code for _ in range(6)]
    assert codes[:5] == [200] * 5 and codes[5] == 429


def test_flat_params_follow_the_eucaim_shape() -> None:
    ast = ast_from_params(
        {
            "gender": ["male"],
            "manufacturer": ["General Electric", "Philips"],
            "diagnosis": ["SNOMEDCT399068003"],
        }
    )
    op = parse_query(ast)
    assert {c.key for c in op.children} == {
        "SNOMEDCT263495000",
        "C25392",  # type: ignore[union-attr]
        "SNOMEDCT439401001",
    }
