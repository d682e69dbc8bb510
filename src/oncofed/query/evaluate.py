"""A plain-Python evaluator of canonical queries over rows held in memory.

It is the reference the SQL compiler is tested against (property tests over random cohorts
and random queries) and is written from the semantics in :mod:`oncofed.query.compile`'s
docstring, sharing only the vocabulary with it. It is slow by design: clarity over speed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from oncofed.query.ast import Condition, Operation, Range, value_list
from oncofed.query.counts import Cursor, DatasetCounts
from oncofed.query.vocabulary import BODY_PART, KEYS_BY_NAME, KeySpec, body_part_term

Row = dict[str, Any]
Node = Operation | Condition


@dataclass
class Cohort:
    """The rows of a node store that search reads, grouped by patient."""

    datasets: dict[str, tuple[str, str]] = field(default_factory=dict)
    patients: list[Row] = field(default_factory=list)
    # table name -> patient id -> rows
    rows: dict[str, dict[str, list[Row]]] = field(default_factory=dict)

    def records(self, table: str, patient_id: str) -> list[Row]:
        return self.rows.get(table, {}).get(patient_id, [])


def _fetch(con: Cursor, sql: str) -> list[Row]:
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


def load_cohort(con: Cursor) -> Cohort:
    """Read every searched table of a node store into memory."""
    cohort = Cohort()
    for r in _fetch(con, "SELECT id, name, description FROM dataset"):
        cohort.datasets[r["id"]] = (r["name"], r["description"] or "")
    cohort.patients = _fetch(con, "SELECT * FROM patient ORDER BY id")
    tables = {
        "disease": "SELECT * FROM disease",
        "imaging_series": "SELECT * FROM imaging_series",
        "imaging_study": "SELECT * FROM imaging_study",
        "treatment": "SELECT * FROM treatment",
        "outcome": "SELECT * FROM outcome",
        "biomarker": "SELECT * FROM biomarker",
        "variant": "SELECT c.patient_id, v.* FROM variant_call c JOIN variant v "
        "ON v.id = c.variant_id",
    }
    for table, sql in tables.items():
        by_patient: dict[str, list[Row]] = defaultdict(list)
        for row in _fetch(con, sql):
            by_patient[row["patient_id"]].append(row)
        cohort.rows[table] = dict(by_patient)
    _ages_from_studies(cohort)
    return cohort


def _ages_from_studies(cohort: Cohort) -> None:
    """The age key's rule: a patient with no age at diagnosis is aged at the first study
    (on every disease record, or on a record of its own when there is none)."""
    diseases = cohort.rows["disease"]
    for patient in cohort.patients:
        pid = patient["id"]
        ages = [
            s["age_at_study"]
            for s in cohort.records("imaging_study", pid)
            if s["age_at_study"] is not None
        ]
        records = diseases.get(pid, [])
        if not ages or any(d["age_at_diagnosis"] is not None for d in records):
            continue
        if records:
            for d in records:
                d["age_at_diagnosis"] = min(ages)
        else:
            diseases[pid] = [{"patient_id": pid, "age_at_diagnosis": min(ages)}]


_TABLE = {
    "disease": "disease",
    "series": "imaging_series",
    "treatment": "treatment",
    "outcome": "outcome",
    "variant": "variant",
    "biomarker": "biomarker",
}


# ------------------------------------------------------------------------------------------
# One condition against one record
# ------------------------------------------------------------------------------------------


def _like(pattern: str, text: str) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _stage_matches(stored: str, wanted: str) -> bool:
    return stored == wanted or (
        len(stored) == len(wanted) + 1 and stored.startswith(wanted) and stored[-1] in "ABCD"
    )


def _bare_chrom(chrom: str) -> str:
    c = chrom.upper()
    c = c[3:] if c.startswith("CHR") else c
    return "M" if c == "MT" else c


def condition_holds(spec: KeySpec, cond: Condition, row: Row) -> bool:
    """Whether a record satisfies a positive condition."""
    values = cond.value if isinstance(cond.value, list) else [cond.value]
    if spec.kind == "variant":
        for v in values:
            parts = str(v).split(":")
            assembly = parts.pop(0) if len(parts) == 5 else None
            chrom, pos, ref, alt = parts
            if (
                row["chrom"] is not None
                and _bare_chrom(row["chrom"]) == _bare_chrom(chrom)
                and row["pos"] == int(pos)
                and (row["ref"] or "").upper() == ref
                and (row["alt"] or "").upper() == alt
                and (assembly is None or (row["assembly"] or "").lower() == assembly.lower())
            ):
                return True
        return False
    if spec.code_match == "diagnosis":
        for c in spec.codes:
            if c.code not in values:
                continue
            for m in c.match:
                if m.startswith("C"):
                    if any(
                        (row.get(col) or "").upper().startswith(m)
                        for col in ("topography", "icd10")
                    ):
                        return True
                elif row.get(spec.column) == m:
                    return True
        return False
    stored = row.get(spec.column)
    if stored is None:
        return False
    if spec.kind == "number":
        x = float(stored)
        if isinstance(cond.value, Range):
            lo, hi = cond.value.min, cond.value.max
            return (lo is None or x >= lo) and (hi is None or x <= hi)
        assert isinstance(cond.value, int | float)
        target = float(cond.value)
        return {"EQUALS": x == target, "LOWER_THAN": x < target, "GREATER_THAN": x > target}[
            cond.type
        ]
    text = str(stored)
    if spec.kind == "code":
        codes = [c for c in spec.codes if c.code in values]
        if spec.code_match == "like":
            return any(_like(m, text.lower()) for c in codes for m in c.match)
        if spec is BODY_PART:
            text = body_part_term(text)
        return text.upper() in {m.upper() for c in codes for m in c.match}
    if spec.kind == "stage":
        return any(_stage_matches(text.upper(), str(v)) for v in values)
    if spec.kind == "hierarchical":
        flat = text.upper().replace(spec.separator, "")
        return any(flat.startswith(str(v).replace(spec.separator, "")) for v in values)
    folded = text.lower() if spec.case == "lower" else text.upper()
    if cond.type == "CONTAINS":
        return str(cond.value) in folded
    return folded in values


# ------------------------------------------------------------------------------------------
# Tree against one patient
# ------------------------------------------------------------------------------------------


def _keys(node: Node) -> set[str]:
    if isinstance(node, Condition):
        return {node.key}
    out: set[str] = set()
    for c in node.children:
        out |= _keys(c)
    return out


def _pairwise_distinct_keys(nodes: Sequence[Node]) -> bool:
    all_keys = [k for n in nodes for k in _keys(n)]
    return len(all_keys) == len(set(all_keys))


def _group_of(node: Node) -> str | None:
    """The one record group a node is about when it can be checked on a single record."""
    if isinstance(node, Condition):
        if node.type == "NOT_EQUALS":
            return None
        return KEYS_BY_NAME[node.key].group
    if not node.children:
        return None
    first = _group_of(node.children[0])
    if first is None or any(_group_of(c) != first for c in node.children[1:]):
        return None
    if node.operand == "AND" and not _pairwise_distinct_keys(node.children):
        return None
    return first


def _on_record(node: Node, row: Row) -> bool:
    if isinstance(node, Condition):
        return condition_holds(KEYS_BY_NAME[node.key], node, row)
    results = [_on_record(c, row) for c in node.children]
    return all(results) if node.operand == "AND" else any(results)


class Evaluator:
    def __init__(self, cohort: Cohort) -> None:
        self.cohort = cohort

    def records(self, group: str, patient: Row) -> list[Row]:
        if group == "patient":
            return [patient]
        table, _, marker = group.partition(":")
        rows = self.cohort.records(_TABLE[table], patient["id"])
        if marker:
            names = set(KEYS_BY_NAME["oncofed:marker:" + marker].marker_names)
            rows = [r for r in rows if (r.get("name") or "").upper() in names]
        return rows

    def some_record(self, group: str, nodes: Sequence[Node], patient: Row) -> bool:
        return any(all(_on_record(n, row) for n in nodes) for row in self.records(group, patient))

    def matches(self, node: Node, patient: Row) -> bool:
        if isinstance(node, Operation) and not node.children:
            return True
        group = _group_of(node)
        if group is not None:
            return self.some_record(group, [node], patient)
        if isinstance(node, Condition):  # NOT_EQUALS: no record has the value
            values = value_list(node.value)
            pos = (
                Condition(key=node.key, type="EQUALS", value=values[0])
                if len(values) == 1
                else Condition(key=node.key, type="IN", value=values)
            )
            return not self.some_record(KEYS_BY_NAME[node.key].group, [pos], patient)
        if node.operand == "OR":
            return any(self.matches(c, patient) for c in node.children)
        by_group: dict[str, list[Node]] = defaultdict(list)
        for child in node.children:
            g = _group_of(child)
            if g is None:
                if not self.matches(child, patient):
                    return False
            else:
                by_group[g].append(child)
        for g, members in by_group.items():
            if _pairwise_distinct_keys(members):
                if not self.some_record(g, members, patient):
                    return False
            elif not all(self.some_record(g, [m], patient) for m in members):
                return False
        return True


def series_criteria(op: Operation) -> list[list[Node]]:
    """The groups of series-level criteria the query asks a single series to satisfy."""
    found: list[list[Node]] = []

    def walk(node: Node) -> None:
        if isinstance(node, Operation) and not node.children:
            return
        group = _group_of(node)
        if group is not None:
            if group == "series":
                found.append([node])
            return
        if isinstance(node, Condition):
            return
        if node.operand == "OR":
            for c in node.children:
                walk(c)
            return
        local: dict[str, list[Node]] = defaultdict(list)
        for c in node.children:
            g = _group_of(c)
            if g is None:
                walk(c)
            else:
                local[g].append(c)
        members = local.get("series", [])
        if members and _pairwise_distinct_keys(members):
            found.append(members)
        else:
            found.extend([m] for m in members)

    walk(op)
    return found


def evaluate_counts(
    op: Operation, cohort: Cohort, max_studies: int | None = None
) -> list[DatasetCounts]:
    """The same raw counts as :func:`oncofed.query.counts.count_matches`, in Python."""
    ev = Evaluator(cohort)
    criteria = series_criteria(op)
    out: dict[str, DatasetCounts] = {
        i: DatasetCounts(i, n, d) for i, (n, d) in cohort.datasets.items()
    }
    studies: dict[str, set[str]] = defaultdict(set)
    clipped: dict[str, int] = defaultdict(int)  # each subject's studies, at most max_studies
    modality_subjects: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    part_subjects: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for patient in cohort.patients:
        if not ev.matches(op, patient):
            continue
        ds = patient["dataset_id"]
        entry = out.setdefault(ds, DatasetCounts(ds, ds))
        entry.subjects += 1
        entry.gender[patient["sex"]] = entry.gender.get(patient["sex"], 0) + 1
        ages = [
            d["age_at_diagnosis"]
            for d in cohort.records("disease", patient["id"])
            if d["age_at_diagnosis"] is not None
        ]
        if ages:
            entry.ages[min(ages)] = entry.ages.get(min(ages), 0) + 1
        own: set[str] = set()
        for s in cohort.records("imaging_series", patient["id"]):
            if criteria and not any(all(_on_record(n, s) for n in c) for c in criteria):
                continue
            own.add(s["study_uid"])
            if s["modality"] is not None:
                modality_subjects[ds][s["modality"].upper()].add(patient["id"])
            if s["body_part"] is not None and body_part_term(s["body_part"]):
                part_subjects[ds][body_part_term(s["body_part"])].add(patient["id"])
        if not criteria:
            own.update(s["uid"] for s in cohort.records("imaging_study", patient["id"]))
        studies[ds] |= own
        if max_studies is not None:
            clipped[ds] += min(len(own), max_studies)
    for ds, entry in out.items():
        entry.studies = len(studies[ds]) if max_studies is None else clipped[ds]
        entry.modalities = {k: len(v) for k, v in modality_subjects[ds].items()}
        entry.body_parts = {k: len(v) for k, v in part_subjects[ds].items()}
    return [out[k] for k in sorted(out)]
