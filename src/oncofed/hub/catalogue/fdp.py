"""The FAIR Data Point tree and content negotiation.

``/fdp`` (the FAIR Data Point) → ``/fdp/catalog`` (dcat:Catalog) → ``/fdp/dataset/{key}``
(dcat:Dataset) → ``/fdp/distribution/{key}`` (dcat:Distribution, whose access URL is the
negotiation page of the collection). Each page answers ``text/turtle`` (the default, as FAIR
Data Points do), ``application/ld+json`` or ``application/json`` (the hub's own JSON), by
the ``Accept`` header or a ``?format=`` override (``ttl``, ``jsonld``, ``json``).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse, Response
from rdflib import Graph

from oncofed.hub.catalogue import dcat
from oncofed.hub.catalogue.schema import DatasetRecord

MEDIA_TYPES: dict[str, str] = {
    "turtle": "text/turtle",
    "json-ld": "application/ld+json",
    "json": "application/json",
}
_ACCEPTED: dict[str, str] = {
    "text/turtle": "turtle",
    "application/x-turtle": "turtle",
    "application/ld+json": "json-ld",
    "application/json": "json",
}
_FORMAT_NAMES: dict[str, str] = {
    "ttl": "turtle",
    "turtle": "turtle",
    "jsonld": "json-ld",
    "json-ld": "json-ld",
    "json": "json",
}


def negotiate(accept: str | None, fmt: str | None, default: str = "turtle") -> str:
    """The representation to answer with: ``turtle``, ``json-ld`` or ``json``."""
    if fmt:
        chosen = _FORMAT_NAMES.get(fmt.lower())
        if chosen is None:
            raise HTTPException(406, f"unknown format {fmt!r}; use ttl, jsonld or json")
        return chosen
    if not accept:
        return default
    best: tuple[float, int, str] | None = None
    for i, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        media = media.lower()
        kind = _ACCEPTED.get(media) or (
            default if media in ("*/*", "text/*", "application/*") else None
        )
        if kind is None or q <= 0:
            continue
        if best is None or (q, -i) > (best[0], -best[1]):
            best = (q, i, kind)
    if best is None:
        raise HTTPException(
            406, "this page is available as text/turtle, application/ld+json or application/json"
        )
    return best[2]


def respond(kind: str, graph: Graph, json_body: Any) -> Response:
    headers = {"Vary": "Accept", "Link": '<https://w3id.org/fdp/fdp-o#>; rel="profile"'}
    if kind == "json":
        return JSONResponse(json_body, headers=headers)
    return Response(dcat.serialize(graph, kind), media_type=MEDIA_TYPES[kind], headers=headers)


def root_page(base: str, name: str) -> tuple[Graph, dict[str, Any]]:
    g = dcat.new_graph()
    dcat.add_fdp(g, base, name)
    return g, {"title": f"{name} FAIR Data Point", "catalog": str(dcat.catalogue_iri(base))}


def catalogue_page(
    base: str, name: str, records: list[DatasetRecord]
) -> tuple[Graph, dict[str, Any]]:
    g = dcat.new_graph()
    dcat.add_catalogue(g, base, name, records, max((r.modified for r in records), default=None))
    for r in records:  # links and titles; a harvester walks to each dataset for the rest
        dcat.add_dataset(g, base, r, summary_only=True)
    return g, {
        "title": f"{name} catalogue",
        "datasets": [
            {"key": r.key, "title": r.title, "url": str(dcat.dataset_iri(base, r.key))}
            for r in records
        ],
    }


def dataset_page(base: str, record: DatasetRecord) -> tuple[Graph, dict[str, Any]]:
    g = dcat.new_graph()
    dcat.add_dataset(g, base, record)
    return g, record.model_dump(mode="json")


def distribution_page(base: str, record: DatasetRecord) -> tuple[Graph, dict[str, Any]]:
    full = dcat.new_graph()
    dcat.add_dataset(full, base, record)
    dist = dcat.distribution_iri(base, record.key)
    g = dcat.new_graph()
    for triple in full.triples((dist, None, None)):
        g.add(triple)
    return g, {
        "dataset": record.key,
        "title": f"Access to {record.title}",
        "access_url": record.access_url,
        "access_rights": record.access_rights,
    }
