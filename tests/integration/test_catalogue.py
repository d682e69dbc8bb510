"""The catalogue on real hub applications (in process, real database): node answers kept,
holders' edits, full-text search with facets, the FAIR Data Point tree with content
negotiation, and a second hub harvesting the first one's FAIR Data Point.

Node answers are stored as the task channel would deliver them; the path through real node
processes is in test_catalogue_federation.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rdflib.namespace import RDF

from oncofed.hub.admin import add_node, add_user, create_api_token, init_hub
from oncofed.hub.app import create_app
from oncofed.hub.catalogue import dcat, service
from oncofed.hub.catalogue.harvest import harvest
from oncofed.hub.context import HubContext
from oncofed.hub.db import make_engine
from oncofed.security.keys import SigningKey
from oncofed.settings import save_settings

USERS = {"alice": ["researcher"], "holder1": ["data_holder:node-1"]}


def coded(*pairs: tuple[str | None, str]) -> list[dict[str, Any]]:
    return [{"code": c, "label": label} for c, label in pairs]


LUNG = {
    "id": "lung-ct",
    "name": "Lung CT cohort",
    "description": "Thoracic CT with outcomes.",
    "access_level": "registered",
    "figures": {
        "individuals": 300,
        "studies": 420,
        "age_range": {"min": 40, "max": 85},
        "sexes": coded(("SNOMEDCT248152002", "female"), ("SNOMEDCT248153007", "male")),
        "conditions": coded(("SNOMEDCT363358000", "lung cancer")),
        "modalities": coded(("RID10321", "CT"), ("RID10337", "PET")),
        "manufacturers": coded(("C200140", "Siemens")),
        "body_parts": coded(("SNOMEDCT39607008", "lung")),
    },
}
PROSTATE = {
    "id": "prostate-mri",
    "name": "Prostate mpMRI",
    "description": "",
    "access_level": "public",
    "figures": {
        "individuals": 150,
        "studies": 150,
        "age_range": {"min": 50, "max": 80},
        "sexes": coded(("SNOMEDCT248153007", "male")),
        "conditions": coded(("SNOMEDCT399068003", "prostate cancer")),
        "modalities": coded(("RID10312", "MR")),
        "manufacturers": coded(("birnlex_3065", "Philips")),
        "body_parts": coded(("SNOMEDCT41216001", "prostate")),
    },
}


def answer(*datasets: dict[str, Any], tier: int = 2) -> dict[str, Any]:
    return {
        "provider_id": "p",
        "tier": tier,
        "min_count": 10,
        "datasets": [copy.deepcopy(d) for d in datasets],
    }


@dataclass
class Hub:
    client: TestClient
    tokens: dict[str, str]
    nodes: dict[str, str]

    @property
    def ctx(self) -> HubContext:
        ctx: HubContext = self.client.app.state.hub  # type: ignore[attr-defined]
        return ctx

    def call(self, method: str, path: str, user: str | None = None, **kw: Any) -> Any:
        headers = {"authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.request(method, path, headers={**headers, **kw.pop("headers", {})}, **kw)


def start(base: Path, port: int, nodes: tuple[str, ...]) -> Iterator[Hub]:
    result = init_hub(base, f"hub {port}", "127.0.0.1", port)
    save_settings(result.settings)
    engine = make_engine(result.settings.db_url)
    tokens = {"admin": result.admin_token}
    for user, roles in USERS.items():
        add_user(engine, user, roles)
        tokens[user] = create_api_token(engine, user, name="test", days=1)
    node_tokens = {name: add_node(engine, name, hours=1) for name in nodes}
    engine.dispose()
    with TestClient(create_app(result.settings)) as client:
        hub = Hub(client, tokens, {})
        for name, token in node_tokens.items():
            r = client.post(
                "/api/nodes/enrol",
                json={"token": token, "public_key": SigningKey.generate().public.b64},
            )
            assert r.status_code == 200, r.text
            hub.nodes[name] = r.json()["node_id"]
        yield hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    for h in start(tmp_path / "a", 8791, ("node-1", "node-2")):
        service.store_description(h.ctx, h.nodes["node-1"], answer(LUNG))
        service.store_description(h.ctx, h.nodes["node-2"], answer(PROSTATE, tier=1))
        yield h


def test_records_have_defaults_for_every_field_and_export_is_complete(hub: Hub) -> None:
    r = hub.call("GET", "/api/catalogue/datasets/node-1:lung-ct")
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["title"] == "Lung CT cohort" and rec["access_rights"] == "RESTRICTED"
    assert rec["access_url"] == (
        "http://127.0.0.1:8791/negotiation/new?dataset=lung-ct&provider=node-1"
    )
    assert rec["keywords"] and rec["provenance"] and rec["collection_method"]
    assert "about 300 individuals" in rec["summary"] and rec["editable"] is False
    prostate = hub.call("GET", "/api/catalogue/datasets/node-2:prostate-mri").json()
    assert prostate["description"] == prostate["summary"]  # none given: the figures speak
    assert prostate["access_rights"] == "PUBLIC" and prostate["tier"] == 1
    for fmt in ("ttl", "jsonld"):
        text = hub.call("GET", f"/api/catalogue/export?format={fmt}").text
        g = dcat.parse(text, "turtle" if fmt == "ttl" else "json-ld")
        gaps = dcat.mandatory_gaps(g)
        assert len(gaps) == 2 and all(v == [] for v in gaps.values()), gaps


def test_holders_edit_their_own_datasets_and_refresh_keeps_edits(hub: Hub) -> None:
    path = "/api/catalogue/datasets/node-1:lung-ct"
    patch = {
        "title": "Lung CT (Valencia)",
        "keywords": ["NSCLC", "CT", "NSCLC"],
        "collection_method": "retrospective, routine care",
        "access_rights": "NON_PUBLIC",
        "hdab": {"name": "HDAB Spain", "url": "https://hdab.example.es"},
        "country": "esp",
        "provenance": "Hospital A PACS 2015-2022",
        "version": "2.1",
    }
    assert hub.call("PATCH", path, None, json=patch).status_code == 401
    assert hub.call("PATCH", path, "alice", json=patch).status_code == 403
    other = hub.call(
        "PATCH",
        "/api/catalogue/datasets/node-2:prostate-mri",
        "holder1",
        json={"title": "mine now"},
    )
    assert other.status_code == 403 and "data_holder:node-2" in other.text
    bad = hub.call("PATCH", path, "holder1", json={"access_rights": "OPEN"})
    assert bad.status_code == 422
    assert hub.call("PATCH", path, "holder1", json={"colour": "red"}).status_code == 422
    # A country is an ISO 3166-1 country: "GER" is none (Germany is DEU), and is refused
    # rather than kept; a name or an alpha-2 code is read as the country (issue 15).
    ger = hub.call("PATCH", path, "holder1", json={"country": "GER"})
    assert ger.status_code == 422 and "DEU for Germany" in ger.text
    named = hub.call("PATCH", path, "holder1", json={"country": "Germany"})
    assert named.status_code == 200 and named.json()["country"] == "DEU"
    r = hub.call("PATCH", path, "holder1", json=patch)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["title"] == "Lung CT (Valencia)" and rec["keywords"] == ["NSCLC", "CT"]
    assert rec["country"] == "ESP" and rec["hdab"]["name"] == "HDAB Spain"
    assert rec["editable"] is True
    # The node answers again with new figures: figures change, edits stay.
    newer = copy.deepcopy(LUNG)
    newer["figures"]["individuals"] = 320
    counts = service.store_description(hub.ctx, hub.nodes["node-1"], answer(newer))
    assert counts["updated"] == 1
    rec = hub.call("GET", path, "holder1").json()
    assert rec["figures"]["individuals"] == 320 and rec["title"] == "Lung CT (Valencia)"
    # null returns a field to its default; an admin may edit any local dataset.
    rec = hub.call("PATCH", path, "admin", json={"title": None}).json()
    assert rec["title"] == "Lung CT cohort" and rec["version"] == "2.1"


def test_dataset_a_node_stops_reporting_is_withdrawn(hub: Hub) -> None:
    counts = service.store_description(hub.ctx, hub.nodes["node-1"], answer())
    assert counts["withdrawn"] == 1
    assert hub.call("GET", "/api/catalogue/datasets/node-1:lung-ct").status_code == 404
    assert hub.call("GET", "/api/catalogue/datasets").json()["total"] == 1
    service.store_description(hub.ctx, hub.nodes["node-1"], answer(LUNG))
    assert hub.call("GET", "/api/catalogue/datasets").json()["total"] == 2


def test_full_text_search_with_facets(hub: Hub) -> None:
    everything = hub.call("GET", "/api/catalogue/datasets").json()
    assert everything["total"] == 2
    facets = everything["facets"]
    assert set(facets) == {
        "condition",
        "modality",
        "body_part",
        "country",
        "access_rights",
        "tier",
        "provider",
    }
    assert {v["label"]: v["count"] for v in facets["modality"]["values"]} == {
        "CT": 1,
        "PET": 1,
        "MR": 1,
    }
    lung = hub.call("GET", "/api/catalogue/datasets", params={"q": "lung"}).json()
    assert [r["key"] for r in lung["results"]] == ["node-1:lung-ct"]
    assert hub.call("GET", "/api/catalogue/datasets", params={"q": "thorac"}).json()["total"] == 1
    assert (
        hub.call("GET", "/api/catalogue/datasets", params={"q": "lung prostate"}).json()["total"]
        == 0
    )
    mr = hub.call("GET", "/api/catalogue/datasets", params={"modality": "RID10312"}).json()
    assert [r["key"] for r in mr["results"]] == ["node-2:prostate-mri"]
    # Other values of the chosen facet stay visible with their counts.
    chosen = {v["value"]: v["selected"] for v in mr["facets"]["modality"]["values"]}
    assert chosen == {"RID10312": True, "RID10321": False, "RID10337": False}
    both = hub.call(
        "GET", "/api/catalogue/datasets", params=[("modality", "MR"), ("modality", "CT")]
    ).json()
    assert both["total"] == 2
    assert (
        hub.call("GET", "/api/catalogue/datasets", params={"modality": "MR", "tier": "2"}).json()[
            "total"
        ]
        == 0
    )
    assert (
        hub.call(
            "GET",
            "/api/catalogue/datasets",
            params={"access_rights": "PUBLIC", "condition": "prostate cancer"},
        ).json()["total"]
        == 1
    )
    hub.call("PATCH", "/api/catalogue/datasets/node-1:lung-ct", "admin", json={"country": "ITA"})
    italy = hub.call("GET", "/api/catalogue/datasets", params={"country": "ITA"}).json()
    assert [r["key"] for r in italy["results"]] == ["node-1:lung-ct"]
    editable = hub.call("GET", "/api/catalogue/datasets", "holder1").json()["results"]
    assert {r["key"]: r["editable"] for r in editable} == {
        "node-1:lung-ct": True,
        "node-2:prostate-mri": False,
    }


def test_fair_data_point_tree_and_content_negotiation(hub: Hub) -> None:
    root = hub.call("GET", "/fdp")
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/turtle")
    g = dcat.parse(root.text, "turtle")
    (catalog,) = g.objects(None, dcat.FDPO.metadataCatalog)
    assert str(catalog) == "http://127.0.0.1:8791/fdp/catalog"
    ld = hub.call("GET", "/fdp/catalog", headers={"accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert isinstance(json.loads(ld.text)["@context"], dict)
    g = dcat.parse(ld.text, "json-ld")
    datasets = sorted(str(d) for d in g.objects(catalog, dcat.DCAT.dataset))
    assert datasets == [
        "http://127.0.0.1:8791/fdp/dataset/node-1:lung-ct",
        "http://127.0.0.1:8791/fdp/dataset/node-2:prostate-mri",
    ]
    listing = hub.call("GET", "/fdp/catalog", headers={"accept": "application/json"}).json()
    assert [d["key"] for d in listing["datasets"]] == ["node-1:lung-ct", "node-2:prostate-mri"]
    page = hub.call("GET", "/fdp/dataset/node-1:lung-ct", headers={"accept": "text/turtle"})
    g = dcat.parse(page.text, "turtle")
    assert list(g.subjects(RDF.type, dcat.DCAT.Dataset))
    assert all(v == [] for v in dcat.mandatory_gaps(g).values())
    dist = hub.call("GET", "/fdp/distribution/node-1:lung-ct?format=ttl")
    g = dcat.parse(dist.text, "turtle")
    (url,) = g.objects(None, dcat.DCAT.accessURL)
    assert str(url).endswith("/negotiation/new?dataset=lung-ct&provider=node-1")
    assert hub.call("GET", "/fdp", headers={"accept": "text/html"}).status_code == 406
    assert hub.call("GET", "/fdp/dataset/node-9:none").status_code == 404


def public(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drop = {"key", "origin", "source", "editable", "score", "issued", "modified"}
    out = []
    for r in records:
        r = {k: v for k, v in r.items() if k not in drop}
        r["keywords"] = sorted(r["keywords"])
        out.append(r)
    return sorted(out, key=lambda r: r["identifier"])


def test_second_hub_harvesting_our_fair_data_point_reproduces_the_catalogue(
    hub: Hub, tmp_path: Path
) -> None:
    hub.call(
        "PATCH",
        "/api/catalogue/datasets/node-1:lung-ct",
        "holder1",
        json={
            "keywords": ["NSCLC"],
            "country": "ESP",
            "collection_method": "prospective",
            "hdab": {"name": "HDAB", "email": "hdab@example.es"},
        },
    )
    ours = hub.call("GET", "/api/catalogue/datasets").json()["results"]
    for other in start(tmp_path / "b", 8792, ()):
        # Walk the tree from the root; the first hub answers through its test client.
        result = harvest("http://127.0.0.1:8791/fdp", client=hub.client)
        assert result.pages == 1 + 1 + 2 + 0  # root, catalogue, each dataset page
        assert not result.problems
        (origin,) = result.catalogues
        counts = service.replace_harvested(other.ctx, origin, result.catalogues[origin], "admin")
        assert counts == {"added": 2, "updated": 0, "removed": 0}
        theirs = other.call("GET", "/api/catalogue/datasets").json()["results"]
        assert public(theirs) == public(ours)
        assert all(r["origin"] == "http://127.0.0.1:8791/fdp/catalog" for r in theirs)
        assert {r["source"] for r in theirs} == {
            "http://127.0.0.1:8791/fdp/dataset/node-1:lung-ct",
            "http://127.0.0.1:8791/fdp/dataset/node-2:prostate-mri",
        }
        # Harvested records are re-published (valid, complete) and not editable here.
        g = dcat.parse(other.call("GET", "/api/catalogue/export").text, "turtle")
        assert len(dcat.mandatory_gaps(g)) == 2
        assert all(v == [] for v in dcat.mandatory_gaps(g).values())
        key = theirs[0]["key"]
        assert (
            other.call(
                "PATCH", f"/api/catalogue/datasets/{key}", "admin", json={"title": "x"}
            ).status_code
            == 409
        )
        # A second harvest (from the one-document export this time) updates and removes.
        service.store_description(hub.ctx, hub.nodes["node-2"], answer())
        again = harvest("http://127.0.0.1:8791/api/catalogue/export", client=hub.client)
        assert again.pages == 1
        counts = service.replace_harvested(other.ctx, origin, again.catalogues[origin], "admin")
        assert counts == {"added": 0, "updated": 1, "removed": 1}
