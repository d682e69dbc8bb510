"""What a node publishes to the hub's catalogue (Tier 1): its datasets and their figures.

The hub asks with a ``catalogue.describe`` task (on a schedule, on demand, and when the node
asks for it after an ingest: :func:`request_refresh`). Every figure leaves the node under its
own disclosure rules, exactly as a search that matches everyone would:

- individuals and imaging studies: cached noise, rounding, threshold
  (:func:`oncofed.privacy.disclose.release_count`), with the *same* cached noise as an
  unconstrained search, so that the catalogue and a search never give two different noisy
  values of one count (averaging them would learn the exact value);
- sexes, conditions, modalities, manufacturers, body parts: a value is listed when its own
  noisy, rounded count of individuals reaches the minimum count (labels only, no counts);
- age range: from the lowest to the highest age band that reaches the minimum count.

A dataset whose number of individuals is withheld publishes no strata at all.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from oncofed.node.context import NodeContext
from oncofed.node.handlers import TaskMeta, handler
from oncofed.privacy.disclose import draws, headline_noise, release_count, strata_wanted
from oncofed.protocol import CATALOGUE_KIND
from oncofed.query.ast import EVERYONE, Condition, query_hash
from oncofed.query.compile import row_predicate
from oncofed.query.vocabulary import (
    BODY_PART,
    DIAGNOSIS,
    MANUFACTURER,
    MODALITY,
    SEX,
    body_part_term,
)
from oncofed.security.keys import SigningKey
from oncofed.security.request_auth import sign_request
from oncofed.settings import NodeSettings

TIER_SEARCH_TASKS = frozenset({"search.count", "beacon.query"})


def _first_code(spec: Any, stored: str) -> tuple[str | None, str]:
    """The vocabulary code (and label) whose stored values include ``stored``; a value
    outside the vocabulary keeps its own name (DICOM modality codes stay upper case)."""
    for code in spec.codes:
        if stored.upper() in (m.upper() for m in code.match):
            return code.code, code.label
    return None, stored.upper() if spec is MODALITY else stored.lower()


def tier(ctx: NodeContext) -> int:
    """EUCAIM interoperability level of this node, read from its policy (STANDARDS §1)."""
    if ctx.policy.allowed_algorithms:
        return 3
    if any(ctx.policy.allows_task(k) for k in TIER_SEARCH_TASKS):
        return 2
    return 1


def _condition_counts(con: Any) -> dict[str, dict[str, int]]:
    """Individuals per dataset and EUCAIM diagnosis code (vocabulary matching rule)."""
    parts, params = [], []
    for code in DIAGNOSIS.codes:
        pred = row_predicate(Condition(key=DIAGNOSIS.key, type="EQUALS", value=code.code), "r")
        parts.append(
            f"SELECT p.dataset_id, ? AS code, count(DISTINCT r.patient_id) FROM disease r "
            f"JOIN patient p ON p.id = r.patient_id WHERE {pred.text} GROUP BY p.dataset_id"
        )
        params += [code.code, *pred.params]
    # SNOMED CT diagnoses outside the vocabulary are published under their own code.
    known = [m for c in DIAGNOSIS.codes for m in c.match if not m.startswith("C")]
    parts.append(
        "SELECT p.dataset_id, 'SNOMEDCT' || r.site_snomed, count(DISTINCT r.patient_id) "
        "FROM disease r JOIN patient p ON p.id = r.patient_id WHERE r.site_snomed IS NOT NULL "
        f"AND r.site_snomed NOT IN ({', '.join('?' for _ in known)}) "
        "GROUP BY p.dataset_id, r.site_snomed"
    )
    params += known
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for dataset_id, code, n in con.execute(" UNION ALL ".join(parts), params).fetchall():
        out[str(dataset_id)][str(code)] = int(n)
    return out


def _manufacturer_counts(con: Any) -> dict[str, dict[str, int]]:
    """Individuals per dataset and manufacturer code (first code whose pattern matches)."""
    seen: dict[str, tuple[str, ...]] = {}
    labels: set[str] = set()
    for code in MANUFACTURER.codes:  # Siemens has two codes: publish the first
        if code.label not in labels:
            labels.add(code.label)
            seen[code.code] = code.match
    parts, params = [], []
    for name, patterns in seen.items():
        like = " OR ".join("lower(s.manufacturer) LIKE ?" for _ in patterns)
        parts.append(
            "SELECT p.dataset_id, ? AS code, count(DISTINCT s.patient_id) FROM imaging_series s "
            f"JOIN patient p ON p.id = s.patient_id WHERE {like} GROUP BY p.dataset_id"
        )
        params += [name, *patterns]
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for dataset_id, code, n in con.execute(" UNION ALL ".join(parts), params).fetchall():
        out[str(dataset_id)][str(code)] = int(n)
    return out


def describe(ctx: NodeContext) -> dict[str, Any]:
    """The node's datasets with disclosure-controlled figures (the task's result body)."""
    policy = ctx.policy.disclosure
    node_id = ctx.settings.node_id or ctx.settings.name
    qhash = query_hash(EVERYONE)
    # Counted as an unconstrained search is (with its meaning keys): the catalogue, a
    # search, node.info and Beacon's /datasets then release one draw of each figure.
    counts = ctx.store.search_counts(EVERYONE, policy.max_studies_per_subject)
    with ctx.store.reading() as con:
        conditions = _condition_counts(con)
        manufacturers = _manufacturer_counts(con)
        rows = {
            str(r[0]): r
            for r in con.execute(
                "SELECT id, name, description, access_level FROM dataset"
            ).fetchall()
        }
    band = policy.age_band_years
    subjects_scale = 1.0 / policy.epsilon
    noise = headline_noise(counts, policy, ctx.privacy_ledger, node_id, qhash)
    strata: dict[str, dict[str, int]] = {}
    for c in counts:
        if release_count(c.subjects, noise[(c.dataset_id, "subjects")], policy) is None:
            continue
        wanted: dict[str, int] = {}
        if policy.strata:
            wanted.update(strata_wanted(c, policy))
            wanted.update({f"condition:{k}": n for k, n in conditions[c.dataset_id].items()})
            wanted.update({f"manufacturer:{k}": n for k, n in manufacturers[c.dataset_id].items()})
        strata[c.dataset_id] = wanted
    noise.update(
        draws(
            ctx.privacy_ledger,
            node_id,
            qhash,
            counts,
            [(ds, stat, subjects_scale) for ds, stats in strata.items() for stat in stats],
        )
    )

    datasets = []
    for c in counts:
        individuals = release_count(c.subjects, noise[(c.dataset_id, "subjects")], policy)
        studies = (
            None
            if individuals is None
            else release_count(c.studies, noise[(c.dataset_id, "studies")], policy)
        )
        shown = sorted(
            stat
            for stat, n in strata.get(c.dataset_id, {}).items()
            if release_count(n, noise[(c.dataset_id, stat)], policy) is not None
        )

        def values(prefix: str, shown: list[str] = shown) -> list[str]:
            return [s[len(prefix) :] for s in shown if s.startswith(prefix)]

        ages = [int(v) for v in values(f"age{band}:")]
        row = rows.get(c.dataset_id)
        datasets.append(
            {
                "id": c.dataset_id,
                "name": str(row[1]) if row else c.dataset_id,
                "description": str(row[2] or "") if row else "",
                "access_level": str(row[3]) if row else "registered",
                "figures": {
                    "individuals": individuals,
                    "individuals_below": policy.min_count if individuals is None else None,
                    "studies": studies,
                    "studies_below": policy.min_count if studies is None else None,
                    "age_range": {"min": min(ages), "max": max(ages) + band} if ages else None,
                    "sexes": _coded(SEX, values("gender:")),
                    "conditions": _labelled(DIAGNOSIS, values("condition:")),
                    "modalities": _coded(MODALITY, values("modality:")),
                    "manufacturers": _labelled(MANUFACTURER, values("manufacturer:")),
                    "body_parts": _body_parts(values("body_part:")),
                },
            }
        )
    return {
        "node": ctx.settings.name,
        "provider_id": ctx.settings.provider_id,
        "tier": tier(ctx),
        "min_count": policy.min_count,
        "described_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "datasets": datasets,
    }


def _coded(spec: Any, stored: list[str]) -> list[dict[str, str | None]]:
    """Stored values as ``{code, label}``, one entry per code (uncoded: code ``None``)."""
    out: dict[str, dict[str, str | None]] = {}
    for value in stored:
        code, label = _first_code(spec, value)
        out.setdefault(code or f"~{label}", {"code": code, "label": label})
    return sorted(out.values(), key=lambda v: (v["label"] or "", v["code"] or ""))


def _body_parts(stored: list[str]) -> list[dict[str, str | None]]:
    """Stored BodyPartExamined terms as the vocabulary's values, one per label (a combined
    term such as ABDOMENPELVIS gives each region it names; terms outside it are left out)."""
    out: dict[str, dict[str, str | None]] = {}
    for value in stored:
        term = body_part_term(value)
        for code in BODY_PART.codes:
            if term in code.match:
                out.setdefault(code.label, {"code": code.code, "label": code.label})
    return sorted(out.values(), key=lambda v: (v["label"] or "", v["code"] or ""))


def _labelled(spec: Any, codes: list[str]) -> list[dict[str, str | None]]:
    """Codes with their names: the search vocabulary's, else the importers' SNOMED CT table
    (a leukaemia has no EUCAIM site), else the code itself."""
    from oncofed.node.ingest.vocab import cancers

    out = []
    for value in codes:
        known = spec.code(value)
        cancer = cancers().get(value.removeprefix("SNOMEDCT")) if value else None
        label = known.label if known else cancer.label if cancer else value
        out.append({"code": value, "label": label})
    return sorted(out, key=lambda v: (v["label"] or "", v["code"] or ""))


@handler(CATALOGUE_KIND)
def catalogue_describe(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
    result = describe(ctx)
    ctx.audit.append(
        meta.requester,
        "catalogue.describe",
        "allow",
        target=meta.task_id,
        details={"datasets": [d["id"] for d in result["datasets"]]},
    )
    return result


def request_refresh(settings: NodeSettings, key: SigningKey) -> bool:
    """Ask the hub to describe this node again now (call it after an ingest).

    A signed request; the figures themselves still travel as a signed task result. Returns
    False when the node is not enrolled or the hub is unreachable (its schedule catches up).
    """
    if not (settings.hub_url and settings.node_id):
        return False
    base = settings.hub_url.rstrip("/")
    path = "/api/catalogue/nodes/refresh"
    target = urlsplit(base).path.rstrip("/") + path
    headers = sign_request(settings.node_id, key, "POST", target, b"")
    try:
        response = httpx.post(
            base + path, headers=headers, timeout=settings.request_timeout_seconds
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 202
