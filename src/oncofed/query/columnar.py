"""Counting queries in memory, over the search index held as numpy columns.

Why: at 100,000 patients the counting statement of :mod:`oncofed.query.compile` costs
DuckDB 20-35 ms of CPU (planning a dozen CTEs and unions, hash semi-joins on every
criterion, distinct aggregates), and a federation runs ten nodes on two cores. The data
searched is small once dictionary-coded (a few megabytes per node), so the node keeps it in
memory per store generation and answers each query with vectorised numpy operations:

- every text column of the search index becomes narrow integer codes plus a dictionary of
  its (already normalised) values; a condition is evaluated once per *distinct value* in
  Python and applied to all rows as a few integer comparisons or a lookup table;
- "some record of the patient satisfies ..." is a scatter of the matching rows' patient
  numbers into a boolean patient mask; ``AND``/``OR``/``NOT`` are mask operations. Where
  the condition is a test of one column's value (most criteria), the mask is the union of
  per-value patient bitmaps, each scattered once per snapshot when a query first needs it;
- counts are ``bincount``s; distinct counts (studies, subjects per modality) use ids of the
  distinct pairs computed at load time and a "seen" bitmap.

The semantics are those of :mod:`oncofed.query.compile` (same tree walk, same row
predicates on the same normalised columns); the property tests hold this module, the SQL
and the reference evaluator together. Counts stay exact: nothing here caches an answer,
only the data.

Freshness: the arrays are loaded from the search index in one DuckDB transaction that also
checks the index against ``store_change``; each query first compares the number of store
changes with the one the arrays were loaded at (one tiny DuckDB query) and reloads when it
moved. Nothing is written, so a crash can leave nothing half-built here.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oncofed.query.ast import Condition, Operation, Range
from oncofed.query.compile import (
    condition_texts,
    disjoint_keys,
    local_group,
    positive,
    stage_pattern,
    variant_parts,
)
from oncofed.query.counts import Cursor, DatasetCounts, index_staleness, rebuild_search_index
from oncofed.query.vocabulary import KEYS_BY_NAME, KeySpec

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
Node = Operation | Condition

# What the per-value patient bitmaps of one snapshot may take (see patients_with).
BITMAP_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class TextColumn:
    """A dictionary-coded text column: ``codes[i]`` is 0 for NULL, else 1 + its value's index."""

    codes: npt.NDArray[np.integer[Any]]  # as narrow as the dictionary allows
    values: tuple[str, ...]

    def matching(self, test: Callable[[str], bool]) -> list[int]:
        """The codes of the values passing ``test`` (run once per distinct value)."""
        return [i for i, value in enumerate(self.values, 1) if test(value)]

    def where(self, test: Callable[[str], bool]) -> Mask:
        """Rows whose value passes ``test`` (NULL never does, as a SQL filter treats it).

        ``test`` runs once per distinct value. Few matching codes are compared directly
        (a pass over narrow integers); more go through a lookup table.
        """
        hits = self.matching(test)
        if not hits:
            return np.zeros(len(self.codes), dtype=np.bool_)
        if len(hits) <= 3:
            result: Mask = self.codes == hits[0]
            for code in hits[1:]:
                result |= self.codes == code
            return result
        lut = np.zeros(len(self.values) + 1, dtype=np.bool_)
        lut[hits] = True
        result = np.take(lut, self.codes)
        return result


@dataclass(frozen=True)
class Table:
    """The rows of one record group: patient number (0-based) and the searched columns."""

    pk: Ints
    text: dict[str, TextColumn]
    numbers: dict[str, npt.NDArray[np.float64]]  # NULL as NaN: every comparison is false

    @property
    def rows(self) -> int:
        return len(self.pk)


# What is read of each index table (the ``sx_*`` tables of oncofed.query.compile).
_SOURCES: dict[str, str] = {
    "patient": "SELECT pk, ds, sex, sex_label, min_age FROM sx_patient ORDER BY pk",
    "disease": "SELECT * FROM sx_disease",
    "series": "SELECT pk, st, modality, body_part, manufacturer FROM sx_series ORDER BY pk",
    "study": "SELECT pk, st FROM sx_study",
    "treatment": "SELECT * FROM sx_treatment",
    "outcome": "SELECT * FROM sx_outcome",
    "biomarker": "SELECT * FROM sx_biomarker",
    "variant": "SELECT * FROM sx_variant",
}
_NOT_SEARCHED = {"ds", "st", "sex_label", "min_age"}


def _table(data: dict[str, Any]) -> Table:
    text: dict[str, TextColumn] = {}
    numbers: dict[str, npt.NDArray[np.float64]] = {}
    for name, raw in data.items():
        if name == "pk" or name in _NOT_SEARCHED:
            continue
        if raw.dtype == object:
            text[name] = _encode(raw)
        else:
            numbers[name] = np.ma.filled(np.ma.asarray(raw, dtype=np.float64), np.nan)
    pk = np.asarray(np.ma.getdata(data["pk"]), dtype=np.int64) - 1
    return Table(pk, text, numbers)


def _encode(raw: Any) -> TextColumn:
    """Dictionary-code an object column from DuckDB (a masked array where it holds NULLs)."""
    data = np.ma.getdata(raw)
    missing = np.ma.getmaskarray(raw)
    lookup: dict[str, int] = {}
    codes = np.fromiter(
        (
            0 if gone or value is None else lookup.setdefault(value, len(lookup) + 1)
            for value, gone in zip(data, missing, strict=True)
        ),
        dtype=np.int32,
        count=len(data),
    )
    narrow = np.uint8 if len(lookup) < 255 else np.uint16 if len(lookup) < 65535 else np.int32
    return TextColumn(codes.astype(narrow), tuple(lookup))


def _pairs(major: Ints, minor: Ints) -> tuple[Ints, Ints, Ints]:
    """Dense ids of the distinct (major, minor) pairs of non-negative integers.

    Returns the pair id of each row and, per pair id, its major and its minor value.
    """
    if len(major) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    span = int(minor.max()) + 1
    distinct, ids = np.unique(major * span + minor, return_inverse=True)
    return ids.astype(np.int64).reshape(-1), distinct // span, distinct % span


def _like(pattern: str) -> re.Pattern[str]:
    """SQL ``LIKE`` (no escape character) as a regular expression for full matches."""
    return re.compile(
        "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern),
        re.DOTALL,
    )


class ColumnarIndex:
    """One snapshot of a store's search index, in memory, and counting over it."""

    def __init__(
        self, changes: int, datasets: list[tuple[str, str, str, bool]], tables: dict[str, Any]
    ) -> None:
        self.changes = changes  # store changes the snapshot reflects
        self.datasets = datasets  # (id, name, description, listed) by dataset number - 1
        d = len(datasets)
        patient = tables["patient"]
        self.patients = _table(patient)
        n = self.patients.rows
        if not np.array_equal(self.patients.pk, np.arange(n)):
            raise RuntimeError("search index: patient keys are not dense; rebuild it")
        self.p_ds = np.asarray(np.ma.getdata(patient["ds"]), dtype=np.int64) - 1
        # Gender: the stored sex label per dataset (a NULL label counts under '').
        labels = _encode(patient["sex_label"])
        self.gender_labels = ("", *labels.values)
        self.p_gender = self.p_ds * len(self.gender_labels) + labels.codes
        # Age: the youngest age at diagnosis, as ids of distinct (dataset, age) pairs;
        # patients without an age point at one extra id past the end, never counted.
        age = np.ma.asarray(patient["min_age"])
        known = np.flatnonzero(~np.ma.getmaskarray(age))
        ages = np.asarray(np.ma.getdata(age), dtype=np.int64)[known]
        age_min = int(ages.min()) if len(ages) else 0
        pair, self.age_ds, age_offset = _pairs(self.p_ds[known], ages - age_min)
        self.age_value = age_offset + age_min
        self.p_age = np.full(n, len(self.age_ds), dtype=np.int64)
        self.p_age[known] = pair
        self.groups = {
            g: _table(tables[g])
            for g in ("disease", "series", "treatment", "outcome", "biomarker", "variant")
        }
        # Studies: ids of distinct (dataset, study) pairs over series and study rows.
        series, study = self.groups["series"], _table(tables["study"])
        s_st = np.asarray(np.ma.getdata(tables["series"]["st"]), dtype=np.int64)
        t_st = np.asarray(np.ma.getdata(tables["study"]["st"]), dtype=np.int64)
        ids, self.dst_ds, _ = _pairs(
            np.concatenate([self.p_ds[series.pk], self.p_ds[study.pk]]),
            np.concatenate([s_st, t_st]),
        )
        self.s_study, self.t_study, self.t_pk = ids[: series.rows], ids[series.rows :], study.pk
        # The pairs are numbered dataset by dataset: where each dataset's ids begin.
        self.study_bounds = np.searchsorted(self.dst_ds, np.arange(d + 1))
        self.s_pk = series.pk
        # Subjects per modality / body part: ids of distinct (patient, value) pairs,
        # numbered so that the pairs of one (dataset, value) are consecutive: a query's
        # count per (dataset, value) is then one sum per run of ids (np.add.reduceat).
        self.distinct: dict[str, tuple[tuple[str, ...], Ints, int, Ints, Ints]] = {}
        for column in ("modality", "body_part"):
            col = series.text[column]
            rows = np.flatnonzero(col.codes > 0)
            pair, pair_pk, code = _pairs(series.pk[rows], col.codes[rows].astype(np.int64))
            # pair -> dataset * len(values) + value index
            key = self.p_ds[pair_pk] * max(1, len(col.values)) + code - 1
            order = np.argsort(key, kind="stable")
            renumber = np.empty_like(order)
            renumber[order] = np.arange(len(order))
            # (rows without a value point at one extra pair past the end, never counted)
            per_row = np.full(series.rows, len(pair_pk), dtype=np.int64)
            per_row[rows] = renumber[pair]
            key = key[order]
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key
            self.distinct[column] = (col.values, per_row, len(key), starts, key[starts])
        self.n_datasets = d
        # Patients with some row of (group, column) holding a value code, as packed bits;
        # filled as queries ask (see patients_with). Bounded by bytes: the first queries'
        # values are the ones kept once it is full.
        self._bitmaps: dict[tuple[str, str, int], npt.NDArray[np.uint8]] = {}
        self._bitmap_room = max(64, BITMAP_BYTES // max(1, (n + 7) // 8))

    @classmethod
    def load(cls, con: Cursor) -> ColumnarIndex | None:
        """Read the search index in one snapshot; None when it does not reflect the store."""
        con.execute("BEGIN TRANSACTION")
        try:
            if index_staleness(con) != 0:
                return None
            changes = int(con.execute("SELECT count(*) FROM store_change").fetchone()[0])
            datasets = [
                (str(i), str(name), str(description), bool(listed))
                for i, name, description, listed in con.execute(
                    "SELECT id, name, description, listed FROM sx_dataset ORDER BY ds"
                ).fetchall()
            ]
            tables = {g: con.execute(sql).fetchnumpy() for g, sql in _SOURCES.items()}
        finally:
            con.execute("ROLLBACK")
        return cls(changes, datasets, tables)

    def patients_with(self, group: str, tests: list[tuple[str, Callable[[str], bool]]]) -> Mask:
        """Patients with some ``group`` row whose value passes a test of its column.

        The union of one patient bitmap per matching value code: each is the scatter of
        that value's rows into a patient mask (the costly step of an existence test at
        100,000 patients: a few hundred thousand rows), done once per snapshot and kept
        packed. The rows themselves do not change until the snapshot is replaced.
        """
        table = self.groups[group]
        n = self.patients.rows
        packed = np.zeros((n + 7) // 8, dtype=np.uint8)
        for column, test in tests:
            text = table.text[column]
            for code in text.matching(test):
                bits = self._bitmaps.get((group, column, code))
                if bits is None:
                    hit = np.zeros(n, dtype=np.bool_)
                    hit[table.pk.take(np.flatnonzero(text.codes == code))] = True
                    bits = np.packbits(hit)
                    if len(self._bitmaps) < self._bitmap_room:
                        self._bitmaps[(group, column, code)] = bits
                packed |= bits
        return np.unpackbits(packed, count=n).view(np.bool_)

    # --------------------------------------------------------------------------------------
    # Counting
    # --------------------------------------------------------------------------------------

    def count(self, op: Operation, max_studies: int | None = None) -> list[DatasetCounts]:
        """The raw counts of :func:`oncofed.query.counts.count_matches`, from memory."""
        masks = _Masks(self)
        n = self.patients.rows
        matched = masks.patient(op) if op.children else np.ones(n, dtype=np.bool_)
        d = self.n_datasets
        # Selections go through the positions of the hits (np.flatnonzero, then take): far
        # cheaper than boolean indexing, which stalls on masks with scattered hits.
        who = np.flatnonzero(matched)
        subjects = np.bincount(self.p_ds.take(who), minlength=d)
        g = len(self.gender_labels)
        gender = np.bincount(self.p_gender.take(who), minlength=d * g).reshape(d, g)
        ages = np.bincount(self.p_age.take(who), minlength=len(self.age_ds) + 1)[:-1]
        by_age: list[dict[int, int]] = [{} for _ in range(d)]
        for i in np.flatnonzero(ages):
            by_age[self.age_ds[i]][int(self.age_value[i])] = int(ages[i])
        if masks.series_filters:
            series = masks.series_filters[0]
            for more in masks.series_filters[1:]:
                series = series | more
            series &= matched.take(self.s_pk)
            rows = np.flatnonzero(series)
            study_ids = self.s_study.take(rows)
            study_pks = self.s_pk.take(rows)
        else:
            rows = np.flatnonzero(matched.take(self.s_pk))
            study_rows = np.flatnonzero(matched.take(self.t_pk))
            study_ids = self.t_study.take(study_rows)
            study_pks = self.t_pk.take(study_rows)
        if max_studies is None:
            seen = np.zeros(len(self.dst_ds), dtype=np.bool_)
            seen[study_ids] = True
            bounds = self.study_bounds
            studies = [int(np.count_nonzero(seen[bounds[i] : bounds[i + 1]])) for i in range(d)]
        else:  # each subject's distinct studies, at most max_studies of them
            width = len(self.dst_ds)
            own = np.unique(study_pks.astype(np.int64) * width + study_ids)
            per_patient = np.minimum(np.bincount(own // width, minlength=n), max_studies)
            studies = [int(k) for k in np.bincount(self.p_ds, weights=per_patient, minlength=d)]
        per_value: dict[str, tuple[tuple[str, ...], npt.NDArray[np.int64]]] = {}
        for column, (values, per_row, pairs, starts, keys) in self.distinct.items():
            hit = np.zeros(pairs + 1, dtype=np.bool_)
            hit[per_row.take(rows)] = True
            width = max(1, len(values))
            counted = np.zeros(d * width, dtype=np.int64)
            if len(starts):
                counted[keys] = np.add.reduceat(hit[:-1], starts, dtype=np.int64)
            per_value[column] = (values, counted.reshape(d, width))

        cohort_keys = self._meaning(who, rows if masks.series_filters else None)
        out: dict[str, DatasetCounts] = {}
        for ds, (dataset_id, name, description, listed) in enumerate(self.datasets):
            if not listed and subjects[ds] == 0:
                continue
            entry = (
                DatasetCounts(dataset_id, name, description)
                if listed
                else DatasetCounts(dataset_id, dataset_id)
            )
            entry.subjects = int(subjects[ds])
            entry.studies = int(studies[ds])
            entry.gender = {self.gender_labels[i]: int(k) for i, k in enumerate(gender[ds]) if k}
            entry.ages = by_age[ds]
            values, counts = per_value["modality"]
            entry.modalities = {values[i]: int(k) for i, k in enumerate(counts[ds]) if k}
            values, counts = per_value["body_part"]
            entry.body_parts = {values[i]: int(k) for i, k in enumerate(counts[ds]) if k}
            entry.key = cohort_keys[ds]
            out[dataset_id] = entry
        return [out[k] for k in sorted(out)]

    def _meaning(self, who: Ints, series_rows: Ints | None) -> list[str]:
        """Per dataset, a hash of the records a query selected: its matching patients, and
        its matching series when it filters series (they decide the studies and modality
        counts). Patient and series numbers are positions in this snapshot, so the
        snapshot's store-change count is part of the key."""
        by_ds = self.p_ds.take(who)
        series_ds = None if series_rows is None else self.p_ds.take(self.s_pk.take(series_rows))
        keys = []
        for ds in range(self.n_datasets):
            h = hashlib.blake2b(digest_size=32, person=b"oncofed-cohort")
            h.update(f"{self.changes}:{ds}:".encode())
            h.update(who[by_ds == ds].tobytes())
            if series_rows is not None and series_ds is not None:
                h.update(b"|series|")
                h.update(series_rows[series_ds == ds].tobytes())
            keys.append(h.hexdigest())
        return keys


class _Masks:
    """The patient mask of a query: the tree walk of ``oncofed.query.compile.Compiler``."""

    def __init__(self, index: ColumnarIndex) -> None:
        self.index = index
        self.series_filters: list[Mask] = []

    def patient(self, node: Node) -> Mask:
        group = local_group(node)
        if group is not None:
            return self._exists(group, [node])
        if isinstance(node, Condition):  # NOT_EQUALS: no record with the value
            pos = positive(node)
            return ~self._exists(KEYS_BY_NAME[pos.key].group, [pos], record=False)
        n = self.index.patients.rows
        if node.operand == "OR":
            result = np.zeros(n, dtype=np.bool_) if node.children else np.ones(n, np.bool_)
            for child in node.children:
                result |= self.patient(child)
            return result
        result = np.ones(n, dtype=np.bool_)
        buckets: dict[str, list[Node]] = {}
        for child in node.children:
            g = local_group(child)
            if g is None:
                result &= self.patient(child)
            else:
                buckets.setdefault(g, []).append(child)
        for g, members in buckets.items():
            if disjoint_keys(members):
                result &= self._exists(g, members)
            else:
                for member in members:
                    result &= self._exists(g, [member])
        return result

    def _exists(self, group: str, nodes: list[Node], record: bool = True) -> Mask:
        """Patients with some record of ``group`` satisfying all ``nodes``."""
        if group == "patient":
            return self._rows(self.index.patients, nodes)
        table = self.index.groups[group.split(":", 1)[0]]
        # One union of value tests (most criteria): from the per-value patient bitmaps.
        tests = value_tests(table, nodes[0]) if len(nodes) == 1 and ":" not in group else None
        if tests is not None:
            if group == "series" and record:  # the statistics count the matching series
                self.series_filters.append(self._rows(table, nodes))
            return self.index.patients_with(group, tests)
        rows = self._rows(table, nodes)
        if group == "series" and record:
            self.series_filters.append(rows)
        if group.startswith("biomarker:"):
            names = set(KEYS_BY_NAME["oncofed:marker:" + group.split(":", 1)[1]].marker_names)
            rows &= table.text["name"].where(names.__contains__)
        result = np.zeros(self.index.patients.rows, dtype=np.bool_)
        result[table.pk.take(np.flatnonzero(rows))] = True
        return result

    def _rows(self, table: Table, nodes: list[Node]) -> Mask:
        result = np.ones(table.rows, dtype=np.bool_)
        for node in nodes:
            result &= self._row(table, node)
        return result

    def _row(self, table: Table, node: Node) -> Mask:
        if isinstance(node, Condition):
            return row_mask(table, KEYS_BY_NAME[node.key], node)
        if not node.children or node.operand == "AND":
            return self._rows(table, node.children)
        result = np.zeros(table.rows, dtype=np.bool_)
        for child in node.children:
            result |= self._row(table, child)
        return result


def row_mask(table: Table, spec: KeySpec, cond: Condition) -> Mask:
    """Rows of ``table`` satisfying a positive condition (as ``compile.row_predicate``)."""
    if spec.kind == "number":
        col = table.numbers[spec.column]
        with np.errstate(invalid="ignore"):
            if isinstance(cond.value, Range):
                result = np.ones(table.rows, dtype=np.bool_)
                if cond.value.min is not None:
                    result &= col >= cond.value.min
                if cond.value.max is not None:
                    result &= col <= cond.value.max
                return result
            assert isinstance(cond.value, int | float)
            if cond.type == "LOWER_THAN":
                return col < cond.value
            if cond.type == "GREATER_THAN":
                return col > cond.value
            return col == cond.value
    tests = condition_tests(spec, cond)
    if tests is None:
        return _variant_mask(table, cond)
    result = table.text[tests[0][0]].where(tests[0][1])
    for column, test in tests[1:]:
        result |= table.text[column].where(test)
    return result


Test = tuple[str, Callable[[str], bool]]


def condition_tests(spec: KeySpec, cond: Condition) -> list[Test] | None:
    """A positive condition on text as (column, test of a value) pairs, a row matching
    when any pair does (as ``compile.row_predicate``); None for variants, which need
    several columns of the same row at once."""
    values = condition_texts(cond)
    if spec.kind == "code":
        codes = [spec.code(v) for v in values]
        matches = sorted({m for c in codes if c is not None for m in c.match})
        if spec.code_match == "like":  # column holds lower(value)
            patterns = [_like(m) for m in matches]
            return [(spec.column, lambda v: any(p.fullmatch(v) for p in patterns))]
        if spec.code_match == "diagnosis":  # topography and icd10 hold upper(value)
            snomed = {m for m in matches if not m.startswith("C")}
            prefixes = tuple(m for m in matches if m.startswith("C"))
            tests: list[Test] = [(spec.column, snomed.__contains__)]
            if prefixes:
                tests.append(("topography", lambda v: v.startswith(prefixes)))
                tests.append(("icd10", lambda v: v.startswith(prefixes)))
            return tests
        wanted = {m.upper() for m in matches}
        return [(spec.column, wanted.__contains__)]
    if spec.kind == "stage":  # column holds upper(value)
        pattern = re.compile(stage_pattern(values))
        return [(spec.column, lambda v: pattern.fullmatch(v) is not None)]
    if spec.kind == "hierarchical":  # <column>_h holds the value without separators
        heads = tuple(v.replace(spec.separator, "") for v in values)
        return [(f"{spec.column}_h", lambda v: v.startswith(heads))]
    if spec.kind == "variant":
        return None
    # free text: the column holds spec.case(value)
    if cond.type == "CONTAINS":
        part = values[0]
        return [(spec.column, lambda v: part in v)]
    wanted = set(values)
    return [(spec.column, wanted.__contains__)]


def value_tests(table: Table, node: Node) -> list[Test] | None:
    """``node`` as a union of one-column value tests on ``table``'s rows, or None.

    A record exists that satisfies a union exactly when one exists for some member, so
    such a node can be answered from per-value patient bitmaps (``patients_with``).
    """
    if isinstance(node, Condition):
        spec = KEYS_BY_NAME[node.key]
        if spec.kind == "number" or node.type == "NOT_EQUALS":
            return None
        tests = condition_tests(spec, node)
        if tests is None or any(column not in table.text for column, _ in tests):
            return None
        return tests
    if not node.children or (node.operand == "AND" and len(node.children) != 1):
        return None
    out: list[Test] = []
    for child in node.children:
        more = value_tests(table, child)
        if more is None:
            return None
        out.extend(more)
    return out


def _variant_mask(table: Table, cond: Condition) -> Mask:
    """Rows holding one of the condition's variants (chrom, ref, alt hold upper(value),
    assembly lower(value))."""
    text = table.text
    result = np.zeros(table.rows, dtype=np.bool_)
    for v in condition_texts(cond):
        assembly, chroms, pos, ref, alt = variant_parts(v)
        hit = table.numbers["pos"] == pos
        hit &= text["chrom"].where(set(chroms).__contains__)
        hit &= text["ref"].where(ref.__eq__)
        hit &= text["alt"].where(alt.__eq__)
        if assembly is not None:
            hit &= text["assembly"].where(assembly.lower().__eq__)
        result |= hit
    return result


class ColumnarSearch:
    """The in-memory search index of one store, reloaded whenever the store changed.

    Held by :class:`oncofed.node.store.NodeStore` (one per process); safe to share between
    threads: a snapshot is never modified, only replaced.
    """

    def __init__(self) -> None:
        self._index: ColumnarIndex | None = None
        # The writer's generation (NodeStore.generation) when the snapshot was confirmed
        # current: while it has not moved, this process wrote nothing and the count of
        # store changes need not be read again.
        self._generation: int | None = None
        self._lock = threading.Lock()

    def counts(
        self,
        con: Cursor,
        op: Operation,
        generation: int | None = None,
        max_studies: int | None = None,
    ) -> list[DatasetCounts]:
        """Exact raw counts of a canonical query, as :func:`count_matches` returns them.

        ``generation``: a number the caller bumps after each of its writes, when it is the
        store's only writer (the node service); skips the freshness query while unchanged.
        ``max_studies``: count at most this many studies per subject (see count_matches).
        """
        return self.current(con, generation).count(op, max_studies)

    def current(self, con: Cursor, generation: int | None = None) -> ColumnarIndex:
        """The snapshot for the store as it is now (rebuilding the index if need be)."""
        index = self._index
        if index is not None and generation is not None and generation == self._generation:
            return index
        if index is not None and index.changes == _changes(con):
            self._generation = generation
            return index
        with self._lock:
            for _ in range(5):
                index = self._index
                if index is not None and index.changes == _changes(con):
                    self._generation = generation
                    return index
                rebuild_search_index(con)  # a no-op when the index is fresh
                index = ColumnarIndex.load(con)
                if index is not None:
                    self._index, self._generation = index, generation
                    return index
        raise RuntimeError("the search index keeps going stale: the store is being written")

    def clear(self) -> None:
        """Forget the snapshot (the store was closed)."""
        self._index, self._generation = None, None


def _changes(con: Cursor) -> int:
    return int(con.execute("SELECT count(*) FROM store_change").fetchone()[0])
