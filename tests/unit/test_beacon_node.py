"""The node's Beacon v2 API: every endpoint schema-valid, variant and filter queries,
granularity capped by access level and grants, and the 1000 Genomes round trip."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from oncofed.node.beacon import create_beacon_router
from oncofed.node.beacon.schemas import BeaconSchemas, default_root
from oncofed.node.context import NodeContext
from oncofed.node.ingest.clinical_csv import ingest_clinical
from oncofed.node.ingest.common import NodeTarget
from oncofed.node.ingest.vcf import SampleMap, ingest_vcf, normalise_chrom
from oncofed.settings import load_node_settings
from tests.clinical_fixtures import bff_assets, make_node, make_synth

ROOT = "/beacon/v2"
ENTRIES = ("individuals", "biosamples", "g_variants", "analyses", "runs", "cohorts", "datasets")


@pytest.fixture(scope="module")
def schemas() -> BeaconSchemas:
    root = default_root()
    if root is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Beacon v2 schemas not found (shared/standards/beacon-v2)")
        pytest.skip("Beacon v2 schemas not found; set ONCOFED_BEACON_SCHEMAS")
    return BeaconSchemas(root)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, NodeTarget]]:
    base = tmp_path_factory.mktemp("beacon")
    synth = make_synth(base / "synth", patients=40)
    node_dir = make_node(base / "node")
    # Beacon answers are charged and rate-limited like searches; these tests ask many.
    (node_dir / "policy.toml").write_text(
        "[disclosure]\ndaily_budget = 10000.0\nrate_limit_per_minute = 100000\n"
    )
    target = NodeTarget.open(node_dir)
    ingest_clinical([synth / "clinical"], synth / "clinical" / "mapping.yaml", target,
                    access_level="public")  # fmt: skip
    ingest_vcf([synth / "variants"], target, access_level="controlled")
    vcf = bff_assets() / "test_1000G.norm.ann.dbnsfp.clinvar.cosmic.vcf.gz"
    ingest_vcf([vcf], target, "g1k", SampleMap.from_options(r"^(?P<patient>.+)$"), "GRCh37",
               access_level="registered")  # fmt: skip
    target.close()
    ctx = NodeContext.open(load_node_settings(node_dir))

    def grants(request: Request) -> set[str]:  # the test's stand-in for verified visas
        return set(filter(None, request.headers.get("x-test-grants", "").split(",")))

    app = FastAPI()
    app.state.node = ctx
    app.include_router(create_beacon_router(grants=grants))
    with TestClient(app) as client:
        yield client, target
    ctx.close()


def _check(schemas: BeaconSchemas, path: str, doc: dict[str, Any]) -> None:
    # The envelope always; records up to 10 per response (a 1000 Genomes variant carries
    # up to 2,500 calls and takes a second to validate).
    schemas.check_response(path.split("?")[0], doc, max_records=10)


def _get(client: TestClient, schemas: BeaconSchemas, path: str, grants: str = "") -> Any:
    r = client.get(ROOT + path, headers={"x-test-grants": grants})
    _check(schemas, path, r.json())
    return r


def _post(client: TestClient, schemas: BeaconSchemas, path: str, query: dict[str, Any],
          grants: str = "") -> Any:  # fmt: skip
    body = {"meta": {"apiVersion": "v2.0"}, "query": query}
    r = client.post(ROOT + path, json=body, headers={"x-test-grants": grants})
    _check(schemas, path, r.json())
    return r


def test_every_endpoint_is_schema_valid(node: Any, schemas: BeaconSchemas) -> None:
    client, _ = node
    for path in ("", "/", "/info", "/service-info", "/configuration", "/map", "/entry_types",
                 "/filtering_terms"):  # fmt: skip
        assert _get(client, schemas, path).status_code == 200, path
        assert client.post(ROOT + path, json={}).status_code == 200
    for entry in ENTRIES:
        for granularity in ("boolean", "count", "record"):
            for grants in ("", "g1k,p1-genomic,p1-clinical"):
                r = _get(client, schemas, f"/{entry}?requestedGranularity={granularity}&limit=3",
                         grants)  # fmt: skip
                assert r.status_code == 200, (entry, r.json())
                q = {"requestedGranularity": granularity, "pagination": {"skip": 1, "limit": 2}}
                assert _post(client, schemas, f"/{entry}", q, grants).status_code == 200
    # single entries and cross-links
    r = _get(client, schemas, "/individuals?requestedGranularity=record&limit=1", "p1-clinical")
    assert "response" in r.json(), r.json()
    pid = r.json()["response"]["resultSets"][0]["results"][0]["id"]
    for other in ("g_variants", "biosamples", "runs", "analyses"):
        r = _get(client, schemas, f"/individuals/{pid}/{other}?requestedGranularity=record",
                 "p1-clinical,p1-genomic")  # fmt: skip
        assert r.status_code == 200
    r = _get(client, schemas, f"/individuals/{pid}?requestedGranularity=record", "p1-clinical")
    assert r.json()["response"]["resultSets"][0]["results"][0]["id"] == pid
    assert _get(client, schemas, "/datasets/g1k").json()["response"]["collections"][0]["id"] == (
        "g1k"
    )
    # errors are beaconErrorResponses
    bad_requests = (
        "/individuals?filters=XYZ:123",
        "/g_variants?start=5",
        "/individuals?requestedGranularity=all",
        "/g_variants?referenceName=1",
    )
    for bad in bad_requests:
        r = _get(client, schemas, bad)
        assert r.status_code == 400 and r.json()["error"]["errorMessage"]


def test_1000_genomes_round_trip_through_g_variants(node: Any, schemas: BeaconSchemas) -> None:
    client, target = node
    with gzip.open(bff_assets() / "genomicVariationsVcf.json.gz") as fh:
        expected = {v["variantInternalId"]: v for v in json.loads(fh.read())}
    got: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    skip = 0
    while True:
        q = {"requestedGranularity": "record", "pagination": {"skip": skip, "limit": 400},
             "requestParameters": {"datasets": ["g1k"]}}  # fmt: skip
        doc = _post(client, schemas, "/g_variants", q, "g1k").json()
        results = doc["response"]["resultSets"][0]["results"]
        for v in results:
            loc = v["variation"]["location"]["interval"]
            key = (v["info"]["referenceName"], loc["start"]["value"],
                   v["variation"]["referenceBases"], v["variation"]["alternateBases"])  # fmt: skip
            got[key] = v
        if len(results) < 400:
            break
        skip += 400
    assert doc["responseSummary"]["numTotalResults"] == len(expected) == len(got)
    for ref in expected.values():
        pos = ref["_position"]
        key = (normalise_chrom(pos["refseqId"]), pos["startInteger"],
               ref["variation"]["referenceBases"], ref["variation"]["alternateBases"])  # fmt: skip
        v = got[key]
        assert v["variation"]["variantType"] == ref["variation"]["variantType"]
        interval = v["variation"]["location"]["interval"]
        # VRS intervals span the reference allele; the BFF tools end every variant at its
        # VCF POS, so the two agree except for deletions (ref longer than one base).
        ref_len = len(ref["variation"]["referenceBases"])
        assert interval["end"]["value"] == pos["endInteger"] + ref_len - 1
        mine = {(c["biosampleId"], c["zygosity"]["id"], c["zygosity"]["label"])
                for c in v["caseLevelData"]}  # fmt: skip
        theirs = {(target.pseudonyms.of("sample", c["biosampleId"]), c["zygosity"]["id"],
                   c["zygosity"]["label"]) for c in ref.get("caseLevelData", [])}  # fmt: skip
        assert mine == theirs, key
        genes = set(v.get("molecularAttributes", {}).get("geneIds", []))
        assert genes == {g for g in ref["molecularAttributes"]["geneIds"] if g}, key


def test_variant_queries(node: Any, schemas: BeaconSchemas) -> None:
    client, _ = node
    count = "requestedGranularity=count"
    # sequence query (0-based start), range, bracket, gene, bases with wildcard
    r = _get(client, schemas, f"/g_variants?referenceName=chr1&start=10176&alternateBases=AC&"
             f"referenceBases=A&{count}", "g1k").json()  # fmt: skip
    assert r["responseSummary"]["exists"] is True
    r = _get(client, schemas, f"/g_variants?referenceName=1&start=10176&alternateBases=G&{count}",
             "g1k").json()  # fmt: skip
    assert r["responseSummary"]["exists"] is False
    r = _post(client, schemas, "/g_variants", {
        "requestParameters": {"referenceName": "1", "start": [10000], "end": [20000],
                              "assemblyId": "GRCh37"},
        "requestedGranularity": "record"}, "g1k").json()  # fmt: skip
    rs = r["response"]["resultSets"][0]
    assert all(10000 < v["variation"]["location"]["interval"]["start"]["value"] + 1 <= 20000
               for v in rs["results"])  # fmt: skip
    assert rs["resultsCount"] > 10 and len(rs["results"]) == 10  # default limit
    r = _post(client, schemas, "/g_variants", {
        "requestParameters": {"geneId": "KRAS"}, "requestedGranularity": "record"},
        "p1-genomic").json()  # fmt: skip
    results = r["response"]["resultSets"][0]["results"]
    assert results and all("KRAS" in v["molecularAttributes"]["geneIds"] for v in results)
    r = _get(client, schemas, f"/g_variants?referenceName=1&start=10176&alternateBases=NC&{count}",
             "g1k").json()  # fmt: skip
    assert r["responseSummary"]["exists"] is True


def test_granularity_caps_and_minimum_counts(node: Any, schemas: BeaconSchemas) -> None:
    client, _ = node
    # registered dataset, no grant: a record request gets a count, no records
    r = _get(client, schemas, "/g_variants?datasets=g1k&requestedGranularity=record").json()
    assert r["meta"]["returnedGranularity"] == "count" and "response" not in r
    shown = r["responseSummary"]["numTotalResults"]  # noisy (cached per query), rounded
    assert shown % 5 == 0 and abs(shown - 1044) <= 40
    again = _get(client, schemas, "/g_variants?datasets=g1k&requestedGranularity=count").json()
    assert again["responseSummary"]["numTotalResults"] == shown  # the same answer again
    # controlled dataset: boolean only, whatever is asked
    r = _get(client, schemas, "/g_variants?geneId=KRAS&requestedGranularity=count").json()
    assert r["meta"]["returnedGranularity"] == "boolean"
    assert "numTotalResults" not in r["responseSummary"]
    # a grant opens records of that dataset only
    r = _get(client, schemas, "/g_variants?geneId=KRAS&requestedGranularity=record",
             "p1-genomic").json()  # fmt: skip
    assert r["meta"]["returnedGranularity"] == "record"
    assert {rs["id"] for rs in r["response"]["resultSets"]} == {"p1-genomic"}
    # a count below the node's minimum (10) is never revealed
    r = _get(client, schemas, "/individuals?filters=ICD10:C25&requestedGranularity=count").json()
    if r["responseSummary"]["exists"]:
        assert r["meta"]["returnedGranularity"] == "boolean"


def test_filters(node: Any, schemas: BeaconSchemas) -> None:
    client, _ = node

    def count(query: dict[str, Any]) -> int:
        q = {**query, "requestedGranularity": "record", "pagination": {"limit": 1000}}
        doc = _post(client, schemas, "/individuals", q, "p1-clinical,g1k,p1-genomic").json()
        summary = doc["responseSummary"]
        return int(summary["numTotalResults"]) if summary["exists"] else 0

    female = count({"filters": [{"id": "NCIT:C16576"}]})
    male = count({"filters": [{"id": "NCIT:C20197"}]})
    assert female + male >= 40
    lung_desc = count({"filters": [{"id": "ICD10:C34", "includeDescendantTerms": True}]})
    lung_exact = count({"filters": [{"id": "ICD10:C34", "includeDescendantTerms": False}]})
    assert lung_exact == 0 and lung_desc > 0
    assert count({"filters": [{"id": "SNOMEDCT:363358000"}]}) == lung_desc
    old = count({"filters": [{"id": "age", "operator": ">=", "value": "P70Y"}]})
    young = count({"filters": [{"id": "age", "operator": "<", "value": "P70Y"}]})
    assert old + young == count({"filters": [{"id": "age", "operator": ">", "value": "P0Y"}]})
    both = count({"filters": [{"id": "NCIT:C16576"}, {"id": "ICD10:C50"}]})
    assert 0 < both <= female
    assert count({"filters": [{"id": "treatment", "operator": "=", "value": "surgery"}]}) > 0
    assert count({"filters": [{"id": "ATC:L01"}]}) > 0
    # individuals who carry a KRAS variant
    carriers = count({"requestParameters": {"geneId": "KRAS"}})
    assert 0 < carriers < 40


def test_beacon_counts_charge_the_requesters_budget(tmp_path: Any) -> None:
    """A count released by Beacon costs budget like a search count: without it, Beacon
    would be a way around the node's per-researcher limit on distinct noisy answers."""
    synth = make_synth(tmp_path / "synth", patients=40)
    node_dir = make_node(tmp_path / "node")
    (node_dir / "policy.toml").write_text(
        'allowed_tasks = ["beacon.query"]\n[disclosure]\nepsilon = 1.0\ndaily_budget = 2.0\n'
        "rate_limit_per_minute = 1000\n"
    )
    target = NodeTarget.open(node_dir)
    ingest_clinical([synth / "clinical"], synth / "clinical" / "mapping.yaml", target,
                    access_level="public")  # fmt: skip
    target.close()
    ctx = NodeContext.open(load_node_settings(node_dir))
    app = FastAPI()
    app.state.node = ctx
    app.include_router(create_beacon_router())
    queries = ["NCIT:C16576", "NCIT:C20197", "ICD10:C34"]  # female, male, lung
    try:
        with TestClient(app) as client:

            def count(term: str) -> dict[str, Any]:
                path = f"{ROOT}/individuals?filters={term}&requestedGranularity=count"
                out: dict[str, Any] = client.get(path).json()
                return out

            first, second = count(queries[0]), count(queries[1])
            assert first["meta"]["returnedGranularity"] == "count"
            assert second["meta"]["returnedGranularity"] == "count"
            # The same question again is free: its answer is the cached one.
            assert count(queries[0])["responseSummary"] == first["responseSummary"]
            # A third distinct question exceeds the day's budget: a yes/no answer only.
            third = count(queries[2])
            assert third["meta"]["returnedGranularity"] == "boolean"
            assert "numTotalResults" not in third["responseSummary"]
            assert "budget" in third["info"]["disclosure"]
        decisions = [e for e in ctx.audit.entries() if e["action"] == "beacon.count"]
        assert [e["decision"] for e in decisions] == ["allow", "allow", "allow", "deny"]
        assert json.loads(decisions[2]["details"])["epsilon"] == 0.0  # the repeat was free
        assert all(e["actor"].startswith("beacon@") for e in decisions)
    finally:
        ctx.close()
