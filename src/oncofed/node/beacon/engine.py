"""The Beacon v2 query engine over the node store: requests in, disclosure-checked answers out.

Independent of HTTP so that the node's router and its ``beacon.query`` task handler (the
hub's Beacon network fan-out) give the same answers. Granularity is capped per dataset: a
dataset's access level caps what anyone gets (``BeaconConfig.level_caps``: boolean or
count), ``record`` needs a verified grant for that dataset, and a count below the node's
minimum is never revealed (the answer falls back to boolean). ``exists`` is no exception:
for datasets without a grant it is true only when their released (noisy, rounded,
thresholded) count is, and a boolean is charged and rate-limited like a count, sharing the
count's cached draw.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oncofed.beacon.wire import (
    ENTRY_TYPES,
    ORDER,
    SEX_TERMS,
    VARIANT_PARAMETERS,
    BeaconConfig,
    BeaconError,
    BeaconFramework,
    BeaconRequest,
    Filter,
    Granularity,
    RequestQuery,
    _granularity_min,
    _ontology_term,
)
from oncofed.node.ingest.codes import ICD10_SITE, SITE_SNOMED
from oncofed.node.ingest.vocab import cancers
from oncofed.node.store import NodeStore
from oncofed.privacy.disclose import release_count
from oncofed.privacy.errors import BudgetExhausted, RateLimited
from oncofed.privacy.policy import DisclosurePolicy
from oncofed.query.ast import EVERYONE
from oncofed.query.ast import query_hash as ast_query_hash
from oncofed.query.counts import DatasetCounts

SEX_BY_TERM = {
    "NCIT:C20197": "male",
    "NCIT:C16576": "female",
    "NCIT:C45908": "other",
    "NCIT:C17998": "unknown",
    "SNOMEDCT:248153007": "male",
    "SNOMEDCT:248152002": "female",
    "SNOMEDCT:74964007": "other",
    "SNOMEDCT:261665006": "unknown",
}
ZYGOSITY = {
    "heterozygous": ("GENO:GENO_0000458", "heterozygous"),
    "homozygous": ("GENO:GENO_0000136", "homozygous"),
    "hemizygous": ("GENO:GENO_0000134", "hemizygous"),
}
CONSEQUENCE_SO = {
    "missense_variant": "SO:0001583",
    "synonymous_variant": "SO:0001819",
    "stop_gained": "SO:0001587",
    "stop_lost": "SO:0001578",
    "frameshift_variant": "SO:0001589",
    "inframe_insertion": "SO:0001821",
    "inframe_deletion": "SO:0001822",
    "splice_region_variant": "SO:0001630",
    "splice_acceptor_variant": "SO:0001574",
    "splice_donor_variant": "SO:0001575",
    "intron_variant": "SO:0001627",
    "upstream_gene_variant": "SO:0001631",
    "downstream_gene_variant": "SO:0001632",
    "5_prime_UTR_variant": "SO:0001623",
    "3_prime_UTR_variant": "SO:0001624",
    "intergenic_region": "SO:0000605",
    "non_coding_transcript_exon_variant": "SO:0001792",
}
# Alphanumeric filters: id → (SQL over the patient p, value type). Values compare with the
# operator given; '%' in a value with = or ! makes it a LIKE.
ALPHANUMERIC: dict[str, tuple[str, str, str]] = {
    "sex": ("p.sex", "text", "Sex: male, female, other, unknown"),
    "age": (
        "(SELECT min(d.age_at_diagnosis) FROM disease d WHERE d.patient_id = p.id)",
        "age",
        "Age at diagnosis (ISO 8601 duration, e.g. P70Y, or years)",
    ),
    "ageAtDiagnosis": (
        "(SELECT min(d.age_at_diagnosis) FROM disease d WHERE d.patient_id = p.id)",
        "age",
        "Age at diagnosis (ISO 8601 duration, e.g. P70Y, or years)",
    ),
    "diagnosisYear": ("d.diagnosis_year", "disease-number", "Year of diagnosis"),
    "icd10": ("d.icd10", "disease-text", "ICD-10 code of the primary cancer"),
    "topography": ("d.topography", "disease-text", "ICD-O-3 topography"),
    "morphology": ("d.morphology", "disease-text", "ICD-O-3 morphology"),
    "tStage": ("d.t_stage", "disease-text", "TNM T category"),
    "nStage": ("d.n_stage", "disease-text", "TNM N category"),
    "mStage": ("d.m_stage", "disease-text", "TNM M category"),
    "stageGroup": ("d.stage_group", "disease-text", "Stage group (I, IIA, ..., IV)"),
    "treatment": ("t.kind", "treatment-text", "Treatment kind: surgery, radiotherapy, ..."),
    "vitalStatus": ("o.vital_status", "outcome-text", "alive, deceased, unknown"),
    "survivalDays": (
        "o.survival_days",
        "outcome-number",
        "Days from diagnosis to death/last contact",
    ),
    "biomarker": ("b.name", "biomarker-text", "Tumour marker name"),
}
OPERATORS = {"=": "=", "!": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")


@dataclass
class _Scope:
    dataset: str
    cap: Granularity
    count: int = 0


NoiseSource = Callable[[str, list[tuple[str, str, float]]], dict[tuple[str, str], int]]
"""(query hash, [(dataset, statistic, scale)]) → cached noise per (dataset, statistic)."""
Admitter = Callable[[str, str], None]
"""(requester, query hash): records the request and charges the requester's privacy budget
as a search would, or raises RateLimited / BudgetExhausted (:mod:`oncofed.privacy`)."""


class BeaconEngine(BeaconFramework):
    """Answers Beacon requests from the store under the node's disclosure policy.

    Every count that is not record-level (a grant holder's own datasets) is released like a
    search count (:mod:`oncofed.privacy.disclose`): noise cached per query, rounding, and
    withheld below the minimum, in which case the answer falls back to boolean.
    """

    def __init__(
        self,
        store: NodeStore,
        limits: DisclosurePolicy,
        config: BeaconConfig,
        noise: NoiseSource | None = None,
        admit: Admitter | None = None,
    ) -> None:
        super().__init__(config)
        self.store = store
        self.limits = limits
        self.noise = noise
        self.admit = admit
        self._datasets: tuple[float, list[dict[str, Any]]] | None = None

    def release(self, query_hash: str, label: str, true: int) -> int | None:
        """A count as the node may reveal it for this query (None: withheld)."""
        draw = 0
        if self.noise is not None:
            scale = 1.0 / self.limits.epsilon
            draw = self.noise(query_hash, [(label, "beacon", scale)])[(label, "beacon")]
        return release_count(true, draw, self.limits)

    def dataset_size(self, c: DatasetCounts) -> int | None:
        """A dataset's size as search, node.info and the catalogue release it."""
        draw = 0
        if self.noise is not None:
            key = c.key or everyone_hash()
            draw = self.noise(key, [(c.dataset_id, "subjects", 1.0 / self.limits.epsilon)])[
                (c.dataset_id, "subjects")
            ]
        return release_count(c.subjects, draw, self.limits)

    def charge(self, requester: str, query_hash: str) -> str | None:
        """Charge a count's release to the requester's budget, as a search count is: without
        it, Beacon count queries would be a way around the node's per-researcher budget.
        Returns why the count is withheld (budget spent), None when it may be released;
        a rate-limited requester gets a 429."""
        if self.admit is None:
            return None
        try:
            self.admit(requester, query_hash)
        except BudgetExhausted as exc:
            return str(exc)
        except RateLimited as exc:
            raise BeaconError(str(exc), 429) from exc
        return None

    # ------------------------------------------------------------------ framework

    def filtering_terms(self) -> dict[str, Any]:
        terms: list[dict[str, Any]] = []
        for sex, (term, label) in SEX_TERMS.items():
            terms.append({"type": "ontologyTerm", "id": term, "label": f"sex: {label}",
                          "scopes": ["individual"]})  # fmt: skip
            del sex
        with self.store.reading() as con:
            icd = con.execute(
                "SELECT DISTINCT icd10 FROM disease WHERE icd10 IS NOT NULL ORDER BY 1"
            ).fetchall()
            sites = con.execute(
                "SELECT DISTINCT site_snomed FROM disease WHERE site_snomed IS NOT NULL ORDER BY 1"
            ).fetchall()
            atc = con.execute(
                "SELECT DISTINCT code, any_value(agent) FROM treatment WHERE code IS NOT NULL "
                "AND code_system LIKE '%atc%' GROUP BY 1 ORDER BY 1"
            ).fetchall()
        for (code,) in icd:
            terms.append({"type": "ontologyTerm", "id": f"ICD10:{code}", "label": code,
                          "scopes": ["individual", "biosample", "genomicVariant"]})  # fmt: skip
        for (code,) in sites:
            site = next((k for k, v in SITE_SNOMED.items() if v == code), None)
            cancer = cancers().get(code)
            label = f"{site} cancer" if site else cancer.label if cancer else code
            terms.append({"type": "ontologyTerm", "id": f"SNOMEDCT:{code}", "label": label,
                          "scopes": ["individual", "biosample", "genomicVariant"]})  # fmt: skip
        for code, agent in atc:
            terms.append({"type": "ontologyTerm", "id": f"ATC:{code}", "label": agent or code,
                          "scopes": ["individual"]})  # fmt: skip
        for key, (_, _, label) in ALPHANUMERIC.items():
            terms.append({"type": "alphanumeric", "id": key, "label": label,
                          "scopes": ["individual"]})  # fmt: skip
        return {
            "meta": self.meta(),
            "response": {
                "filteringTerms": terms,
                "resources": [
                    {"id": "NCIT", "name": "NCI Thesaurus",
                     "url": "http://purl.obolibrary.org/obo/ncit.owl", "namespacePrefix": "NCIT"},
                    {"id": "ICD10", "name": "ICD-10", "namespacePrefix": "ICD10",
                     "url": "https://icd.who.int/browse10"},
                    {"id": "SNOMEDCT", "name": "SNOMED CT", "namespacePrefix": "SNOMEDCT",
                     "url": "http://snomed.info/sct"},
                    {"id": "ATC", "name": "Anatomical Therapeutic Chemical classification",
                     "namespacePrefix": "ATC", "url": "https://www.whocc.no/atc_ddd_index/"},
                ],
            },
        }  # fmt: skip

    # ------------------------------------------------------------------ queries

    def datasets(self) -> list[dict[str, Any]]:
        """The node's datasets (cached for a second: every query needs them)."""
        cached = self._datasets
        if cached is not None and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        with self.store.reading() as con:
            rows = con.execute(
                "SELECT id, name, description, access_level, created_at FROM dataset ORDER BY id"
            ).fetchall()
        out = [
            {"id": r[0], "name": r[1], "description": r[2], "access_level": r[3],
             "created_at": r[4]}
            for r in rows
        ]  # fmt: skip
        self._datasets = (time.monotonic(), out)
        return out

    def query(
        self,
        entry: str,
        request: BeaconRequest,
        granted: set[str],
        entry_id: str | None = None,
        via: str | None = None,
        requester: str = "anonymous",
    ) -> dict[str, Any]:
        """Answer one entry-type request; ``via`` is the entry type of ``entry_id``
        for cross-links (``/individuals/{id}/g_variants``). ``requester`` is who pays for
        a released count (the researcher of a hub task, or the caller's address)."""
        if entry not in ENTRY_TYPES:
            raise BeaconError(f"unknown entry type {entry!r}", 404)
        started = time.perf_counter()
        q = request.query
        requested = q.requestedGranularity
        page = q.pagination
        if page.limit > self.config.max_limit:
            raise BeaconError(f"pagination.limit: at most {self.config.max_limit}")
        datasets = self.datasets()
        wanted = q.requestParameters.get("datasets")  # a list: see flatten_parameters
        scopes = [
            _Scope(d["id"], "record" if d["id"] in granted
                   else self.config.level_caps.get(d["access_level"], "boolean"))
            for d in datasets
            if not wanted or d["id"] in wanted
        ]  # fmt: skip
        if entry in ("cohorts", "datasets"):
            return self._collections(entry, request, scopes, datasets, entry_id)
        sql = _Sql(entry, q, entry_id, via)
        key = query_hash(entry, q, entry_id, via, [s.dataset for s in scopes])
        counts = sql.counts(self.store)
        for s in scopes:
            s.count = counts.get(s.dataset, 0)
        granted_scopes = [s for s in scopes if s.cap == "record"]
        granted_total = sum(s.count for s in granted_scopes)
        # Everything about datasets the caller holds no grant for -- exists, a count, even
        # the granularity returned -- comes from one released (noisy, rounded, thresholded)
        # count, charged and rate-limited like a search: an exact "exists" would single out
        # a patient by binary search (issue 17).
        open_scopes = [s for s in scopes if s.cap != "record"]
        open_total: int | None = None
        withheld: str | None = None
        if open_scopes:
            withheld = self.charge(requester, key)
            if not withheld:
                open_total = self.release(key, "total", sum(s.count for s in open_scopes))
        summary: dict[str, Any] = {"exists": granted_total > 0 or open_total is not None}
        response: dict[str, Any] | None = None
        # The cap is the lowest of the datasets asked, never of those that matched: which
        # datasets matched is exactly what must not show.
        cap = min((s.cap for s in open_scopes), key=ORDER.__getitem__, default="record")
        if requested == "record" and granted_total:
            returned: Granularity = "record"
            result_sets = []
            for s in granted_scopes:
                include = q.includeResultsetResponses
                if (
                    include == "NONE"
                    or (include == "HIT" and not s.count)
                    or (include == "MISS" and s.count)
                ):
                    continue
                results = (
                    sql.records(self.store, s.dataset, page.skip, page.limit) if s.count else []
                )
                result_sets.append({"id": s.dataset, "setType": "dataset", "exists": s.count > 0,
                                    "resultsCount": s.count, "results": results})  # fmt: skip
            others = open_total if cap != "boolean" else None
            summary["numTotalResults"] = granted_total + (others or 0)
            response = {"resultSets": result_sets}
        else:
            returned = _granularity_min(_granularity_min(requested, "count"), cap)
            if returned == "count":
                if open_scopes and open_total is None:
                    returned = "boolean"  # withheld (below the minimum, or budget spent)
                else:
                    summary["numTotalResults"] = granted_total + (open_total or 0)
        out: dict[str, Any] = {
            "meta": {
                **self.meta(entry),
                "returnedGranularity": returned,
                "receivedRequestSummary": self._received(request, entry),
                "testMode": q.testMode,
            },
            "responseSummary": summary,
            "info": {"queryMilliseconds": round((time.perf_counter() - started) * 1000, 2)},
        }
        if withheld:
            out["info"]["disclosure"] = f"count withheld: {withheld}"
        elif open_scopes and open_total is None:
            out["info"]["disclosure"] = (
                f"datasets without a grant answer 'exists' only for a count of at least "
                f"{self.limits.min_count} after noise and rounding"
            )
        if response is not None:
            out["response"] = response
        return out

    def _collections(
        self,
        entry: str,
        request: BeaconRequest,
        scopes: list[_Scope],
        datasets: list[dict[str, Any]],
        entry_id: str | None,
    ) -> dict[str, Any]:
        """Datasets and cohorts: catalogue metadata (public), sizes as disclosure allows."""
        if request.query.filters:
            raise BeaconError(f"filters are not supported on {entry}")
        by_id = {d["id"]: d for d in datasets}
        # A dataset's size is the subjects count of an unconstrained search, released with
        # the same cached draw as there (and in node.info and the catalogue).
        max_studies = self.limits.max_studies_per_subject
        sizes = {c.dataset_id: c for c in self.store.search_counts(EVERYONE, max_studies)}
        collections = []
        for s in scopes:
            d = by_id[s.dataset]
            if entry_id is not None and d["id"] != entry_id:
                continue
            size = self.dataset_size(sizes.get(d["id"]) or DatasetCounts(d["id"]))
            info = {"accessLevel": d["access_level"]}
            if entry == "datasets":
                item: dict[str, Any] = {"id": d["id"], "name": d["name"],
                                        "description": d["description"] or d["name"],
                                        "info": info}  # fmt: skip
                if d["created_at"] is not None:
                    item["createDateTime"] = d["created_at"].isoformat()
            else:
                item = {"id": d["id"], "name": d["name"], "cohortType": "beacon-defined",
                        "cohortDesign": _ontology_term("OGMS:0000085", "observational study"),
                        "info": info}  # fmt: skip
            if size is not None:
                item["cohortSize" if entry == "cohorts" else "info"] = (
                    size if entry == "cohorts" else {**info, "individuals": size}
                )
            collections.append(item)
        page = request.query.pagination
        shown = collections[page.skip : page.skip + page.limit] if page.limit else collections
        return {
            "meta": {
                **self.meta(entry),
                "returnedGranularity": "record",
                "receivedRequestSummary": self._received(request, entry),
            },
            "responseSummary": {"exists": bool(collections), "numTotalResults": len(collections)},
            "response": {"collections": shown},
        }


# ---------------------------------------------------------------------- SQL building


class _Sql:
    """The SQL for one entry-type request: a patient filter, variant parameters, an id."""

    def __init__(self, entry: str, q: RequestQuery, entry_id: str | None, via: str | None) -> None:
        self.entry = entry
        self.params: list[Any] = []
        self.patient_where = self._filters(q.filters)
        self.variant_where = (
            self._variant(q.requestParameters)
            if entry == "g_variants" or (via is None and _has_variant_params(q.requestParameters))
            else ""
        )
        self.entry_id, self.via = entry_id, via or entry

    # -- filters

    def _filters(self, filters: list[Filter | str]) -> str:
        clauses = []
        for raw in filters:
            f = Filter(id=raw) if isinstance(raw, str) else raw
            clauses.append(self._filter(f))
        return " AND ".join(clauses)

    def _filter(self, f: Filter) -> str:
        if f.operator is not None or f.value is not None:
            return self._alphanumeric(f)
        prefix, _, code = f.id.partition(":")
        prefix = prefix.upper()
        if f.id in SEX_BY_TERM:
            self.params.append(SEX_BY_TERM[f.id])
            return "p.sex = ?"
        if prefix in ("ICD10", "ICD10CM") and code:
            return self._disease_code("d.icd10", code, f.includeDescendantTerms)
        if prefix in ("ICDO3", "ICD-O-3") and code:
            column = "d.morphology" if "/" in code or code[:1].isdigit() else "d.topography"
            return self._disease_code(column, code, f.includeDescendantTerms)
        if prefix in ("SNOMEDCT", "SNOMED", "SCTID") and code:
            self.params.append(code)
            clause = "d.site_snomed = ?"
            site = next((k for k, v in SITE_SNOMED.items() if v == code), None)
            if site and f.includeDescendantTerms:
                prefixes = [icd for icd, s in ICD10_SITE.items() if s == site]
                for icd in prefixes:
                    self.params.append(f"{icd}%")
                clause = "(" + " OR ".join([clause] + ["d.icd10 LIKE ?"] * len(prefixes)) + ")"
            return f"p.id IN (SELECT d.patient_id FROM disease d WHERE {clause})"
        if prefix == "ATC" and code:
            self.params.append(f"{code}%" if f.includeDescendantTerms else code)
            op = "LIKE" if f.includeDescendantTerms else "="
            return f"p.id IN (SELECT t.patient_id FROM treatment t WHERE t.code {op} ?)"
        raise BeaconError(
            f"filter {f.id!r} is not known here: see /filtering_terms for the ontology terms "
            "(NCIT sex terms, ICD10:, ICDO3:, SNOMEDCT:, ATC:) and alphanumeric filters"
        )

    def _disease_code(self, column: str, code: str, descendants: bool) -> str:
        if descendants:
            self.params.extend([code, f"{code}.%" if "." not in code else f"{code}%"])
            where = f"({column} = ? OR {column} LIKE ?)"
        else:
            self.params.append(code)
            where = f"{column} = ?"
        return f"p.id IN (SELECT d.patient_id FROM disease d WHERE {where})"

    def _alphanumeric(self, f: Filter) -> str:
        spec = ALPHANUMERIC.get(f.id)
        if spec is None:
            raise BeaconError(
                f"filter {f.id!r}: not an alphanumeric filter here; known: "
                f"{', '.join(sorted(ALPHANUMERIC))}"
            )
        expr, kind, _ = spec
        op = OPERATORS.get(f.operator or "=")
        if op is None or f.value is None:
            raise BeaconError(
                f"filter {f.id!r}: expected an operator among {', '.join(OPERATORS)} and a value"
            )
        value: Any = f.value
        if kind == "age":
            value = _years(f.id, value)
        elif kind.endswith("number"):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise BeaconError(f"filter {f.id!r}: expected a number, got {value!r}") from None
        else:
            value = str(value)
        if isinstance(value, str) and "%" in value and op in ("=", "<>"):
            op = "LIKE" if op == "=" else "NOT LIKE"
        self.params.append(value)
        table = kind.split("-")[0]
        sub = {
            "disease": ("disease", "d"),
            "treatment": ("treatment", "t"),
            "outcome": ("outcome", "o"),
            "biomarker": ("biomarker", "b"),
        }.get(table)
        if sub is None:
            return f"{expr} {op} ?"
        return f"p.id IN (SELECT {sub[1]}.patient_id FROM {sub[0]} {sub[1]} WHERE {expr} {op} ?)"

    # -- variants

    def _variant(self, rp: dict[str, Any]) -> str:
        clauses = []
        name = rp.get("referenceName")
        start, end = _positions(rp.get("start")), _positions(rp.get("end"))
        gene = rp.get("geneId")
        if name is None and (start or end or rp.get("alternateBases") or rp.get("referenceBases")):
            raise BeaconError("requestParameters: a position query needs referenceName")
        if name is not None:
            from oncofed.node.ingest.vcf import normalise_chrom

            clauses.append("v.chrom = ?")
            self.params.append(normalise_chrom(str(name)))
            clauses.append(self._positions(start, end))
        for key, column in (("referenceBases", "v.ref"), ("alternateBases", "v.alt")):
            bases = rp.get(key)
            if bases in (None, "", "N"):
                continue
            if not re.fullmatch(r"[ACGTUNRYSWKMBDHV.\-]+", str(bases).upper()):
                raise BeaconError(f"requestParameters.{key}: expected bases, got {bases!r}")
            pattern = str(bases).upper()
            if "N" in pattern:
                clauses.append(f"{column} LIKE ?")
                self.params.append(pattern.replace("N", "_"))
            else:
                clauses.append(f"{column} = ?")
                self.params.append(pattern)
        if rp.get("variantType"):
            clauses.append("v.variant_type = ?")
            self.params.append(str(rp["variantType"]).upper())
        if rp.get("assemblyId"):
            from oncofed.node.ingest.vcf import normalise_assembly

            clauses.append("v.assembly = ?")
            self.params.append(normalise_assembly(str(rp["assemblyId"])))
        if gene:
            clauses.append("v.id IN (SELECT g.variant_id FROM variant_gene g WHERE g.gene = ?)")
            self.params.append(str(gene))
        if rp.get("aminoacidChange"):
            clauses.append("(v.hgvs_p = ? OR v.hgvs_p = ? OR v.hgvs_p = ?)")
            change = str(rp["aminoacidChange"]).removeprefix("p.")
            self.params += [change, f"p.{change}", f"p.{protein_three_letter(change)}"]
        if rp.get("variantInternalId"):
            clauses.append("v.id = ?")
            self.params.append(str(rp["variantInternalId"]))
        return " AND ".join(clauses)

    def _positions(self, start: list[int], end: list[int]) -> str:
        """Where the variant lies, in the model's 0-based half-open coordinates.

        A variant spans ``[pos - 1, pos - 1 + len(ref))``. ``start`` alone: a sequence query
        at that position. One ``start`` and one ``end``: a range query, any variant that
        overlaps ``[start, end)`` (a deletion that starts before the range included, as
        ``bcftools view -r`` does). Two of each: a bracket query, the variant starting in
        ``[start[0], start[1])`` and ending in ``[end[0], end[1])``.
        """
        if not start:
            raise BeaconError("requestParameters.start: required with referenceName")
        span_end = "(v.pos - 1 + length(v.ref))"
        if not end:
            if len(start) != 1:
                raise BeaconError("requestParameters: a bracket query needs two end values too")
            self.params.append(start[0] + 1)
            return "v.pos = ?"
        if len(start) != len(end):
            raise BeaconError(
                "requestParameters: give one start and one end (a range) or two of each "
                f"(a bracket), not {len(start)} and {len(end)}"
            )
        if len(start) == 1:
            if end[0] <= start[0]:
                raise BeaconError("requestParameters.end: must be greater than start")
            # pos - 1 < end as a plain column bound, so the store's zone maps prune
            self.params += [end[0], start[0]]
            return f"v.pos <= ? AND {span_end} > ?"
        for name, pair in (("start", start), ("end", end)):
            if pair[1] < pair[0]:
                raise BeaconError(f"requestParameters.{name}: [min, max] with min <= max")
        self.params += [start[0] + 1, start[1], end[0], end[1]]
        return f"v.pos >= ? AND v.pos <= ? AND {span_end} >= ? AND {span_end} < ?"

    # -- statements

    def _patients(self) -> str:
        where = self.patient_where or "TRUE"
        return f"SELECT p.id FROM patient p WHERE {where}"

    def _base(self) -> tuple[str, list[Any]]:
        """FROM/WHERE producing (dataset_id, key) rows of the entry type, and its params."""
        params = list(self.params)
        id_clause, id_params = self._id_clause()
        if self.entry == "g_variants":
            where = [self.variant_where or "TRUE"]
            if self.patient_where or self.via != "g_variants":
                sub = "SELECT 1 FROM variant_call c WHERE c.variant_id = v.id " \
                      "AND c.dataset_id = vd.dataset_id"  # fmt: skip
                if self.patient_where:
                    sub += f" AND c.patient_id IN ({self._patients()})"
                if self.via != "g_variants":
                    sub += f" AND {id_clause}"
                where.append(f"EXISTS ({sub})")
            elif id_clause:
                where.append(id_clause.replace("c.variant_id", "v.id"))
            return (
                "FROM variant v JOIN variant_dataset vd ON vd.variant_id = v.id "
                f"WHERE {' AND '.join(where)}",
                params + id_params,
            )
        if self.entry == "individuals":
            src = "FROM patient p"
            key_ds = "p.dataset_id"
            where = [self.patient_where or "TRUE"]
            if self.variant_where:
                where.append(
                    "p.id IN (SELECT c.patient_id FROM variant_call c JOIN variant v "
                    f"ON v.id = c.variant_id WHERE {self.variant_where})"
                )
            if id_clause:
                where.append(id_clause)
            del key_ds
            return f"{src} WHERE {' AND '.join(where)}", params + id_params
        # biosamples, runs, analyses: one per biosample (a run and an analysis per sample)
        where = [f"b.patient_id IN ({self._patients()})" if self.patient_where else "TRUE"]
        if self.variant_where:
            where.append(
                "b.id IN (SELECT c.biosample_id FROM variant_call c JOIN variant v "
                f"ON v.id = c.variant_id WHERE {self.variant_where})"
            )
        if self.entry in ("runs", "analyses"):
            where.append("EXISTS (SELECT 1 FROM variant_call c WHERE c.biosample_id = b.id)")
        if id_clause:
            where.append(id_clause)
        return (
            f"FROM biosample b JOIN patient p ON p.id = b.patient_id WHERE {' AND '.join(where)}",
            params + id_params,
        )

    def _id_clause(self) -> tuple[str, list[Any]]:
        if self.entry_id is None:
            return "", []
        via, e, i = self.via, self.entry, self.entry_id
        if e == "g_variants":
            column = {"g_variants": "c.variant_id", "individuals": "c.patient_id"}.get(
                via, "c.biosample_id"
            )
            return f"{column} = ?", [_strip_run(i)]
        if e == "individuals":
            if via == "individuals":
                return "p.id = ?", [i]
            if via == "g_variants":
                return "p.id IN (SELECT patient_id FROM variant_call WHERE variant_id = ?)", [i]
            return "p.id IN (SELECT patient_id FROM biosample WHERE id = ?)", [_strip_run(i)]
        if via == "individuals":
            return "b.patient_id = ?", [i]
        if via == "g_variants":
            return "b.id IN (SELECT biosample_id FROM variant_call WHERE variant_id = ?)", [i]
        return "b.id = ?", [_strip_run(i)]

    def _dataset_column(self) -> str:
        return {
            "g_variants": "vd.dataset_id",
            "individuals": "p.dataset_id",
        }.get(self.entry, "coalesce(b.dataset_id, p.dataset_id)")

    def _key(self) -> str:
        return {"g_variants": "v.id", "individuals": "p.id"}.get(self.entry, "b.id")

    def counts(self, store: NodeStore) -> dict[str, int]:
        base, params = self._base()
        # One row per (entry, dataset) by construction: count(*) needs no DISTINCT.
        sql = f"SELECT {self._dataset_column()}, count(*) {base} GROUP BY 1"
        with store.reading() as con:
            return {r[0]: int(r[1]) for r in con.execute(sql, params).fetchall()}

    def records(
        self, store: NodeStore, dataset: str, skip: int, limit: int
    ) -> list[dict[str, Any]]:
        base, params = self._base()
        ds = self._dataset_column()
        if self.entry == "g_variants":
            sql = f"SELECT v.id {base} AND {ds} = ? ORDER BY v.chrom, v.pos, v.id LIMIT ? OFFSET ?"
        else:
            key = self._key()
            sql = f"SELECT {key} {base} AND {ds} = ? ORDER BY 1 LIMIT ? OFFSET ?"
        with store.reading() as con:
            keys = [r[0] for r in con.execute(sql, [*params, dataset, limit, skip]).fetchall()]
            if not keys:
                return []
            build = {
                "g_variants": _variant_records,
                "individuals": _individual_records,
                "biosamples": _biosample_records,
                "runs": _run_records,
                "analyses": _analysis_records,
            }[self.entry]
            return build(con, keys, dataset)


def query_hash(
    entry: str, q: RequestQuery, entry_id: str | None, via: str | None, datasets: list[str]
) -> str:
    """The canonical form of what a request counts (paging and granularity excluded)."""
    canonical = json.dumps(
        {
            "entry": entry, "id": entry_id, "via": via, "datasets": sorted(datasets),
            "parameters": q.requestParameters,
            "filters": sorted(
                json.dumps(f if isinstance(f, str) else f.model_dump(), sort_keys=True)
                for f in q.filters
            ),
        },
        sort_keys=True, default=str,
    )  # fmt: skip
    return "beacon:" + hashlib.sha256(canonical.encode()).hexdigest()


def everyone_hash() -> str:
    return ast_query_hash(EVERYONE)


def _has_variant_params(rp: dict[str, Any]) -> bool:
    return any(k in rp for k in VARIANT_PARAMETERS)


AMINO_ACIDS = {
    "A": "Ala", "R": "Arg", "N": "Asn", "D": "Asp", "C": "Cys", "Q": "Gln", "E": "Glu",
    "G": "Gly", "H": "His", "I": "Ile", "L": "Leu", "K": "Lys", "M": "Met", "F": "Phe",
    "P": "Pro", "S": "Ser", "T": "Thr", "W": "Trp", "Y": "Tyr", "V": "Val", "*": "Ter",
}  # fmt: skip


def protein_three_letter(change: str) -> str:
    """'V600E' → 'Val600Glu' (HGVS p. as SnpEff and VEP write it); other text unchanged."""
    m = re.fullmatch(r"([A-Z*])(\d+)([A-Z*])", change)
    if m is None:
        return change
    return f"{AMINO_ACIDS[m.group(1)]}{m.group(2)}{AMINO_ACIDS[m.group(3)]}"


def _strip_run(value: str) -> str:
    for prefix in ("run-", "analysis-"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def _positions(value: Any) -> list[int]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    try:
        return [int(v) for v in items]
    except (TypeError, ValueError):
        raise BeaconError(f"requestParameters: positions must be integers, got {value!r}") from None


def _years(name: str, value: Any) -> float:
    text = str(value).strip()
    m = DURATION.match(text)
    if m and any(m.groups()):
        y, mo, d = (int(g or 0) for g in m.groups())
        return y + mo / 12 + d / 365.25
    try:
        return float(text)
    except ValueError:
        raise BeaconError(
            f"filter {name!r}: expected an ISO 8601 duration like P70Y, got {value!r}"
        ) from None


# ---------------------------------------------------------------------- record builders


def _variant_records(con: Any, keys: list[str], dataset: str) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT id, chrom, pos, ref, alt, variant_type, gene, consequence, hgvs_p, assembly "
        "FROM variant WHERE list_contains(?, id) ORDER BY chrom, pos, id",
        [keys],
    ).fetchall()
    genes: dict[str, list[str]] = {}
    for vid, gene in con.execute(
        "SELECT variant_id, gene FROM variant_gene WHERE list_contains(?, variant_id)", [keys]
    ).fetchall():
        genes.setdefault(vid, []).append(gene)
    calls: dict[str, list[dict[str, Any]]] = {}
    for vid, bs, pid, gt, zyg in con.execute(
        "SELECT variant_id, biosample_id, patient_id, genotype, zygosity FROM variant_call "
        "WHERE list_contains(?, variant_id) AND dataset_id = ? ORDER BY biosample_id",
        [keys, dataset],
    ).fetchall():
        term = ZYGOSITY.get(zyg or "", ("GENO:GENO_0000137", "unspecified zygosity"))
        calls.setdefault(vid, []).append({
            "biosampleId": bs, "individualId": pid, "runId": f"run-{bs}",
            "analysisId": f"analysis-{bs}", "zygosity": {"id": term[0], "label": gt or term[1]},
        })  # fmt: skip
    out = []
    for vid, chrom, pos, ref, alt, vtype, gene, consequence, hgvs_p, assembly in rows:
        hgvs = f"{chrom}:g.{pos}{ref}>{alt}"
        record: dict[str, Any] = {
            "variantInternalId": vid,
            "variation": {
                "variantType": vtype,
                "referenceBases": ref,
                "alternateBases": alt,
                "location": {
                    "type": "SequenceLocation",
                    "sequence_id": f"HGVSid:{hgvs}",
                    "interval": {
                        "type": "SequenceInterval",
                        "start": {"type": "Number", "value": pos - 1},
                        "end": {"type": "Number", "value": pos - 1 + len(ref)},
                    },
                },
            },
            "identifiers": {"genomicHGVSId": hgvs},
            "caseLevelData": calls.get(vid, []),
            "info": {"assemblyId": assembly, "referenceName": chrom},
        }
        gene_ids = genes.get(vid) or ([gene] if gene else [])
        if gene_ids or consequence:
            attrs: dict[str, Any] = {"geneIds": gene_ids}
            if consequence:
                attrs["molecularEffects"] = [
                    _ontology_term(CONSEQUENCE_SO.get(consequence, "SO:0001060"), consequence)
                ]
            if hgvs_p:
                attrs["aminoacidChanges"] = [hgvs_p]
            record["molecularAttributes"] = attrs
        out.append(record)
    return out


def _individual_records(con: Any, keys: list[str], dataset: str) -> list[dict[str, Any]]:
    del dataset
    rows = con.execute(
        "SELECT id, sex FROM patient WHERE list_contains(?, id) ORDER BY id", [keys]
    ).fetchall()
    diseases: dict[str, list[dict[str, Any]]] = {}
    for pid, icd10, topo, morph, site, age, stage in con.execute(
        "SELECT patient_id, icd10, topography, morphology, site_snomed, age_at_diagnosis, "
        "stage_group FROM disease WHERE list_contains(?, patient_id)",
        [keys],
    ).fetchall():
        code = (
            _ontology_term(f"ICD10:{icd10}", icd10) if icd10
            else _ontology_term(f"SNOMEDCT:{site}", site) if site
            else _ontology_term(f"ICDO3:{topo or morph}", topo or morph)
        )  # fmt: skip
        disease: dict[str, Any] = {"diseaseCode": code}
        if age is not None:
            disease["ageOfOnset"] = {"iso8601duration": f"P{int(age)}Y"}
        if stage:
            disease["stage"] = _ontology_term(f"AJCC:{stage}", f"stage {stage}")
        notes = {k: v for k, v in (("topography", topo), ("morphology", morph)) if v}
        if notes:
            disease["notes"] = ", ".join(f"ICD-O-3 {k} {v}" for k, v in notes.items())
        diseases.setdefault(pid, []).append(disease)
    treatments: dict[str, list[dict[str, Any]]] = {}
    for pid, kind, agent, code, system in con.execute(
        "SELECT patient_id, kind, agent, code, code_system FROM treatment "
        "WHERE list_contains(?, patient_id)",
        [keys],
    ).fetchall():
        prefix = (
            "ATC"
            if system and "atc" in system.lower()
            else "SNOMEDCT"
            if system and "snomed" in system.lower()
            else "oncofed"
        )
        term = _ontology_term(f"{prefix}:{code}" if code else f"oncofed:{kind}", agent or kind)
        treatments.setdefault(pid, []).append({"treatmentCode": term})
    out = []
    for pid, sex in rows:
        term_id, label = SEX_TERMS.get(sex or "unknown", SEX_TERMS["unknown"])
        record: dict[str, Any] = {"id": pid, "sex": _ontology_term(term_id, label)}
        if pid in diseases:
            record["diseases"] = diseases[pid]
        if pid in treatments:
            record["treatments"] = treatments[pid]
        out.append(record)
    return out


def _biosample_rows(con: Any, keys: list[str]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = con.execute(
        "SELECT id, patient_id, sample_type, collection_day FROM biosample "
        "WHERE list_contains(?, id) ORDER BY id",
        [keys],
    ).fetchall()
    return rows


def _biosample_records(con: Any, keys: list[str], dataset: str) -> list[dict[str, Any]]:
    del dataset
    out = []
    for bid, pid, kind, day in _biosample_rows(con, keys):
        status = (
            _ontology_term("EFO:0009655", "abnormal sample") if kind == "tumour"
            else _ontology_term("EFO:0009654", "reference sample") if kind in ("normal", "blood")
            else _ontology_term("EFO:0009656", "neoplastic sample" if kind else "sample")
        )  # fmt: skip
        record: dict[str, Any] = {
            "id": bid, "individualId": pid, "biosampleStatus": status,
            "sampleOriginType": _ontology_term("OBI:0001479", "specimen from organism"),
        }  # fmt: skip
        if day is not None:
            record["info"] = {"collectionDayFromDiagnosis": day}
        out.append(record)
    return out


def _run_records(con: Any, keys: list[str], dataset: str) -> list[dict[str, Any]]:
    del dataset
    return [
        {"id": f"run-{bid}", "biosampleId": bid, "individualId": pid, "runDate": "1970-01-01",
         "info": {"note": "run date not recorded at ingest"}}
        for bid, pid, _, _ in _biosample_rows(con, keys)
    ]  # fmt: skip


def _analysis_records(con: Any, keys: list[str], dataset: str) -> list[dict[str, Any]]:
    del dataset
    return [
        {"id": f"analysis-{bid}", "runId": f"run-{bid}", "biosampleId": bid,
         "individualId": pid, "analysisDate": "1970-01-01", "pipelineName": "vcf-import",
         "info": {"note": "analysis date not recorded at ingest"}}
        for bid, pid, _, _ in _biosample_rows(con, keys)
    ]  # fmt: skip
