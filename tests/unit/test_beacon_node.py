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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncofed.beacon.errors import install_error_handlers
from oncofed.node.beacon import create_beacon_router, node_engine
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
    install_error_handlers(app, lambda request: node_engine(request).config.beacon_id)
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
    intervals = [v["variation"]["location"]["interval"] for v in rs["results"]]
    assert all(i["start"]["value"] < 20000 and i["end"]["value"] > 10000 for i in intervals)
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


# ---------------------------------------------------------------- query semantics (issue 14)

G1K = "test_1000G.norm.ann.dbnsfp.clinvar.cosmic.vcf.gz"


@pytest.fixture(scope="module")
def bcftools(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``bcftools view -H -r REGION`` (pysam's bcftools) over the slice, bgzipped and
    indexed: the reference answer for range queries."""
    pysam = pytest.importorskip("pysam")
    from pysam import bcftools as tool

    folder = tmp_path_factory.mktemp("bcftools")
    plain = folder / "g1k.vcf"
    plain.write_bytes(gzip.decompress((bff_assets() / G1K).read_bytes()))
    indexed = pysam.tabix_index(str(plain), preset="vcf", force=True)  # bgzip + tabix

    def view(region: str | None = None) -> set[tuple[int, int, str, str]]:
        args = ["-H", *(["-r", region] if region else []), indexed]
        out = set()
        for line in tool.view(*args).splitlines():
            _, pos, _, ref, alts = line.split("\t")[:5]
            start = int(pos) - 1  # VCF 1-based POS as the model's 0-based start
            out |= {(start, start + len(ref), ref, alt) for alt in alts.split(",")}
        return out

    return view


@pytest.fixture(scope="module")
def g1k_spans(bcftools: Any) -> list[tuple[int, int, str, str]]:
    """(0-based start, end, REF, ALT) of every allele of the slice, as bcftools reads it."""
    return sorted(bcftools())


def _found(client: TestClient, params: dict[str, Any]) -> set[tuple[int, int, str, str]]:
    """What the g1k dataset returns for these parameters, every page, as spans."""
    out: set[tuple[int, int, str, str]] = set()
    skip = 0
    while True:
        q = {"requestedGranularity": "record", "pagination": {"skip": skip, "limit": 1000},
             "requestParameters": {**params, "datasets": ["g1k"]}}  # fmt: skip
        r = client.post(ROOT + "/g_variants", json={"query": q}, headers={"x-test-grants": "g1k"})
        assert r.status_code == 200, r.json()
        doc = r.json()
        if not doc["responseSummary"]["exists"]:
            return out
        results = doc["response"]["resultSets"][0]["results"]
        for v in results:
            i, var = v["variation"]["location"]["interval"], v["variation"]
            out.add((i["start"]["value"], i["end"]["value"], var["referenceBases"],
                     var["alternateBases"]))  # fmt: skip
        if len(results) < 1000:
            return out
        skip += 1000


def test_range_queries_return_overlapping_variants(node: Any, bcftools: Any) -> None:
    """A range query is an overlap query, as bcftools view -r: deletions that start before
    the range are in it (the issue's two misses), and the answer equals bcftools' on the
    slice for every window tried."""
    client, _ = node

    def expected(start: int, end: int) -> set[tuple[int, int, str, str]]:
        return set(bcftools(f"1:{start + 1}-{end}"))  # 0-based half-open as a VCF region

    hit = _found(client, {"referenceName": "1", "start": [13290], "end": [13291]})
    assert (13288, 13291, "CCT", "C") in hit and hit == expected(13290, 13291)
    hit = _found(client, {"referenceName": "1", "start": [10620], "end": [10700]})
    assert (10615, 10637, "CCGCCGTTGCAAAGGCGCGCCG", "C") in hit
    windows = [(10000, 10700), (13288, 13289), (13289, 13290), (13291, 13300), (14000, 30000),
               (10636, 10637), (10637, 10638), (1, 2), (170000, 200000)]  # fmt: skip
    for start, end in windows:
        got = _found(client, {"referenceName": "1", "start": [start], "end": [end]})
        assert got == expected(start, end), (start, end)
    # GET with the same semantics
    r = client.get(ROOT + "/g_variants?referenceName=1&start=10620&end=10700&datasets=g1k"
                   "&requestedGranularity=record", headers={"x-test-grants": "g1k"})  # fmt: skip
    assert r.json()["responseSummary"]["numTotalResults"] == len(expected(10620, 10700))


@given(start=st.integers(10000, 180000), width=st.integers(1, 3000))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
def test_range_queries_agree_with_bcftools_overlap(
    node: Any, bcftools: Any, start: int, width: int
) -> None:
    client, _ = node
    want = bcftools(f"1:{start + 1}-{start + width}")
    assert _found(client, {"referenceName": "1", "start": [start], "end": [start + width]}) == want


def test_bracket_queries_constrain_start_and_end(node: Any, g1k_spans: list[Any]) -> None:
    client, _ = node
    deletion = (10615, 10637, "CCGCCGTTGCAAAGGCGCGCCG", "C")
    # the deletion ends at 10637: outside [10700, 10710)
    got = _found(client, {"referenceName": "1", "start": [10600, 10620], "end": [10700, 10710]})
    assert deletion not in got and all(10700 <= s[1] < 10710 for s in got)
    got = _found(client, {"referenceName": "1", "start": [10615, 10616], "end": [10637, 10638]})
    assert got == {deletion}
    for (a, b), (c, d) in (((10000, 20000), (10000, 20000)), ((13000, 14000), (13290, 13292))):
        want = {s for s in g1k_spans if a <= s[0] < b and c <= s[1] < d}
        assert _found(client, {"referenceName": "1", "start": [a, b], "end": [c, d]}) == want


def test_every_documented_request_shape(node: Any, schemas: BeaconSchemas) -> None:
    """The spec's own POST shapes give the same answer as the flat one; an unknown or
    unanswered parameter is a Beacon error, never silently dropped."""
    client, _ = node
    flat = {"referenceName": "1", "start": [13288], "alternateBases": "C", "datasets": ["g1k"]}

    def count(rp: Any) -> Any:
        q = {"requestParameters": rp, "requestedGranularity": "record"}
        return _post(client, schemas, "/g_variants", q, "g1k")

    want = count(flat).json()["responseSummary"]["numTotalResults"]
    assert want == 1
    variant = {k: v for k, v in flat.items() if k != "datasets"}
    shapes = [
        {**variant, "datasets": {"datasetIds": ["g1k"]}},  # beaconRequestBody-MAX-example
        {"g_variant": variant, "datasets": {"datasetIds": ["g1k"]}},  # requestParameters.json
        {"genomicVariant": variant, "datasets": ["g1k"]},  # as receivedRequestSummary echoes
        {"genomicVariation": variant, "datasetIds": ["g1k"]},
    ]
    for shape in shapes:
        r = count(shape)
        assert r.status_code == 200 and r.json()["responseSummary"]["numTotalResults"] == want
    echoed = count(flat).json()["meta"]["receivedRequestSummary"]["requestParameters"]
    assert count(echoed).json()["responseSummary"]["numTotalResults"] == want
    # the dataset selection really selects: another dataset has none of these
    r = count({"genomicVariant": variant, "datasets": {"datasetIds": ["p1-genomic"]}})
    assert r.json()["responseSummary"]["exists"] is False
    for bad in ({**flat, "referenceNme": "1"}, {**flat, "mateName": "2"},
                {"datasets": {"ids": ["g1k"]}}, {"g_variant": {"start": "x"}}):  # fmt: skip
        r = count(bad)
        assert r.status_code == 400 and r.json()["error"]["errorCode"] == 400, bad
    r = _get(client, schemas, "/g_variants?referenceName=1&start=13288&alternateBase=C")
    assert r.status_code == 400 and "alternateBase" in r.json()["error"]["errorMessage"]


def test_errors_are_beacon_error_responses(node: Any, schemas: BeaconSchemas) -> None:
    client, _ = node
    for body in (b"{not json", b'{"query": ', b"[1, 2]", b'"text"'):
        r = client.post(ROOT + "/g_variants", content=body,
                        headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 400, body
        _check(schemas, "/g_variants", r.json())
        assert "exists" not in r.json().get("responseSummary", {})
    assert client.post(ROOT + "/individuals", content=b"").status_code == 200  # empty: defaults
    for path in ("/no_such_entry", "/g_variants/x/y/z"):
        r = client.get(ROOT + path)
        assert r.status_code == 404 and r.json()["error"]["errorCode"] == 404
        _check(schemas, path, r.json())
    r = client.put(ROOT + "/individuals")
    assert r.status_code == 405 and r.json()["error"]["errorCode"] == 405
    _check(schemas, "/individuals", r.json())
    assert client.get("/elsewhere").json() == {"detail": "Not Found"}  # only under /beacon/v2


def test_entry_type_ids_follow_the_default_model(node: Any) -> None:
    client, _ = node
    types = client.get(ROOT + "/configuration").json()["response"]["entryTypes"]
    assert "genomicVariant" in types and "genomicVariation" not in types
    sets = client.get(ROOT + "/map").json()["response"]["endpointSets"]
    assert sets["genomicVariant"]["rootUrl"].endswith("/g_variants")
    returned = client.get(ROOT + "/g_variants").json()["meta"]["returnedSchemas"]
    assert returned == [{"entityType": "genomicVariant", "schema": "beacon-g_variant-v2.0.0"}]


def test_ega_verifier_checks_pass_on_the_node(node: Any) -> None:
    """The EGA verifier's walk from /map (tests/beacon_verifier.py), with and without grants."""
    from tests.beacon_verifier import verify

    client, _ = node
    # Without grants the walk asks for booleans: count answers would spend the caller's
    # rate limit (30 a minute), which the rest of this module has used.
    for grants, granularity in (("", "boolean"), ("g1k,p1-genomic,p1-clinical", "record")):

        def fetch(url: str, grants: str = grants, granularity: str = granularity) -> Any:
            sep = "&" if "?" in url else "?"
            r = client.get(f"{url}{sep}requestedGranularity={granularity}&limit=5",
                           headers={"x-test-grants": grants})  # fmt: skip
            return r.status_code, r.json()

        ids = {}
        for entry in ("individuals", "biosamples", "g_variants", "runs", "analyses"):
            doc = client.get(
                f"{ROOT}/{entry}?requestedGranularity=record&limit=1",
                headers={"x-test-grants": "g1k,p1-genomic,p1-clinical"},
            ).json()
            first = doc["response"]["resultSets"][0]["results"][0]
            ids[entry] = first.get("id") or first["variantInternalId"]
        problems = verify(f"http://testserver{ROOT}", fetch, ids.get)
        assert problems == [], problems[:10]
    # ... and it does fail a beacon that breaks its rules
    bad_map = {
        "meta": {},
        "response": {
            "endpointSets": {
                "x": {"entryType": "x", "rootUrl": "http://beacon.example.org/x", "extra": 1}
            }
        },
    }
    problems = verify("https://beacon.example.org", lambda url: (200, bad_map), ids.get)
    assert any("unknown keys ['extra']" in p for p in problems)
    assert any("an https URL" in p for p in problems)
