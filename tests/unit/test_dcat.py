"""EUCAIM DCAT-AP export: valid RDF, every mandatory field, and a lossless read-back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import RDF

from oncofed.hub.catalogue import dcat, fdp
from oncofed.hub.catalogue.schema import (
    Agent,
    AgeRange,
    Coded,
    DatasetRecord,
    Figures,
)
from oncofed.hub.catalogue.service import summary

BASE = "http://hub.example:8700"
WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(key: str = "node-1:lung-ct", **over: object) -> DatasetRecord:
    figures = Figures(
        individuals=305,
        studies=410,
        age_range=AgeRange(min=40, max=85),
        sexes=[
            Coded(code="SNOMEDCT248152002", label="female"),
            Coded(code="SNOMEDCT248153007", label="male"),
        ],
        conditions=[Coded(code="SNOMEDCT363358000", label="lung cancer")],
        modalities=[Coded(code="RID10321", label="CT"), Coded(code="RID10337", label="PET")],
        manufacturers=[
            Coded(code="C200140", label="Siemens"),
            Coded(code="birnlex_12833", label="GE"),
        ],
        body_parts=[
            Coded(code="SNOMEDCT39607008", label="lung"),
            Coded(code=None, label="mediastinum"),
        ],
    )
    fields: dict[str, object] = dict(
        key=key,
        identifier=key,
        title="Lung CT cohort",
        description="Thoracic CT, Valencia.",
        summary=summary("Lung CT cohort", "node-1", figures),
        version="1.0",
        tier=2,
        access_rights="RESTRICTED",
        hdab=Agent(name="DAC of node-1", url=f"{BASE}/providers/node-1/dac", email="dac@x.org"),
        publisher=Agent(name="node-1"),
        provider="node-1",
        keywords=["lung cancer", "CT"],
        provenance="Routine care at hospital A.",
        collection_method="retrospective",
        country="ESP",
        figures=figures,
        issued=WHEN,
        modified=WHEN,
        access_url=f"{BASE}/negotiation/new?dataset=lung-ct&provider=node-1",
    )
    fields.update(over)
    return DatasetRecord.model_validate(fields)


def public(r: DatasetRecord) -> dict[str, object]:
    out = r.model_dump(mode="json", exclude={"key", "summary", "origin", "source", "editable"})
    out["keywords"] = sorted(out["keywords"])  # type: ignore[arg-type]
    return out


@pytest.fixture
def records() -> list[DatasetRecord]:
    withheld = record(
        "node-2:tiny",
        title="Tiny",
        provider="node-2",
        publisher=Agent(name="node-2"),
        hdab=Agent(name="DAC of node-2"),
        country=None,
        figures=Figures(individuals_below=10, studies_below=10),
    )
    return [record(), withheld]


@pytest.mark.parametrize("fmt", ["turtle", "json-ld"])
def test_export_is_valid_rdf_with_every_mandatory_field(records, fmt) -> None:  # type: ignore[no-untyped-def]
    text = dcat.serialize(dcat.catalogue_graph(BASE, "test hub", records), fmt)
    g = dcat.parse(text, fmt)  # raises on invalid RDF
    datasets = set(g.subjects(RDF.type, dcat.DCAT.Dataset))
    assert len(datasets) == 2
    gaps = dcat.mandatory_gaps(g)
    assert gaps and all(missing == [] for missing in gaps.values()), gaps
    (cat,) = g.subjects(RDF.type, dcat.DCAT.Catalog)
    assert set(g.objects(cat, dcat.DCAT.dataset)) == datasets
    for ds in datasets:
        (dist,) = g.objects(ds, dcat.DCAT.distribution)
        (url,) = g.objects(dist, dcat.DCAT.accessURL)
        assert str(url).startswith(f"{BASE}/negotiation/new?dataset=")
    if fmt == "json-ld":
        doc = json.loads(text)
        assert isinstance(doc["@context"], dict)  # inline: nothing to fetch
    # rdflib's own parser agrees (no oncofed code in the loop).
    assert len(Graph().parse(data=text, format=fmt)) == len(g)


def test_read_back_reproduces_every_record(records) -> None:  # type: ignore[no-untyped-def]
    for fmt in ("turtle", "json-ld"):
        g = dcat.parse(dcat.serialize(dcat.catalogue_graph(BASE, "hub", records), fmt), fmt)
        for r in records:
            fields = dcat.record_fields(g, dcat.dataset_iri(BASE, r.key))
            again = DatasetRecord.model_validate({**fields, "key": r.key, "summary": ""})
            assert public(again) == public(r)


def test_mandatory_gaps_name_what_is_missing() -> None:
    g = dcat.catalogue_graph(BASE, "hub", [record()])
    ds = dcat.dataset_iri(BASE, "node-1:lung-ct")
    g.remove((ds, dcat.EUCAIM.collectionMethod, None))
    g.remove((ds, dcat.HEALTHDCATAP.numberOfUniqueIndividuals, None))
    assert dcat.mandatory_gaps(g)[str(ds)] == [
        "healthdcatap:numberOfUniqueIndividuals",
        "eucaim:collectionMethod",
    ]


def test_empty_strata_still_state_unknown() -> None:
    r = record(figures=Figures(individuals=20, studies=0))
    g = dcat.catalogue_graph(BASE, "hub", [r])
    ds = dcat.dataset_iri(BASE, r.key)
    assert dcat.mandatory_gaps(g)[str(ds)] == []
    assert URIRef("http://snomed.info/id/261665006") in set(
        g.objects(ds, dcat.EUCAIM.hasImageModality)
    )
    assert dcat.record_fields(g, ds)["figures"].modalities == []


def test_codes_become_ontology_iris() -> None:
    assert str(dcat.code_iri("SNOMEDCT363358000")) == "http://snomed.info/id/363358000"
    assert str(dcat.code_iri("RID10321")) == "http://radlex.org/RID/RID10321"
    assert str(dcat.code_iri("C200140")) == "http://purl.obolibrary.org/obo/NCIT_C200140"
    for code in ("SNOMEDCT363358000", "RID10321", "C200140", "birnlex_12833", "odd code"):
        assert dcat.iri_code(str(dcat.code_iri(code))) == code


def test_remote_jsonld_context_is_refused() -> None:
    doc = json.dumps({"@context": "https://example.org/ctx.jsonld", "@id": "x", "title": "t"})
    with pytest.raises(ValueError, match="remote @context"):
        dcat.parse(doc, "json-ld")


@pytest.mark.parametrize(
    ("accept", "fmt", "kind"),
    [
        (None, None, "turtle"),
        ("*/*", None, "turtle"),
        ("application/ld+json", None, "json-ld"),
        ("application/json", None, "json"),
        ("text/html;q=0.9, application/ld+json;q=0.5, text/turtle;q=0.8", None, "turtle"),
        ("text/turtle", "jsonld", "json-ld"),
    ],
)
def test_content_negotiation(accept, fmt, kind) -> None:  # type: ignore[no-untyped-def]
    assert fdp.negotiate(accept, fmt) == kind


def test_content_negotiation_refuses_what_it_cannot_give() -> None:
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as info:
        fdp.negotiate("text/html", None)
    assert info.value.status_code == 406
