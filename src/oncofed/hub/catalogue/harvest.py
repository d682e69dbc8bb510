"""Import another FAIR Data Point's catalogue (or any DCAT catalogue served as RDF).

Starting from a URL (a FAIR Data Point, a catalogue, or a whole-catalogue export), the
harvester asks for Turtle (JSON-LD accepted when its context is inline), follows
``fdp-o:metadataCatalog`` / ``r3d:dataCatalog`` / ``ldp:contains`` to catalogues and
``dcat:dataset`` to datasets, fetching a dataset's (and its distribution's) own page only
when the pages read so far do not describe it. Only the URL given and the pages it links to
are fetched; JSON-LD contexts are never fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from rdflib import URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from oncofed.hub.catalogue import dcat

ACCEPT = "text/turtle, application/ld+json;q=0.8"
MAX_PAGES = 5000


class HarvestError(Exception):
    pass


@dataclass
class Harvest:
    """What a walk found: per catalogue IRI, its datasets as (IRI, record fields)."""

    catalogues: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    pages: int = 0
    problems: list[str] = field(default_factory=list)


class Walker:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.graph = dcat.new_graph()
        self.fetched: set[str] = set()
        self.problems: list[str] = []

    def fetch(self, url: str, required: bool = False) -> None:
        page = url.split("#", 1)[0]
        if page in self.fetched:
            return
        if len(self.fetched) >= MAX_PAGES:
            raise HarvestError(f"stopped after {MAX_PAGES} pages")
        self.fetched.add(page)
        try:
            response = self.client.get(page, headers={"Accept": ACCEPT}, follow_redirects=True)
        except httpx.HTTPError as exc:
            return self._problem(f"{page}: {exc}", required)
        if response.status_code != 200:
            return self._problem(f"{page}: HTTP {response.status_code}", required)
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = "json-ld" if media in ("application/ld+json", "application/json") else "turtle"
        try:
            self.graph += dcat.parse(response.text, fmt, base=page)
        except Exception as exc:  # rdflib raises many kinds of parse errors
            return self._problem(f"{page}: not readable as {fmt} ({exc})", required)

    def _problem(self, message: str, required: bool) -> None:
        if required:
            raise HarvestError(message)
        self.problems.append(message)

    def described(self, ds: URIRef) -> bool:
        g = self.graph
        return (ds, DCTERMS.description, None) in g and any(
            (d, DCAT.accessURL, None) in g for d in g.objects(ds, DCAT.distribution)
        )

    def catalogues(self, start: str) -> list[URIRef]:
        self.fetch(start, required=True)
        g = self.graph
        cats = set(g.subjects(RDF.type, DCAT.Catalog))
        for pred in (dcat.FDPO.metadataCatalog, dcat.R3D.dataCatalog, dcat.LDP.contains):
            for cat in list(g.objects(None, pred)):
                if isinstance(cat, URIRef) and (cat, RDF.type, DCAT.Catalog) not in g:
                    self.fetch(str(cat))
                cats.add(cat)
        found = sorted(
            (
                c
                for c in cats
                if isinstance(c, URIRef) and (c, RDF.type, DCAT.Catalog) in self.graph
            ),
            key=str,
        )
        if not found:
            raise HarvestError(f"{start} describes no dcat:Catalog (is it a FAIR Data Point?)")
        return found


def harvest(url: str, client: httpx.Client | None = None, timeout: float = 30.0) -> Harvest:
    """Walk the FAIR Data Point at ``url`` and read every dataset it lists."""
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        walker = Walker(client)
        result = Harvest()
        for cat in walker.catalogues(url):
            datasets = sorted(
                (d for d in walker.graph.objects(cat, DCAT.dataset) if isinstance(d, URIRef)),
                key=str,
            )
            for ds in datasets:
                if not walker.described(ds):
                    walker.fetch(str(ds))
                    for dist in walker.graph.objects(ds, DCAT.distribution):
                        if (
                            isinstance(dist, URIRef)
                            and (dist, DCAT.accessURL, None) not in walker.graph
                        ):
                            walker.fetch(str(dist))
            found = []
            for ds in datasets:
                if (ds, RDF.type, DCAT.Dataset) not in walker.graph:
                    walker.problems.append(f"{ds}: no dcat:Dataset description found")
                    continue
                found.append((str(ds), dcat.record_fields(walker.graph, ds)))
            result.catalogues[str(cat)] = found
        result.pages = len(walker.fetched)
        result.problems = walker.problems
        return result
    finally:
        if own:
            client.close()
