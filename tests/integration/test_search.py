"""Federated cohort search with real hub and node processes (issue 5)."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from oncofed.client.hub import HubError
from oncofed.node.store import NodeStore
from oncofed.settings import load_node_settings, save_settings
from tests.conftest import FederationFactory

pytestmark = pytest.mark.integration

LUNG_CT = {
    "operand": "OR",
    "children": [
        {
            "operand": "AND",
            "children": [
                {
                    "operand": "OR",
                    "children": [
                        {
                            "key": "SNOMEDCT439401001",
                            "type": "EQUALS",
                            "value": "SNOMEDCT363358000",
                            "system": "urn:ignored",
                        }
                    ],
                },
                {
                    "operand": "OR",
                    "children": [{"key": "RID10311", "type": "EQUALS", "value": "RID10321"}],
                },
            ],
        }
    ],
}


def true_count(fed, name: str, sql: str) -> int:  # type: ignore[no-untyped-def]
    settings = load_node_settings(fed.nodes[name].directory)
    fed.nodes[name].stop()
    store = NodeStore(settings.resolve(settings.store_file))
    try:
        with store.reading() as con:
            return int(con.execute(sql).fetchone()[0])
    finally:
        store.close()
        fed.start_node(name)


@pytest.fixture
def federation(make_federation: FederationFactory):  # type: ignore[no-untyped-def]
    return make_federation(3, patients=300)


def test_search_counts_per_provider_and_in_total(federation) -> None:  # type: ignore[no-untyped-def]
    with federation.admin() as client:
        everyone = client.search({"operand": "AND", "children": []})
        assert everyone["complete"] and everyone["nodes"]["answered"] == 3
        for provider in everyone["providers"]:
            (collection,) = provider["collections"]
            assert collection["provider"] == provider["provider"]
            assert abs(collection["subjects_count"] - 300) <= 10  # noise + rounding
            assert collection["subjects_count"] % 5 == 0
        assert everyone["total"]["subjects"]["exact"]

        lung_ct = client.search(LUNG_CT)
        expected = true_count(
            federation,
            "node-1",
            "SELECT count(DISTINCT d.patient_id) FROM disease d JOIN imaging_series s "
            "ON s.patient_id = d.patient_id WHERE d.site_snomed = '363358000' "
            "AND s.modality = 'CT'",
        )
        node1 = next(p for p in lung_ct["providers"] if p["provider"] == "node-1")
        got = node1["collections"][0]["subjects_count"]
        if expected >= 15:
            assert got is not None and abs(got - expected) <= 10
        # Asking again, or in another order, gives exactly the same answer.
        again = client.search(
            {"operand": "AND", "children": list(reversed(LUNG_CT["children"][0]["children"]))}
        )
        assert [p["collections"] for p in again["providers"]] == [
            p["collections"] for p in lung_ct["providers"]
        ]


def test_invalid_query_names_key_and_value(federation) -> None:  # type: ignore[no-untyped-def]
    with federation.admin() as client:
        with pytest.raises(HubError, match="RID10311") as info:
            client.search(
                {
                    "operand": "AND",
                    "children": [{"key": "RID10311", "type": "EQUALS", "value": "RID99999"}],
                }
            )
        assert "RID99999" in info.value.message
        with pytest.raises(HubError, match="no.such.key"):
            client.search(
                {
                    "operand": "AND",
                    "children": [{"key": "no.such.key", "type": "EQUALS", "value": "x"}],
                }
            )


def test_node_down_or_slow_gives_partial_result_by_deadline(federation) -> None:  # type: ignore[no-untyped-def]
    federation.nodes["node-2"].stop()
    slow = federation.nodes["node-3"]
    assert slow.proc is not None
    os.kill(slow.proc.pid, signal.SIGSTOP)
    try:
        with federation.admin() as client:
            response = client.http.post(
                "/api/search",
                json={"ast": {"operand": "AND", "children": []}, "timeout_seconds": 3},
                timeout=30,
            )
    finally:
        os.kill(slow.proc.pid, signal.SIGCONT)
    # By the deadline every node has a final status (200); the answer is marked partial.
    assert response.status_code == 200
    result = response.json()
    assert result["partial"] is True
    assert result["nodes"]["statuses"] == {
        "node-1": "succeeded",
        "node-2": "timed_out",
        "node-3": "timed_out",
    }
    assert result["total"]["subjects"]["min"] > 0


def test_budget_exhaustion_is_a_clear_refusal(make_federation: FederationFactory) -> None:
    fed = make_federation(1, patients=60)
    node = fed.nodes["node-1"]
    node.stop()
    (node.directory / "policy.toml").write_text(
        'allowed_tasks = ["node.info", "search.count"]\n[disclosure]\ndaily_budget = 2.0\n'
    )
    fed.start_node("node-1")
    with fed.admin() as client:
        for age in (40, 50):
            result = client.search(
                {
                    "operand": "AND",
                    "children": [
                        {
                            "key": "SNOMEDCT423493009",
                            "type": "BETWEEN",
                            "value": {"min": age, "max": age + 30},
                        }
                    ],
                }
            )
            assert result["nodes"]["statuses"] == {"node-1": "succeeded"}
        refused = client.search(
            {
                "operand": "AND",
                "children": [
                    {"key": "SNOMEDCT423493009", "type": "BETWEEN", "value": {"min": 60, "max": 90}}
                ],
            }
        )
        assert refused["nodes"]["statuses"] == {"node-1": "refused"}
        assert "budget" in refused["providers"][0]["error"]
        # Repeating a query already answered today costs nothing and still works.
        repeat = client.search(
            {
                "operand": "AND",
                "children": [
                    {"key": "SNOMEDCT423493009", "type": "BETWEEN", "value": {"min": 40, "max": 70}}
                ],
            }
        )
        assert repeat["nodes"]["statuses"] == {"node-1": "succeeded"}


def test_eucaim_mediator_endpoint_on_the_node(make_federation: FederationFactory) -> None:
    fed = make_federation(1, patients=60)
    node = fed.nodes["node-1"]
    node.stop()
    settings = load_node_settings(node.directory)
    settings.mediator_api_key = "focus-secret-key-0123456789"
    save_settings(settings)
    fed.start_node("node-1")
    envelope = {
        "ast": LUNG_CT,
        "id": "0d3c4e7e-1111-4222-8333-944455556666__search__1f2e3d4c-5555-4666-8777-988899990000",
    }
    ok = httpx.post(
        f"{node.url}/mediator",
        json=envelope,
        headers={"Authorization": "ApiKey focus-secret-key-0123456789"},
    )
    assert ok.status_code == 200
    (collection,) = ok.json()["collections"]
    assert set(collection) >= {
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
    wrong = httpx.post(
        f"{node.url}/mediator", json=envelope, headers={"Authorization": "ApiKey wrong"}
    )
    assert wrong.status_code == 401
    assert httpx.post(f"{node.url}/mediator", json=envelope).status_code == 401
