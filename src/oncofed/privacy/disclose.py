"""Turn exact per-dataset counts into the answer a node may release.

Layers, in order, for every count (subjects, studies, and each stratum):

1. **noise**: add a discrete Laplace draw with scale ``sensitivity / epsilon``, cached per
   (node, dataset, meaning of the query, statistic) so that a query asked again, reordered,
   rewritten or by someone else gets the very same answer. The meaning is the set of
   records the query selects in that dataset (``DatasetCounts.key``, a hash the columnar
   index computes): an always-true condition, NOT of the complement, BETWEEN or two bounds
   all select the same patients and so draw nothing new. Counts without a key (the SQL
   path) fall back to the canonical query's hash;
2. **rounding** to a multiple of ``rounding`` (half up);
3. **threshold**: a result below ``min_count`` is withheld and reported as "fewer than
   ``min_count``" (``null`` plus ``*_below``). The threshold applies to the noisy value,
   never to the exact one, so that the boundary itself leaks nothing exact.

Strata are only shown for a dataset whose subject count is released:

- ``gender``, ``modalities``, ``body_parts``: a label is listed when its own noisy,
  rounded subject count reaches ``min_count`` (labels only, no counts); body parts are
  counted per stored DICOM term and listed as the vocabulary's values (a combined term such
  as ABDOMENPELVIS gives each region it names; a term outside the vocabulary is not listed);
- ``age_range``: ages at diagnosis are grouped in ``age_band_years`` bands; the range runs
  from the lowest to the highest band whose noisy, rounded count reaches ``min_count``
  (``min`` inclusive, ``max`` exclusive), so a lone oldest or youngest patient never shows.
- the studies count is withheld whenever the subjects count is.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from oncofed.privacy.ledger import PrivacyLedger
from oncofed.privacy.policy import DisclosurePolicy
from oncofed.query.counts import DatasetCounts
from oncofed.query.response import AgeRange, Collection, MediatorResponse
from oncofed.query.vocabulary import MODALITY_LABELS, body_part_labels


def round_to(value: float, base: int) -> int:
    """Round half up to a multiple of ``base``."""
    return int(base * math.floor(value / base + 0.5))


def release_count(true: int, noise: int, policy: DisclosurePolicy) -> int | None:
    """The released value of one count, or None when it is withheld."""
    value = round_to(true + noise, policy.rounding)
    return value if value >= policy.min_count else None


@dataclass
class DisclosureSummary:
    """What disclosure control did to one answer (for the decision record)."""

    datasets: int = 0
    released: int = 0
    withheld: int = 0


def strata_wanted(c: DatasetCounts, policy: DisclosurePolicy) -> dict[str, int]:
    """A dataset's strata as (statistic -> exact subject count): the keys their noise is
    cached under, shared by search answers and the published catalogue entry."""
    band = policy.age_band_years
    wanted: dict[str, int] = {}
    for sex, n in c.gender.items():
        wanted[f"gender:{sex}"] = n
    for age, n in c.ages.items():
        key = f"age{band}:{(age // band) * band}"
        wanted[key] = wanted.get(key, 0) + n
    for code, n in c.modalities.items():
        wanted[f"modality:{code}"] = n
    for part, n in c.body_parts.items():
        wanted[f"body_part:{part}"] = n
    return wanted


def meaning(counts: list[DatasetCounts], query_hash: str) -> str:
    """One key for what a whole query selects at this node: the charge is keyed on it, so
    a rewriting that selects the same records costs nothing more (its noise is cached)."""
    keys = [f"{c.dataset_id}={c.key}" for c in counts if c.key]
    if len(keys) < len(counts):
        return query_hash
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def draws(
    ledger: PrivacyLedger,
    node_id: str,
    query_hash: str,
    counts: list[DatasetCounts],
    wanted: list[tuple[str, str, float]],
) -> dict[tuple[str, str], int]:
    """Cached noise for (dataset, statistic, scale), each under its dataset's meaning
    key (one ledger call per distinct key; ``query_hash`` where a dataset has none)."""
    key_of = {c.dataset_id: c.key or query_hash for c in counts}
    by_key: dict[str, list[tuple[str, str, float]]] = {}
    for w in wanted:
        by_key.setdefault(key_of.get(w[0], query_hash), []).append(w)
    out: dict[tuple[str, str], int] = {}
    for key, some in by_key.items():
        out.update(ledger.noise(node_id, key, some))
    return out


def headline_noise(
    counts: list[DatasetCounts],
    policy: DisclosurePolicy,
    ledger: PrivacyLedger,
    node_id: str,
    query_hash: str,
) -> dict[tuple[str, str], int]:
    """The cached noise of every dataset's subjects and studies counts.

    Studies have the larger sensitivity: one subject adds up to
    ``max_studies_per_subject`` of them, and no more: the counts are clipped to that bound
    per subject before they get here (``count_matches(..., max_studies)``), so the bound
    holds for a subject with more studies too.
    """
    subjects_scale = 1.0 / policy.epsilon
    studies_scale = policy.max_studies_per_subject / policy.epsilon
    return draws(
        ledger,
        node_id,
        query_hash,
        counts,
        [
            w
            for c in counts
            for w in (
                (c.dataset_id, "subjects", subjects_scale),
                (c.dataset_id, "studies", studies_scale),
            )
        ],
    )


def disclose(
    counts: list[DatasetCounts],
    policy: DisclosurePolicy,
    ledger: PrivacyLedger,
    node_id: str,
    query_hash: str,
) -> tuple[MediatorResponse, DisclosureSummary]:
    """Apply the policy to exact counts; noise comes from (and goes to) the ledger."""
    summary = DisclosureSummary(datasets=len(counts))
    noise = headline_noise(counts, policy, ledger, node_id, query_hash)
    released: dict[str, int | None] = {}
    for c in counts:
        released[c.dataset_id] = release_count(
            c.subjects, noise[(c.dataset_id, "subjects")], policy
        )
    strata: dict[str, dict[str, int]] = {}
    if policy.strata:
        strata = {
            c.dataset_id: strata_wanted(c, policy)
            for c in counts
            if released[c.dataset_id] is not None
        }
        noise.update(
            draws(
                ledger,
                node_id,
                query_hash,
                counts,
                [
                    (ds, stat, 1.0 / policy.epsilon)
                    for ds, stats in strata.items()
                    for stat in stats
                ],
            )
        )
    collections: list[Collection] = []
    for c in counts:
        subjects = released[c.dataset_id]
        studies = (
            None
            if subjects is None
            else release_count(c.studies, noise[(c.dataset_id, "studies")], policy)
        )
        for value in (subjects, studies):
            if value is None:
                summary.withheld += 1
            else:
                summary.released += 1
        shown = [
            stat
            for stat, n in strata.get(c.dataset_id, {}).items()
            if release_count(n, noise[(c.dataset_id, stat)], policy) is not None
        ]
        collections.append(
            Collection(
                id=c.dataset_id,
                name=c.name,
                description=c.description,
                subjects_count=subjects,
                subjects_count_below=policy.min_count if subjects is None else None,
                studies_count=studies,
                studies_count_below=policy.min_count if studies is None else None,
                age_range=_age_range(shown, policy.age_band_years),
                gender=sorted(s.split(":", 1)[1] for s in shown if s.startswith("gender:")),
                modalities=sorted(
                    {MODALITY_LABELS.get(code, code) for code in _labels(shown, "modality:")}
                ),
                body_parts=sorted(
                    {b for p in _labels(shown, "body_part:") for b in body_part_labels(p)}
                ),
            )
        )
    return MediatorResponse(collections=collections), summary


def _labels(shown: list[str], prefix: str) -> list[str]:
    return [s[len(prefix) :] for s in shown if s.startswith(prefix)]


def _age_range(shown: list[str], band: int) -> AgeRange | None:
    starts = [int(s.split(":", 1)[1]) for s in shown if s.startswith(f"age{band}:")]
    if not starts:
        return None
    return AgeRange(min=min(starts), max=max(starts) + band)
