"""Catalogue records ⇄ RDF: the EUCAIM DCAT-AP profile (DCAT-AP 3 + HealthDCAT-AP), STANDARDS §5.

:func:`catalogue_graph` encodes records; :func:`records_from_graph` reads them back (what a
harvest of a FAIR Data Point does); :func:`mandatory_gaps` lists every mandatory field a
dataset lacks; :func:`serialize` writes Turtle or JSON-LD with an inline context (nothing is
ever fetched: JSON-LD contexts stay in this module).

Codes are written as IRIs of their ontologies: ``SNOMEDCT<id>`` as ``http://snomed.info/id/<id>``,
RadLex ``RID<n>``, NCIt ``C<n>`` and BIRNLex ``birnlex_<n>`` under their OBO/NIF IRIs, each
with its ``skos:prefLabel``; a value outside the vocabulary is a plain literal.

A count the node withheld ("fewer than 10") has no ``healthdcatap:numberOf…`` triple (a made
up number would be false); ``oncofed:numberOfUniqueIndividualsBelow`` / ``…RecordsBelow``
gives the threshold instead, and counts as the field being present.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD
from rdflib.term import Node

from oncofed.hub.catalogue.schema import Agent, AgeRange, Coded, DatasetRecord, Figures

HEALTHDCATAP = Namespace("http://healthdataportal.eu/ns/health#")
# The EUCAIM DCAT-AP profile's own terms (hasImageModality ...).
EUCAIM = Namespace("https://eucaim.cancerimage.eu/ns/dcat-ap#")
ONCOFED = Namespace("https://w3id.org/oncofed/ns#")
FDPO = Namespace("https://w3id.org/fdp/fdp-o#")
R3D = Namespace("http://www.re3data.org/schema/3-0#")
LDP = Namespace("http://www.w3.org/ns/ldp#")
ACCESS_RIGHT = Namespace("http://publications.europa.eu/resource/authority/access-right/")
DCAT_VERSION = URIRef("http://www.w3.org/ns/dcat#version")  # DCAT 3
COUNTRY = Namespace("http://publications.europa.eu/resource/authority/country/")

PREFIXES: dict[str, Namespace] = {
    "dcat": Namespace(str(DCAT)),
    "dct": Namespace(str(DCTERMS)),
    "foaf": Namespace(str(FOAF)),
    "rdfs": Namespace(str(RDFS)),
    "skos": Namespace(str(SKOS)),
    "xsd": Namespace(str(XSD)),
    "healthdcatap": HEALTHDCATAP,
    "eucaim": EUCAIM,
    "oncofed": ONCOFED,
    "fdp": FDPO,
    "r3d": R3D,
    "ldp": LDP,
}
# Inline JSON-LD context: prefixes only, so compaction is lossless and nothing is fetched.
JSONLD_CONTEXT: dict[str, str] = {p: str(ns) for p, ns in PREFIXES.items()}

CODE_IRIS: tuple[tuple[str, str], ...] = (  # (code prefix, IRI prefix)
    ("SNOMEDCT", "http://snomed.info/id/"),
    ("RID", "http://radlex.org/RID/RID"),
    ("birnlex_", "http://uri.neuinfo.org/nif/nifstd/birnlex_"),
    ("C", "http://purl.obolibrary.org/obo/NCIT_C"),
)

CODED_FIELDS: dict[str, URIRef] = {
    "sexes": EUCAIM.hasBirthSex,
    "conditions": EUCAIM.hasCondition,
    "modalities": EUCAIM.hasImageModality,
    "manufacturers": EUCAIM.hasEquipmentManufacturer,
    "body_parts": EUCAIM.hasImageBodyPart,
}

# Every mandatory field of the profile (STANDARDS §5) with the predicate(s) that satisfy it.
MANDATORY: dict[str, tuple[URIRef, ...]] = {
    "dct:identifier": (DCTERMS.identifier,),
    "dct:title": (DCTERMS.title,),
    "dct:description": (DCTERMS.description,),
    "dcat:version": (DCAT_VERSION,),
    "eucaim:interoperabilityLevel": (EUCAIM.interoperabilityLevel,),
    "dct:accessRights": (DCTERMS.accessRights,),
    "healthdcatap:hdab": (HEALTHDCATAP.hdab,),
    "healthdcatap:numberOfUniqueIndividuals": (
        HEALTHDCATAP.numberOfUniqueIndividuals,
        ONCOFED.numberOfUniqueIndividualsBelow,
    ),
    "healthdcatap:numberOfRecords": (HEALTHDCATAP.numberOfRecords, ONCOFED.numberOfRecordsBelow),
    "eucaim:hasBirthSex": (EUCAIM.hasBirthSex,),
    "eucaim:hasCondition": (EUCAIM.hasCondition,),
    "eucaim:hasImageModality": (EUCAIM.hasImageModality,),
    "eucaim:hasEquipmentManufacturer": (EUCAIM.hasEquipmentManufacturer,),
    "eucaim:hasImageBodyPart": (EUCAIM.hasImageBodyPart,),
    "dcat:keyword": (DCAT.keyword,),
    "dct:provenance": (DCTERMS.provenance,),
    "eucaim:collectionMethod": (EUCAIM.collectionMethod,),
}
# A coded field with nothing to disclose (no imaging, every stratum below the threshold)
# still states so: SNOMED CT 261665006 "Unknown".
UNKNOWN = Coded(code="SNOMEDCT261665006", label="unknown")


def code_iri(code: str) -> URIRef:
    if code.startswith(("http://", "https://", "urn:")):
        return URIRef(code)
    for prefix, base in CODE_IRIS:
        if code.startswith(prefix) and code[len(prefix) :].isalnum():
            return URIRef(base + code[len(prefix) :])
    return URIRef(ONCOFED["code/" + quote(code, safe="")])


def iri_code(iri: str) -> str:
    for prefix, base in CODE_IRIS:
        if iri.startswith(base):
            return prefix + iri[len(base) :]
    own = str(ONCOFED["code/"])
    if iri.startswith(own):
        from urllib.parse import unquote

        return unquote(iri[len(own) :])
    return iri


def dataset_iri(base_url: str, key: str) -> URIRef:
    return URIRef(f"{base_url}/fdp/dataset/{quote(key, safe=':')}")


def distribution_iri(base_url: str, key: str) -> URIRef:
    return URIRef(f"{base_url}/fdp/distribution/{quote(key, safe=':')}")


def catalogue_iri(base_url: str) -> URIRef:
    return URIRef(f"{base_url}/fdp/catalog")


def fdp_iri(base_url: str) -> URIRef:
    return URIRef(f"{base_url}/fdp")


def new_graph() -> Graph:
    g = Graph()
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns, override=True)
    return g


def _agent(g: Graph, agent: Agent) -> BNode:
    node = BNode()
    g.add((node, RDF.type, FOAF.Agent))
    g.add((node, FOAF.name, Literal(agent.name)))
    if agent.url:
        g.add((node, FOAF.homepage, URIRef(agent.url)))
    if agent.email:
        g.add((node, FOAF.mbox, URIRef(f"mailto:{agent.email}")))
    return node


def _when(value: datetime) -> Literal:
    return Literal(value.astimezone(UTC).isoformat(timespec="seconds"), datatype=XSD.dateTime)


def add_dataset(g: Graph, base_url: str, r: DatasetRecord, summary_only: bool = False) -> URIRef:
    """Add one record (a dcat:Dataset and its dcat:Distribution) to the graph."""
    ds = dataset_iri(base_url, r.key)
    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCTERMS.identifier, Literal(r.identifier)))
    g.add((ds, DCTERMS.title, Literal(r.title)))
    if summary_only:
        return ds
    f = r.figures
    g.add((ds, DCTERMS.description, Literal(r.description)))
    g.add((ds, RDFS.comment, Literal(r.summary)))
    g.add((ds, DCAT_VERSION, Literal(r.version)))
    g.add((ds, EUCAIM.interoperabilityLevel, Literal(r.tier, datatype=XSD.integer)))
    g.add((ds, DCTERMS.accessRights, ACCESS_RIGHT[r.access_rights]))
    g.add((ds, HEALTHDCATAP.hdab, _agent(g, r.hdab)))
    g.add((ds, DCTERMS.publisher, _agent(g, r.publisher)))
    for value, below, pred, pred_below in (
        (
            f.individuals,
            f.individuals_below,
            HEALTHDCATAP.numberOfUniqueIndividuals,
            ONCOFED.numberOfUniqueIndividualsBelow,
        ),
        (f.studies, f.studies_below, HEALTHDCATAP.numberOfRecords, ONCOFED.numberOfRecordsBelow),
    ):
        if value is not None:
            g.add((ds, pred, Literal(value, datatype=XSD.nonNegativeInteger)))
        elif below is not None:
            g.add((ds, pred_below, Literal(below, datatype=XSD.nonNegativeInteger)))
    if f.age_range is not None:
        g.add(
            (
                ds,
                HEALTHDCATAP.minTypicalAge,
                Literal(f.age_range.min, datatype=XSD.nonNegativeInteger),
            )
        )
        g.add(
            (
                ds,
                HEALTHDCATAP.maxTypicalAge,
                Literal(f.age_range.max, datatype=XSD.nonNegativeInteger),
            )
        )
    for field, pred in CODED_FIELDS.items():
        values: list[Coded] = getattr(f, field) or [UNKNOWN]
        for v in values:
            if v.code is None:
                g.add((ds, pred, Literal(v.label)))
            else:
                iri = code_iri(v.code)
                g.add((ds, pred, iri))
                g.add((iri, SKOS.prefLabel, Literal(v.label)))
    for keyword in r.keywords:
        g.add((ds, DCAT.keyword, Literal(keyword)))
    prov = BNode()
    g.add((prov, RDF.type, DCTERMS.ProvenanceStatement))
    g.add((prov, RDFS.label, Literal(r.provenance)))
    g.add((ds, DCTERMS.provenance, prov))
    g.add((ds, EUCAIM.collectionMethod, Literal(r.collection_method)))
    if r.country:
        g.add((ds, DCTERMS.spatial, COUNTRY[r.country]))
    g.add((ds, DCTERMS.issued, _when(r.issued)))
    g.add((ds, DCTERMS.modified, _when(r.modified)))
    if r.source:
        g.add((ds, DCTERMS.source, URIRef(r.source)))
    dist = distribution_iri(base_url, r.key)
    g.add((ds, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    g.add((dist, DCTERMS.title, Literal(f"Access to {r.title}")))
    g.add(
        (
            dist,
            DCTERMS.description,
            Literal(
                "Request access to this collection through the federation's access negotiation."
            ),
        )
    )
    g.add((dist, DCAT.accessURL, URIRef(r.access_url)))
    g.add((dist, DCTERMS.accessRights, ACCESS_RIGHT[r.access_rights]))
    return ds


def add_catalogue(
    g: Graph,
    base_url: str,
    name: str,
    records: list[DatasetRecord],
    modified: datetime | None = None,
) -> URIRef:
    cat = catalogue_iri(base_url)
    g.add((cat, RDF.type, DCAT.Catalog))
    g.add((cat, DCTERMS.title, Literal(f"{name} catalogue")))
    g.add(
        (
            cat,
            DCTERMS.description,
            Literal(
                f"Cancer research datasets of the {name} federation (EUCAIM DCAT-AP); figures are "
                "computed by each provider under its disclosure rules."
            ),
        )
    )
    g.add((cat, DCTERMS.publisher, _agent(g, Agent(name=name, url=base_url))))
    g.add((cat, DCTERMS.conformsTo, EUCAIM[""]))
    g.add((cat, DCTERMS.modified, _when(modified or datetime.now(UTC))))
    for r in records:
        g.add((cat, DCAT.dataset, dataset_iri(base_url, r.key)))
    return cat


def add_fdp(g: Graph, base_url: str, name: str) -> URIRef:
    root = fdp_iri(base_url)
    cat = catalogue_iri(base_url)
    for t in (FDPO.FAIRDataPoint, R3D.Repository, DCAT.DataService):
        g.add((root, RDF.type, t))
    g.add((root, DCTERMS.title, Literal(f"{name} FAIR Data Point")))
    g.add((root, DCTERMS.publisher, _agent(g, Agent(name=name, url=base_url))))
    g.add((root, FDPO.metadataCatalog, cat))
    g.add((root, R3D.dataCatalog, cat))
    g.add((root, LDP.contains, cat))
    g.add((root, DCAT.endpointURL, URIRef(base_url + "/fdp")))
    return root


def catalogue_graph(base_url: str, name: str, records: list[DatasetRecord]) -> Graph:
    """The whole catalogue: FAIR Data Point, catalogue and every dataset with distribution."""
    g = new_graph()
    add_fdp(g, base_url, name)
    add_catalogue(g, base_url, name, records, max((r.modified for r in records), default=None))
    for r in records:
        add_dataset(g, base_url, r)
    return g


def serialize(g: Graph, fmt: str) -> str:
    """``turtle`` or ``json-ld`` (compacted with the inline context)."""
    if fmt == "json-ld":
        return g.serialize(format="json-ld", context=JSONLD_CONTEXT, indent=2)
    return g.serialize(format="turtle")


def parse(text: str, fmt: str, base: str | None = None) -> Graph:
    """Parse Turtle or JSON-LD; a JSON-LD document naming a remote @context is refused
    (resolving it would fetch from the network)."""
    g = new_graph()
    if fmt == "json-ld":
        doc = json.loads(text)
        if _remote_context(doc):
            raise ValueError(
                "the JSON-LD document names a remote @context; this hub does not "
                "fetch contexts: ask for text/turtle instead"
            )
        g.parse(data=json.dumps(doc), format="json-ld", base=base)
    else:
        g.parse(data=text, format="turtle", publicID=base)
    return g


def _remote_context(doc: Any) -> bool:
    if isinstance(doc, list):
        return any(_remote_context(d) for d in doc)
    if not isinstance(doc, dict):
        return False
    ctx = doc.get("@context")
    items = ctx if isinstance(ctx, list) else [ctx]
    if any(isinstance(c, str) for c in items):
        return True
    return any(
        _remote_context(v)
        for k, v in doc.items()
        if k != "@context" and isinstance(v, (dict, list))
    )


# -- reading back ---------------------------------------------------------------------------


def mandatory_gaps(g: Graph) -> dict[str, list[str]]:
    """For each dcat:Dataset in the graph, the mandatory fields it lacks (empty: complete)."""
    gaps: dict[str, list[str]] = {}
    for ds in sorted(set(g.subjects(RDF.type, DCAT.Dataset)), key=str):
        gaps[str(ds)] = [
            name for name, preds in MANDATORY.items() if not any(_nonempty(g, ds, p) for p in preds)
        ]
    return gaps


def _nonempty(g: Graph, s: Node, p: URIRef) -> bool:
    return any(not (isinstance(o, Literal) and not str(o).strip()) for o in g.objects(s, p))


def _one(g: Graph, s: Node, p: URIRef) -> Node | None:
    values = sorted(g.objects(s, p), key=str)
    return values[0] if values else None


def _text(g: Graph, s: Node, p: URIRef, default: str = "") -> str:
    v = _one(g, s, p)
    return default if v is None else str(v)


def _int(g: Graph, s: Node, p: URIRef) -> int | None:
    v = _one(g, s, p)
    if v is None:
        return None
    m = re.search(r"\d+", str(v))
    return int(m.group()) if m else None


def _agent_of(g: Graph, node: Node | None, default: str) -> Agent:
    if node is None:
        return Agent(name=default)
    if isinstance(node, Literal):
        return Agent(name=str(node) or default)
    name = _text(g, node, FOAF.name) or _text(g, node, SKOS.prefLabel) or default
    url = _one(g, node, FOAF.homepage)
    mbox = _one(g, node, FOAF.mbox)
    if url is None and isinstance(node, URIRef):
        url = node
    return Agent(
        name=name,
        url=str(url) if url is not None else None,
        email=str(mbox).removeprefix("mailto:") if mbox is not None else None,
    )


def _coded(g: Graph, s: Node, p: URIRef) -> list[Coded]:
    out = []
    for o in g.objects(s, p):
        if isinstance(o, Literal):
            out.append(Coded(code=None, label=str(o)))
        else:
            code = iri_code(str(o))
            out.append(
                Coded(
                    code=code, label=_text(g, o, SKOS.prefLabel) or _text(g, o, RDFS.label) or code
                )
            )
    out = [c for c in out if c != UNKNOWN]
    return sorted(set(out), key=lambda c: (c.label, c.code or ""))


def _datetime(g: Graph, s: Node, p: URIRef) -> datetime | None:
    v = _one(g, s, p)
    if v is None:
        return None
    try:
        when = datetime.fromisoformat(str(v))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def record_fields(g: Graph, ds: URIRef) -> dict[str, Any]:
    """What a dcat:Dataset says, as the fields of a :class:`DatasetRecord` (less ``key``,
    ``origin`` and ``summary``, which the reader decides)."""
    now = datetime.now(UTC)
    access = _one(g, ds, DCTERMS.accessRights)
    access_code = str(access).rsplit("/", 1)[-1].upper() if access is not None else ""
    country = _one(g, ds, DCTERMS.spatial)
    country_code = str(country).rsplit("/", 1)[-1].upper() if country is not None else ""
    prov = _one(g, ds, DCTERMS.provenance)
    provenance = (
        str(prov)
        if isinstance(prov, Literal)
        else _text(g, prov, RDFS.label)
        if prov is not None
        else ""
    )
    dist = _one(g, ds, DCAT.distribution)
    access_url = _text(g, dist, DCAT.accessURL) if dist is not None else ""
    lo, hi = _int(g, ds, HEALTHDCATAP.minTypicalAge), _int(g, ds, HEALTHDCATAP.maxTypicalAge)
    publisher = _agent_of(g, _one(g, ds, DCTERMS.publisher), "unknown publisher")
    figures = Figures(
        individuals=_int(g, ds, HEALTHDCATAP.numberOfUniqueIndividuals),
        individuals_below=_int(g, ds, ONCOFED.numberOfUniqueIndividualsBelow),
        studies=_int(g, ds, HEALTHDCATAP.numberOfRecords),
        studies_below=_int(g, ds, ONCOFED.numberOfRecordsBelow),
        age_range=AgeRange(min=lo, max=hi) if lo is not None and hi is not None else None,
        **{field: _coded(g, ds, pred) for field, pred in CODED_FIELDS.items()},
    )
    tier = _int(g, ds, EUCAIM.interoperabilityLevel) or 1
    return {
        "identifier": _text(g, ds, DCTERMS.identifier, str(ds)),
        "title": _text(g, ds, DCTERMS.title, str(ds)),
        "description": _text(g, ds, DCTERMS.description),
        "version": _text(g, ds, DCAT_VERSION, "1.0"),
        "tier": min(max(tier, 1), 3),
        "access_rights": access_code
        if access_code in ("PUBLIC", "RESTRICTED", "NON_PUBLIC")
        else "RESTRICTED",
        "hdab": _agent_of(g, _one(g, ds, HEALTHDCATAP.hdab), publisher.name),
        "publisher": publisher,
        "provider": publisher.name,
        "keywords": sorted(str(k) for k in g.objects(ds, DCAT.keyword)),
        "provenance": provenance,
        "collection_method": _text(g, ds, EUCAIM.collectionMethod),
        "country": country_code if re.fullmatch(r"[A-Z]{3}", country_code) else None,
        "figures": figures,
        "issued": _datetime(g, ds, DCTERMS.issued) or now,
        "modified": _datetime(g, ds, DCTERMS.modified) or now,
        "access_url": access_url or str(ds),
    }
