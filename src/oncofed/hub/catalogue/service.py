"""The catalogue at the hub: refresh from the nodes, holders' edits, full-text search.

The hub never computes a figure: each node publishes its datasets with disclosure-controlled
figures in answer to a ``catalogue.describe`` task, and the hub keeps the last answer of each
node. A node that does not answer keeps its previous figures; a dataset a node stops
reporting is withdrawn (kept, not listed). Holders' edits live beside the published values
and win over them, so a refresh never undoes an edit.

Refreshes happen on a schedule (:func:`refresh_loop`), on demand (admin route, CLI), and
when a node asks after an ingest (:func:`oncofed.node.publish.request_refresh`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi.concurrency import run_in_threadpool

from oncofed.hub.catalogue.models import CatalogueDataset
from oncofed.hub.catalogue.schema import (
    ACCESS_FROM_LEVEL,
    UNSPECIFIED,
    Agent,
    DatasetRecord,
    Descriptive,
    Figures,
)
from oncofed.hub.channel import ChannelError, TaskView
from oncofed.hub.context import HubContext
from oncofed.hub.models import Node
from oncofed.protocol import CATALOGUE_KIND
from oncofed.security.envelope import utcnow

log = logging.getLogger("oncofed.hub.catalogue")

REFRESH_TTL_SECONDS = 60


class CatalogueError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# -- records ---------------------------------------------------------------------------------


def summary(title: str, provider: str, f: Figures) -> str:
    """A human-readable description of a dataset's figures."""

    def labels(values: Iterable[Any]) -> str:
        return ", ".join(v.label for v in values)

    if f.individuals is not None:
        who = f"about {f.individuals} individuals"
    elif f.individuals_below:
        who = f"fewer than {f.individuals_below} individuals"
    else:
        who = "an undisclosed number of individuals"
    parts = [f"{title}, held by {provider}: {who}"]
    if f.studies is not None:
        parts[0] += f" and about {f.studies} imaging studies"
    parts[0] += "."
    if f.conditions:
        parts.append(f"Conditions: {labels(f.conditions)}.")
    if f.modalities:
        made = f" ({labels(f.manufacturers)} equipment)" if f.manufacturers else ""
        parts.append(f"Imaging: {labels(f.modalities)}{made}.")
    if f.body_parts:
        parts.append(f"Body parts: {labels(f.body_parts)}.")
    if f.sexes:
        parts.append(f"Sexes: {labels(f.sexes)}.")
    if f.age_range is not None:
        parts.append(
            f"Age {f.age_range.min} to {f.age_range.max} years (at diagnosis, or at the "
            "first imaging study where no diagnosis age is recorded)."
        )
    parts.append("Figures are rounded and carry noise (the provider's disclosure control).")
    return " ".join(parts)


def default_keywords(f: Figures) -> list[str]:
    out: list[str] = []
    for v in [*f.conditions, *f.modalities, *f.body_parts]:
        if v.label not in out:
            out.append(v.label)
    return out or ["cancer"]


def negotiation_url(hub_url: str, dataset_id: str, node_name: str) -> str:
    return (
        f"{hub_url}/negotiation/new?dataset={quote(dataset_id, safe='')}"
        f"&provider={quote(node_name, safe='')}"
    )


def to_record(row: CatalogueDataset, hub_url: str) -> DatasetRecord:
    """The row as published: the holder's edits over the node's values over defaults."""
    if row.origin:  # harvested: the record as the remote catalogue gave it
        fields = dict(row.published)
        fig = Figures.model_validate(fields.pop("figures", {}))
        return DatasetRecord(
            key=row.key,
            origin=row.origin,
            summary=summary(fields.get("title", row.key), fields.get("provider", ""), fig),
            figures=fig,
            **fields,
        )
    pub, ed = row.published, Descriptive.model_validate(row.edits)
    fig = Figures.model_validate(pub.get("figures", {}))
    node = row.node_name
    title = ed.title or str(pub.get("name") or row.dataset_id)
    text = summary(title, node, fig)
    return DatasetRecord(
        key=row.key,
        identifier=row.identifier,
        title=title,
        description=ed.description or str(pub.get("description") or "") or text,
        summary=text,
        version=ed.version or "1.0",
        tier=int(pub.get("tier", 1)),
        access_rights=ed.access_rights
        or ACCESS_FROM_LEVEL.get(str(pub.get("access_level")), "RESTRICTED"),
        hdab=ed.hdab
        or Agent(
            name=f"Data access committee of {node}", url=f"{hub_url}/providers/{quote(node)}/dac"
        ),
        publisher=Agent(name=node),
        provider=node,
        keywords=ed.keywords or default_keywords(fig),
        provenance=ed.provenance
        or (
            f"Held by provider {pub.get('provider_id') or node}; de-identified at the "
            "provider's node, which computes these figures under its own disclosure control "
            f"(cached noise, rounding, minimum count {pub.get('min_count', '?')})."
        ),
        collection_method=ed.collection_method or UNSPECIFIED,
        country=ed.country,
        figures=fig,
        issued=row.issued_at,
        modified=row.modified_at,
        access_url=negotiation_url(hub_url, row.dataset_id, node),
    )


def list_records(ctx: HubContext) -> list[DatasetRecord]:
    with ctx.sessions() as s:
        rows = list(
            s.scalars(
                sa.select(CatalogueDataset)
                .where(CatalogueDataset.withdrawn_at.is_(None))
                .order_by(CatalogueDataset.origin, CatalogueDataset.key)
            )
        )
    return [to_record(r, ctx.settings.url) for r in rows]


def get_record(ctx: HubContext, key: str) -> DatasetRecord:
    with ctx.sessions() as s:
        row = s.get(CatalogueDataset, key)
    if row is None or row.withdrawn_at is not None:
        raise CatalogueError(404, f"no dataset {key!r} in the catalogue")
    return to_record(row, ctx.settings.url)


def can_edit(roles: Iterable[str], record: DatasetRecord) -> bool:
    roles = set(roles)
    return not record.origin and ("admin" in roles or f"data_holder:{record.provider}" in roles)


# -- refresh -------------------------------------------------------------------------------


def store_description(ctx: HubContext, node_id: str, result: dict[str, Any]) -> dict[str, int]:
    """Keep one node's answer: upsert its datasets, withdraw those it no longer reports."""
    now = utcnow()
    counts = {"added": 0, "updated": 0, "unchanged": 0, "withdrawn": 0}
    with ctx.sessions.begin() as s:
        node = s.get(Node, node_id)
        if node is None:
            return counts
        existing = {
            r.dataset_id: r
            for r in s.scalars(
                sa.select(CatalogueDataset).where(CatalogueDataset.node_id == node_id)
            )
        }
        common = {k: result.get(k) for k in ("provider_id", "tier", "min_count")}
        seen = set()
        for d in result.get("datasets", []):
            dataset_id = str(d["id"])
            seen.add(dataset_id)
            published = {
                "name": d.get("name") or dataset_id,
                "description": d.get("description") or "",
                "access_level": d.get("access_level") or "registered",
                "figures": Figures.model_validate(d.get("figures") or {}).model_dump(mode="json"),
                **common,
            }
            row = existing.get(dataset_id)
            if row is None:
                key = f"{node.name}:{dataset_id}"
                s.add(
                    CatalogueDataset(
                        key=key,
                        identifier=key,
                        origin="",
                        node_id=node_id,
                        node_name=node.name,
                        dataset_id=dataset_id,
                        published=published,
                        edits={},
                        issued_at=now,
                        modified_at=now,
                        refreshed_at=now,
                        withdrawn_at=None,
                    )
                )
                counts["added"] += 1
                continue
            row.refreshed_at = now
            if row.published != published or row.withdrawn_at is not None:
                row.published = published
                row.modified_at = now
                row.withdrawn_at = None
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        for dataset_id, row in existing.items():
            if dataset_id not in seen and row.withdrawn_at is None:
                row.withdrawn_at = now
                row.modified_at = now
                counts["withdrawn"] += 1
    return counts


async def _wait(ctx: HubContext, task_id: str, seconds: float) -> TaskView:
    deadline = time.monotonic() + seconds
    while True:
        ev = ctx.notifier.event(f"task:{task_id}")
        view: TaskView = await run_in_threadpool(ctx.channel.view, task_id)
        remaining = deadline - time.monotonic()
        if view.complete or remaining <= 0:
            return view
        await ctx.notifier.wait(ev, min(remaining, 1.0))


async def refresh(
    ctx: HubContext,
    node_names: list[str] | None = None,
    wait_seconds: float = 30.0,
    created_by: str = "hub",
) -> dict[str, Any]:
    """Ask the nodes to describe their datasets and keep their answers.

    Returns each node's status (a node that did not answer keeps its last figures).
    """
    try:
        task_id, node_ids = await run_in_threadpool(
            ctx.channel.create,
            CATALOGUE_KIND,
            {},
            node_names,
            max(REFRESH_TTL_SECONDS, round(wait_seconds)),
            created_by,
        )
    except ChannelError as exc:
        raise CatalogueError(exc.status, exc.message) from exc
    for node_id in node_ids:
        ctx.notifier.wake(f"node:{node_id}")
    view = await _wait(ctx, task_id, wait_seconds)
    nodes: dict[str, Any] = {}
    for target in view.targets:
        entry: dict[str, Any] = {"status": target.status}
        if target.status == "succeeded" and target.result is not None:
            entry.update(
                await run_in_threadpool(store_description, ctx, target.node_id, target.result)
            )
        elif target.error:
            entry["error"] = target.error
        nodes[target.node_name] = entry
    await run_in_threadpool(
        ctx.audit.append,
        created_by,
        "catalogue.refresh",
        "info",
        task_id,
        "",
        {"nodes": {n: e["status"] for n, e in nodes.items()}},
    )
    return {"task": task_id, "complete": view.complete, "nodes": nodes}


def _has_enrolled_nodes(ctx: HubContext) -> bool:
    with ctx.sessions() as s:
        return bool(
            s.scalar(sa.select(sa.func.count()).select_from(Node).where(Node.status == "enrolled"))
        )


async def refresh_loop(ctx: HubContext) -> None:
    """Background job of the hub: refresh the whole catalogue every so often.

    The period is the hub setting ``catalogue_refresh_seconds`` (default 15 minutes). The
    first run waits one period too: right after a start the nodes are still connecting, and
    nodes ask for their own refresh when their data change.
    """
    period = ctx.settings.catalogue_refresh_seconds
    while True:
        await asyncio.sleep(period)
        try:
            if await run_in_threadpool(_has_enrolled_nodes, ctx):
                await refresh(ctx, wait_seconds=REFRESH_TTL_SECONDS)
        except CatalogueError as exc:
            log.info("scheduled catalogue refresh skipped: %s", exc.message)
        except Exception:  # keep the schedule; the error is in the log
            log.exception("scheduled catalogue refresh failed")


# -- edits -----------------------------------------------------------------------------------


def edit(
    ctx: HubContext, username: str, roles: Iterable[str], key: str, patch: dict[str, Any]
) -> DatasetRecord:
    """Apply a holder's edit of descriptive fields (PATCH semantics, see Descriptive)."""
    roles = frozenset(roles)
    changes = Descriptive.model_validate(patch)
    now = utcnow()
    with ctx.sessions.begin() as s:
        row = s.get(CatalogueDataset, key, with_for_update=True)
        if row is None or row.withdrawn_at is not None:
            raise CatalogueError(404, f"no dataset {key!r} in the catalogue")
        if row.origin:
            raise CatalogueError(409, f"{key} was harvested from {row.origin}; edit it there")
        if "admin" not in roles and f"data_holder:{row.node_name}" not in roles:
            raise CatalogueError(
                403,
                f"only a data holder of {row.node_name} (role data_holder:"
                f"{row.node_name}) or an admin may edit this dataset",
            )
        edits = dict(row.edits)
        for field in changes.model_fields_set:
            value = getattr(changes, field)
            if value is None:
                edits.pop(field, None)
            else:
                edits[field] = changes.model_dump(mode="json", include={field})[field]
        row.edits = edits
        row.edited_by = username
        row.modified_at = now
        ctx.audit.append(
            username,
            "catalogue.edit",
            "info",
            target=key,
            details={"fields": sorted(changes.model_fields_set)},
            con=s.connection(),
        )
        s.flush()
        return to_record(row, ctx.settings.url)


# -- harvested records ---------------------------------------------------------------------


def harvested_key(origin: str, identifier: str) -> str:
    return f"h{hashlib.sha256(origin.encode()).hexdigest()[:8]}:{identifier}"


def replace_harvested(
    ctx: HubContext, origin: str, found: list[tuple[str, dict[str, Any]]], username: str
) -> dict[str, int]:
    """Replace everything harvested from ``origin`` by ``found`` ((IRI, record fields))."""
    now = utcnow()
    counts = {"added": 0, "updated": 0, "removed": 0}
    with ctx.sessions.begin() as s:
        existing = {
            r.identifier: r
            for r in s.scalars(sa.select(CatalogueDataset).where(CatalogueDataset.origin == origin))
        }
        seen = set()
        for iri, fields in found:
            identifier = str(fields["identifier"])
            if identifier in seen:
                continue
            seen.add(identifier)
            published = DatasetRecord.model_validate(
                {**fields, "key": "-", "summary": "", "origin": origin, "source": iri}
            ).model_dump(mode="json", exclude={"key", "summary", "origin", "editable"})
            row = existing.get(identifier)
            if row is None:
                s.add(
                    CatalogueDataset(
                        key=harvested_key(origin, identifier),
                        identifier=identifier,
                        origin=origin,
                        node_id=None,
                        node_name=published["provider"],
                        dataset_id=identifier,
                        published=published,
                        edits={},
                        issued_at=now,
                        modified_at=now,
                        refreshed_at=now,
                        withdrawn_at=None,
                    )
                )
                counts["added"] += 1
            else:
                row.published, row.refreshed_at, row.withdrawn_at = published, now, None
                row.modified_at = now
                counts["updated"] += 1
        for identifier, row in existing.items():
            if identifier not in seen:
                s.delete(row)
                counts["removed"] += 1
        ctx.audit.append(
            username, "catalogue.harvest", "info", target=origin, details=counts, con=s.connection()
        )
    return counts


# -- full-text search with facets ------------------------------------------------------------

FACETS: dict[str, str] = {
    "condition": "cancer type",
    "modality": "imaging modality",
    "body_part": "body part",
    "country": "country",
    "access_rights": "access rights",
    "tier": "tier",
    "provider": "provider",
}
_WEIGHTS = {"title": 4.0, "keywords": 3.0, "codes": 2.0, "provider": 2.0, "description": 1.0}


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.findall(r"[a-z0-9]+", text)


def facet_values(r: DatasetRecord) -> dict[str, list[tuple[str, str]]]:
    """Each facet's (value, label) pairs for one record; value is the code where coded."""
    f = r.figures
    return {
        "condition": [(c.code or c.label, c.label) for c in f.conditions],
        "modality": [(c.code or c.label, c.label) for c in f.modalities],
        "body_part": [(c.code or c.label, c.label) for c in f.body_parts],
        "country": [(r.country, r.country)] if r.country else [],
        "access_rights": [(r.access_rights, r.access_rights)],
        "tier": [(str(r.tier), f"Tier {r.tier}")],
        "provider": [(r.provider, r.provider)],
    }


def _score(r: DatasetRecord, terms: list[str]) -> float:
    f = r.figures
    fields = {
        "title": _words(r.title),
        "keywords": _words(" ".join(r.keywords)),
        "codes": _words(
            " ".join(
                c.label
                for c in [*f.conditions, *f.modalities, *f.body_parts, *f.manufacturers, *f.sexes]
            )
        ),
        "provider": _words(f"{r.provider} {r.identifier}"),
        "description": _words(f"{r.description} {r.summary} {r.provenance} {r.collection_method}"),
    }
    total = 0.0
    for term in terms:
        hit = 0.0
        for name, words in fields.items():
            n = sum(1 for w in words if w.startswith(term))
            if n:
                hit += _WEIGHTS[name] * (1 + min(n, 5) / 5)
        if not hit:
            return 0.0  # every term must match (AND)
        total += hit
    return total


def _matches(values: list[tuple[str, str]], wanted: list[str]) -> bool:
    wanted_l = {w.lower() for w in wanted}
    return any(v.lower() in wanted_l or label.lower() in wanted_l for v, label in values)


def search(
    records: list[DatasetRecord],
    q: str = "",
    filters: dict[str, list[str]] | None = None,
    limit: int = 20,
    offset: int = 0,
) -> dict[str, Any]:
    """Full-text search (every word must match a word prefix) with facet filters.

    Facet counts are computed as the portal needs them: for each facet, over the records
    matching the text and every *other* facet's filter (choosing a value never hides the
    other values of the same facet). Values within one facet are OR-ed, facets AND-ed.
    """
    filters = {k: v for k, v in (filters or {}).items() if v}
    unknown = sorted(set(filters) - set(FACETS))
    if unknown:
        raise CatalogueError(
            422, f"unknown facet {', '.join(unknown)}; facets: {', '.join(FACETS)}"
        )
    terms = _words(q)
    scored = [(r, _score(r, terms) if terms else 1.0) for r in records]
    scored = [(r, sc) for r, sc in scored if sc > 0]
    values = {r.key: facet_values(r) for r, _ in scored}

    def passes(r: DatasetRecord, skip: str | None = None) -> bool:
        return all(_matches(values[r.key][k], v) for k, v in filters.items() if k != skip)

    hits = sorted(
        ((r, sc) for r, sc in scored if passes(r)),
        key=lambda x: (-x[1], x[0].title.lower(), x[0].key),
    )
    facets: dict[str, Any] = {}
    for facet, label in FACETS.items():
        counter: Counter[tuple[str, str]] = Counter()
        for r, _ in scored:
            if passes(r, skip=facet):
                counter.update(set(values[r.key][facet]))
        chosen = {w.lower() for w in filters.get(facet, [])}
        facets[facet] = {
            "label": label,
            "values": [
                {
                    "value": v,
                    "label": lab,
                    "count": n,
                    "selected": v.lower() in chosen or lab.lower() in chosen,
                }
                for (v, lab), n in sorted(counter.items(), key=lambda x: (-x[1], x[0][1]))
            ],
        }
    return {
        "query": q,
        "filters": filters,
        "total": len(hits),
        "offset": offset,
        "limit": limit,
        "results": [
            r.model_dump(mode="json") | {"score": round(sc, 3)}
            for r, sc in hits[offset : offset + limit]
        ],
        "facets": facets,
    }


def last_modified(records: list[DatasetRecord]) -> datetime | None:
    return max((r.modified for r in records), default=None)
