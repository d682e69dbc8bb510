"""The mediator as EUCAIM's clients call it: request fixtures in the shapes Samply Focus sends
(its ``eucaim_api`` and ``eucaim_sql`` modules and their tests: the AST envelope with
``system`` fields, the flat GET form with ``gender=unknown`` and ``General%20Electric``), the
response checked against Focus's typed model (integer counts, ``age_range`` as integer
``{min, max}``), the ``Secret`` scheme of the reference dataset service, and one budget per
upstream network key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from oncofed.node.mediator import MediatorContext, make_mediator_router
from oncofed.node.policy import NodePolicy
from oncofed.node.store import NodeStore
from oncofed.privacy import PrivacyLedger
from oncofed.query import parse_query
from oncofed.query.counts import count_matches

KEYS = {"eucaim": "eucaim-network-key-0123", "other": "other-network-key-4567"}


def _or(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"operand": "OR", "children": list(conditions)}


def _c(key: str, value: Any, system: str = "", type_: str = "EQUALS") -> dict[str, Any]:
    return {"key": key, "system": system, "type": type_, "value": value}


# Focus's "just right" request: one OR group per criterion under one AND, each with the
# ontology system Lens adds; male, prostate cancer, MR, prostate, Siemens.
FOCUS_ENVELOPE = {
    "ast": _or(
        {
            "operand": "AND",
            "children": [
                _or(_c("SNOMEDCT263495000", "SNOMEDCT248153007")),
                _or(_c("SNOMEDCT439401001", "SNOMEDCT399068003", "urn:snomed-org/sct")),
                _or(_c("RID10311", "RID10312", "urn:oid:2.16.840.1.113883.6.256")),
                _or(_c("SNOMEDCT123037004", "SNOMEDCT41216001", "urn:snomed-org/sct")),
                _or(
                    _c(
                        "C25392",
                        "C200140",
                        "http://bioontology.org/projects/ontologies/birnlex",
                    )
                ),
            ],
        }
    ),
    "id": "66b8bbf4-ded2-4f94-87ab-3a3ca2f4edc0__search__66b8bbf4-ded2-4f94-87ab-3a3ca2f4edc0",
}
EMPTY_ENVELOPE = {
    "ast": {"children": [], "operand": "OR"},
    "id": "ef8bae78-522c-498c-b7db-3f96f279a1a0__search__ef8bae78-522c-498c-b7db-3f96f279a1a0",
}
# Focus's eucaim_api form, as the URL it builds (the manufacturer percent-encoded).
FOCUS_GET = "/mediator?gender=male&diagnosis=SNOMEDCT399068003&modality=MR&bodyPart=prostate"
FOCUS_GET_GE = "/mediator?gender=unknown&manufacturer=General%20Electric"


def _focus_collection(c: dict[str, Any]) -> None:
    """Focus's EUCAIM response model, field by field (extra fields are ignored there)."""
    for name in ("id", "name", "description"):
        assert isinstance(c[name], str), name
    for name in ("subjects_count", "studies_count"):
        assert isinstance(c[name], int) and not isinstance(c[name], bool), (name, c[name])
    assert isinstance(c["age_range"], dict), c["age_range"]
    assert set(c["age_range"]) == {"min", "max"}
    assert all(isinstance(v, int) for v in c["age_range"].values())
    for name in ("gender", "modalities", "body_parts"):
        assert isinstance(c[name], list) and all(isinstance(v, str) for v in c[name])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> NodeStore:
    """60 men with prostate cancer and a Siemens prostate MR; 3 patients of unknown sex
    with a GE CT (a dataset too small to release)."""
    store = NodeStore(tmp_path_factory.mktemp("focus") / "node.duckdb")
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO dataset (id, name, description) VALUES ('prostate-mri', "
            "'Prostate MRI', 'mpMRI'), ('small-ct', 'Small CT', 'three patients')"
        )
        cur.execute(
            "INSERT INTO patient (id, dataset_id, sex) "
            "SELECT 'p' || i, 'prostate-mri', 'male' FROM range(60) t(i) UNION ALL "
            "SELECT 'u' || i, 'small-ct', 'unknown' FROM range(3) t(i)"
        )
        cur.execute(
            "INSERT INTO disease (id, patient_id, site_snomed, age_at_diagnosis) "
            "SELECT 'd' || i, 'p' || i, '399068003', 50 + i % 20 FROM range(60) t(i)"
        )
        cur.execute(
            "INSERT INTO imaging_series (uid, study_uid, patient_id, modality, body_part, "
            "manufacturer) SELECT 'se' || i, 'st' || i, 'p' || i, 'MR', 'PROSTATE', 'SIEMENS' "
            "FROM range(60) t(i) UNION ALL SELECT 'ue' || i, 'ut' || i, 'u' || i, 'CT', "
            "'CHEST', 'GE MEDICAL SYSTEMS' FROM range(3) t(i)"
        )
    return store


def _client(store: NodeStore, tmp_path: Path, *, strict: bool, rate: int = 30) -> TestClient:
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    policy = NodePolicy.model_validate(
        {"mediator": {"rate_limit_per_minute": rate, "daily_budget": 50.0}}
    )
    ledger = PrivacyLedger(engine)

    def context() -> MediatorContext:
        return MediatorContext(
            store=store,
            policy=policy.mediator_disclosure(),
            state_engine=engine,
            node_id="node-a",
            api_keys=KEYS,
            strict=strict,
            ledger=ledger,
        )

    app = FastAPI()
    app.include_router(make_mediator_router(context))
    return TestClient(app)


SECRET = {"Authorization": f"Secret {KEYS['eucaim']}"}


def test_strict_mode_answers_in_focus_types(store: NodeStore, tmp_path: Path) -> None:
    client = _client(store, tmp_path, strict=True)
    r = client.post("/mediator", json=EMPTY_ENVELOPE, headers=SECRET)
    assert r.status_code == 200, r.text
    by_id = {c["id"]: c for c in r.json()["collections"]}
    for c in by_id.values():
        _focus_collection(c)
    small = by_id["small-ct"]  # withheld: 0 with the flag kept beside it
    assert small["subjects_count"] == 0 and small["subjects_count_below"] == 10
    assert small["age_range"] == {"min": 0, "max": 0} and small["age_range_withheld"] is True
    big = by_id["prostate-mri"]
    assert big["subjects_count"] >= 50 and big["subjects_count_below"] is None
    r = client.post("/mediator", json=FOCUS_ENVELOPE, headers=SECRET)
    assert r.status_code == 200, r.text
    _focus_collection(r.json()["collections"][0])
    g = client.get(FOCUS_GET, headers=SECRET)
    assert g.status_code == 200, g.text
    for c in g.json()["collections"]:
        _focus_collection(c)


def test_default_mode_keeps_null_for_withheld_counts(store: NodeStore, tmp_path: Path) -> None:
    client = _client(store, tmp_path, strict=False)
    r = client.post("/mediator", json=EMPTY_ENVELOPE, headers=SECRET)
    small = next(c for c in r.json()["collections"] if c["id"] == "small-ct")
    assert small["subjects_count"] is None and small["age_range"] is None


@pytest.mark.parametrize("scheme", ["Secret", "ApiKey", "Bearer", "secret"])
def test_key_schemes(store: NodeStore, tmp_path: Path, scheme: str) -> None:
    client = _client(store, tmp_path, strict=True)
    headers = {"Authorization": f"{scheme} {KEYS['other']}"}
    assert client.post("/mediator", json=FOCUS_ENVELOPE, headers=headers).status_code == 200
    wrong = {"Authorization": f"{scheme} not-a-key"}
    assert client.post("/mediator", json=FOCUS_ENVELOPE, headers=wrong).status_code == 401


def test_unknown_sex_and_general_electric_from_the_flat_form(
    store: NodeStore, tmp_path: Path
) -> None:
    """Focus sends gender=unknown: the patients whose sex is not known (stored as unknown,
    the node's null), here the three GE CT patients."""
    client = _client(store, tmp_path, strict=False)
    r = client.get(FOCUS_GET_GE, headers=SECRET)
    assert r.status_code == 200, r.text
    small = next(c for c in r.json()["collections"] if c["id"] == "small-ct")
    assert small["subjects_count"] is None and small["subjects_count_below"] == 10
    with store.reading() as con:
        counts = count_matches(
            con,
            parse_query(
                {"operand": "AND", "children": [_c("SNOMEDCT263495000", "SNOMEDCT261665006")]}
            ),
        )
    assert {c.dataset_id: c.subjects for c in counts} == {"prostate-mri": 0, "small-ct": 3}


def test_lower_and_greater_than_take_a_range(store: NodeStore) -> None:
    """Lens's range widget: LOWER_THAN {"min", "max"} compares with max, GREATER_THAN with
    min."""
    age = "SNOMEDCT423493009"
    lower = parse_query(_or(_c(age, {"min": 0, "max": 55}, type_="LOWER_THAN")))
    greater = parse_query(_or(_c(age, {"min": 65, "max": 120}, type_="GREATER_THAN")))
    with store.reading() as con:
        assert count_matches(con, lower)[0].subjects == 15  # 50..54, three of each
        assert count_matches(con, greater)[0].subjects == 12  # 66..69
    with pytest.raises(ValueError, match="needs its 'min'"):
        parse_query(_or(_c(age, {"max": 40}, type_="GREATER_THAN")))


def test_each_network_key_has_its_own_budget(store: NodeStore, tmp_path: Path) -> None:
    """The 3rd search of one network within a minute is refused (limit 2 in policy.toml's
    [mediator]); the other network is still answered."""
    client = _client(store, tmp_path, strict=True, rate=2)
    eucaim = {"Authorization": f"ApiKey {KEYS['eucaim']}"}
    other = {"Authorization": f"ApiKey {KEYS['other']}"}
    codes = [
        client.post("/mediator", json=FOCUS_ENVELOPE, headers=eucaim).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    assert client.post("/mediator", json=FOCUS_ENVELOPE, headers=other).status_code == 200
