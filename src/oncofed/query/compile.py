"""Compile a canonical query to parameterised SQL over the node store.

Semantics (the plain-Python evaluator in :mod:`oncofed.query.evaluate` implements the same
rules independently, and the property tests hold the two together):

- A patient matches when it satisfies the tree; ``AND``/``OR`` are the usual connectives and
  an empty operation matches everyone.
- A positive condition (every type except ``NOT_EQUALS``) on a key of a record group
  (``series``, ``disease``, ``treatment``, ``outcome``, ``variant``, ``biomarker:<NAME>``)
  holds when the patient has *at least one* record of that group satisfying it.
- ``NOT_EQUALS`` is the exact complement of ``EQUALS``/``IN``: the patient has *no* record
  with that value (patients without any such record, or with an unknown value, match).
- Same-record rule: in an ``AND`` group, the children that are "local" to one record group
  (positive conditions on that group, or ``OR``/``AND`` made only of them) must be satisfied
  by the *same* record when they constrain pairwise different keys ("an MR series of the
  prostate from a Siemens scanner"). When a key repeats among them (``MR AND CT``), each is
  satisfied independently ("has an MR series and has a CT series").
- Rules apply to the canonical form (see :mod:`oncofed.query.validate`), where nested
  operations with the same operand are flattened and single-child operations removed; the
  EUCAIM shape ``OR(AND(OR(c1), OR(c2), ...))`` thus becomes ``AND(c1, c2, ...)``.

Every value reaches DuckDB as a bound parameter; the SQL text holds only names from the
vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oncofed.query.ast import Condition, Operation, Range, value_list
from oncofed.query.vocabulary import KEYS_BY_NAME, KeySpec


@dataclass
class Sql:
    """A SQL fragment with its positional (``?``) parameters, in order."""

    text: str
    params: list[Any] = field(default_factory=list)


def _join(parts: list[Sql], op: str, empty: str) -> Sql:
    if not parts:
        return Sql(empty)
    if len(parts) == 1:
        return parts[0]
    return Sql(
        "(" + f" {op} ".join(p.text for p in parts) + ")", [x for p in parts for x in p.params]
    )


# ------------------------------------------------------------------------------------------
# Structure shared by the compiler: which nodes are local to one record group
# ------------------------------------------------------------------------------------------


def node_keys(node: Operation | Condition) -> set[str]:
    if isinstance(node, Condition):
        return {node.key}
    return set().union(*(node_keys(c) for c in node.children)) if node.children else set()


def local_group(node: Operation | Condition) -> str | None:
    """The record group a node can be evaluated on one record of, or None."""
    if isinstance(node, Condition):
        return None if node.type == "NOT_EQUALS" else KEYS_BY_NAME[node.key].group
    if not node.children:
        return None
    groups = {local_group(c) for c in node.children}
    if len(groups) != 1 or None in groups:
        return None
    if node.operand == "AND" and not disjoint_keys(node.children):
        return None
    return groups.pop()


def disjoint_keys(nodes: list[Operation | Condition]) -> bool:
    """No key appears under two of the nodes (the same-record rule applies to them)."""
    seen: set[str] = set()
    for n in nodes:
        keys = node_keys(n)
        if seen & keys:
            return False
        seen |= keys
    return True


def positive(cond: Condition) -> Condition:
    """The EQUALS/IN condition a NOT_EQUALS is the complement of."""
    values = value_list(cond.value)
    if len(values) == 1:
        return Condition(key=cond.key, type="EQUALS", value=values[0])
    return Condition(key=cond.key, type="IN", value=values)


# ------------------------------------------------------------------------------------------
# Row-level predicates
# ------------------------------------------------------------------------------------------


def condition_texts(cond: Condition) -> list[str]:
    """A condition's value(s) as the text the row predicates compare."""
    return [str(v) for v in value_list(cond.value)]


def _placeholders(n: int) -> str:
    return ", ".join("?" for _ in range(n))


def stage_pattern(values: list[str]) -> str:
    """A regular expression: one of the stages, optionally followed by a subdivision."""
    return "(?:" + "|".join(values) + ")[A-D]?"


def variant_parts(value: str) -> tuple[str | None, list[str], int, str, str]:
    """(assembly, stored chromosome spellings, pos, ref, alt) of a canonical variant."""
    parts = value.split(":")
    assembly = parts.pop(0) if len(parts) == 5 else None
    chrom, pos, ref, alt = parts
    bare = chrom[3:]
    spellings = {bare, chrom.upper()}
    if bare == "M":
        spellings |= {"MT", "CHRMT"}
    return assembly, sorted(spellings), int(pos), ref, alt


def row_predicate(cond: Condition, r: str) -> Sql:
    """SQL true when search-index record alias ``r`` satisfies a positive condition.

    Used only as a filter (``WHERE``), combined with ``AND``/``OR``: an unknown (NULL)
    column makes a leaf NULL, which a filter treats as false, exactly as ``coalesce(...,
    false)`` would (``AND``/``OR`` are monotone). The index columns hold the values already
    normalised the way the comparison needs them (see :data:`SEARCH_INDEX`), so the
    predicates compare plain columns and DuckDB can push them into the table scans.
    """
    return _row_predicate(KEYS_BY_NAME[cond.key], cond, r)


def _row_predicate(spec: KeySpec, cond: Condition, r: str) -> Sql:
    col = f"{r}.{spec.column}"
    if spec.kind == "number":
        if isinstance(cond.value, Range):
            parts = []
            if cond.value.min is not None:
                parts.append(Sql(f"{col} >= ?", [cond.value.min]))
            if cond.value.max is not None:
                parts.append(Sql(f"{col} <= ?", [cond.value.max]))
            return _join(parts, "AND", "true")
        op = {"EQUALS": "=", "LOWER_THAN": "<", "GREATER_THAN": ">"}[cond.type]
        return Sql(f"{col} {op} ?", [cond.value])
    values = condition_texts(cond)
    if spec.kind == "code":
        codes = [spec.code(v) for v in values]
        matches = sorted({m for c in codes if c is not None for m in c.match})
        if spec.code_match == "like":  # column holds lower(value)
            return _join([Sql(f"{col} LIKE ?", [m]) for m in matches], "OR", "false")
        if spec.code_match == "diagnosis":  # topography and icd10 hold upper(value)
            snomed = [m for m in matches if not m.startswith("C")]
            prefixes = [m for m in matches if m.startswith("C")]
            parts = [_in(col, snomed)]
            for prefix in prefixes:
                parts.append(Sql(f"starts_with({r}.topography, ?)", [prefix]))
                parts.append(Sql(f"starts_with({r}.icd10, ?)", [prefix]))
            return _join(parts, "OR", "false")
        return _in(col, sorted({m.upper() for m in matches}))  # column holds upper(value)
    if spec.kind == "stage":  # column holds upper(value)
        return Sql(f"regexp_full_match({col}, ?)", [stage_pattern(values)])
    if spec.kind == "hierarchical":  # <column>_h holds replace(upper(value), separator, '')
        return _join(
            [Sql(f"starts_with({col}_h, ?)", [v.replace(spec.separator, "")]) for v in values],
            "OR",
            "false",
        )
    if spec.kind == "variant":  # chrom, ref, alt hold upper(value), assembly lower(value)
        parts = []
        for v in values:
            assembly, chroms, pos, ref, alt = variant_parts(v)
            chrom = _in(f"{r}.chrom", chroms)
            text = f"({chrom.text} AND {r}.pos = ? AND {r}.ref = ? AND {r}.alt = ?"
            params: list[Any] = [*chrom.params, pos, ref, alt]
            if assembly is not None:
                text += f" AND {r}.assembly = ?"
                params.append(assembly.lower())
            parts.append(Sql(text + ")", params))
        return _join(parts, "OR", "false")
    # free text: the column holds spec.case(value)
    if cond.type == "CONTAINS":
        return Sql(f"strpos({col}, ?) > 0", [values[0]])
    return _in(col, values)


def _in(col: str, values: list[str]) -> Sql:
    if not values:
        return Sql("false")
    if len(values) == 1:
        return Sql(f"{col} = ?", values)
    return Sql(f"{col} IN ({_placeholders(len(values))})", values)


def _node_row_predicate(node: Operation | Condition, r: str) -> Sql:
    if isinstance(node, Condition):
        return row_predicate(node, r)
    parts = [_node_row_predicate(c, r) for c in node.children]
    return _join(parts, node.operand, "true")


# ------------------------------------------------------------------------------------------
# The search index: derived tables the compiled SQL reads
# ------------------------------------------------------------------------------------------

# Built from the store by :func:`oncofed.query.counts.rebuild_search_index` whenever the
# store changed (see :class:`oncofed.node.store.NodeStore`). Patients get a dense integer key
# ``pk`` (joins on integers instead of 64-character pseudonyms) and every compared column is
# stored normalised (upper/lower case, separators removed) as the predicates above expect,
# computed with the same DuckDB functions the comparisons used to apply per query.
SEARCH_INDEX: tuple[tuple[str, str], ...] = (
    (
        "sx_dataset",
        """
        SELECT (row_number() OVER (ORDER BY id))::INTEGER AS ds, id,
               coalesce(name, id) AS name, coalesce(description, '') AS description,
               listed
        FROM (SELECT id, bool_or(listed) AS listed, max(name) AS name,
                     max(description) AS description
              FROM (SELECT id, true AS listed, name, description FROM dataset
                    UNION ALL
                    SELECT DISTINCT dataset_id, false, NULL, NULL FROM patient)
              GROUP BY id)
        ORDER BY ds""",
    ),
    # min_age: the youngest age at diagnosis, or where the patient has none, the age at
    # the first imaging study (age_source says which).
    (
        "sx_patient",
        """
        SELECT (row_number() OVER (ORDER BY x.ds, p.id))::INTEGER AS pk, p.id, x.ds,
               p.sex AS sex_label, upper(p.sex) AS sex, coalesce(a.age, i.age) AS min_age,
               CASE WHEN a.age IS NOT NULL THEN 'diagnosis'
                    WHEN i.age IS NOT NULL THEN 'study' END AS age_source
        FROM patient p JOIN sx_dataset x ON x.id = p.dataset_id
        LEFT JOIN (SELECT patient_id, min(age_at_diagnosis) AS age FROM disease
                   WHERE age_at_diagnosis IS NOT NULL GROUP BY patient_id) a
               ON a.patient_id = p.id
        LEFT JOIN (SELECT patient_id, min(age_at_study) AS age FROM imaging_study
                   WHERE age_at_study IS NOT NULL GROUP BY patient_id) i
               ON i.patient_id = p.id
        ORDER BY pk""",
    ),
    # The age key is answered from age_at_diagnosis; a patient with no age at diagnosis
    # gets the age at the first study there (on each disease row, or on a row of its own
    # when there is none: that row matches no other disease condition).
    (
        "sx_disease",
        """
        SELECT pk, site_snomed, topography, topography_h, icd10, morphology_h,
               diagnosis_year, age_at_diagnosis, t_stage, n_stage, m_stage, stage_group
        FROM (
            SELECT x.pk, d.site_snomed, upper(d.topography) AS topography,
                   replace(upper(d.topography), '.', '') AS topography_h,
                   upper(d.icd10) AS icd10,
                   replace(upper(d.morphology), '/', '') AS morphology_h, d.diagnosis_year,
                   coalesce(d.age_at_diagnosis,
                            CASE WHEN x.age_source = 'study' THEN x.min_age END)
                       AS age_at_diagnosis,
                   upper(d.t_stage) AS t_stage, upper(d.n_stage) AS n_stage,
                   upper(d.m_stage) AS m_stage, upper(d.stage_group) AS stage_group
            FROM disease d JOIN sx_patient x ON x.id = d.patient_id
            UNION ALL
            SELECT x.pk, NULL, NULL, NULL, NULL, NULL, NULL, x.min_age, NULL, NULL, NULL, NULL
            FROM sx_patient x
            WHERE x.age_source = 'study'
              AND NOT EXISTS (SELECT 1 FROM disease d WHERE d.patient_id = x.id))
        ORDER BY pk""",
    ),
    # Study uids (of studies and of series) as integers.
    (
        "sx_study_key",
        """
        SELECT uid, (row_number() OVER (ORDER BY uid))::INTEGER AS st
        FROM (SELECT study_uid AS uid FROM imaging_series
              UNION SELECT uid FROM imaging_study)""",
    ),
    # One row per distinct (patient, study, series attributes): what search reads of series.
    (
        "sx_series",
        """
        SELECT DISTINCT x.pk, x.ds, k.st, upper(s.modality) AS modality,
               nullif(regexp_replace(upper(s.body_part), '[^A-Z0-9]', '', 'g'), '')
                   AS body_part,
               lower(s.manufacturer) AS manufacturer
        FROM imaging_series s JOIN sx_patient x ON x.id = s.patient_id
        JOIN sx_study_key k ON k.uid = s.study_uid
        ORDER BY x.pk""",
    ),
    # Every study of a patient, whether known from imaging_study or from its series.
    (
        "sx_study",
        """
        SELECT DISTINCT pk, ds, st FROM (
            SELECT pk, ds, st FROM sx_series
            UNION ALL
            SELECT x.pk, x.ds, k.st FROM imaging_study i
            JOIN sx_patient x ON x.id = i.patient_id JOIN sx_study_key k ON k.uid = i.uid)
        ORDER BY pk""",
    ),
    (
        "sx_treatment",
        """
        SELECT x.pk, upper(t.kind) AS kind, lower(t.agent) AS agent
        FROM treatment t JOIN sx_patient x ON x.id = t.patient_id ORDER BY x.pk""",
    ),
    (
        "sx_outcome",
        """
        SELECT x.pk, upper(o.vital_status) AS vital_status, o.survival_days
        FROM outcome o JOIN sx_patient x ON x.id = o.patient_id ORDER BY x.pk""",
    ),
    (
        "sx_biomarker",
        """
        SELECT x.pk, upper(b.name) AS name, upper(b.value_code) AS value_code, b.value_number
        FROM biomarker b JOIN sx_patient x ON x.id = b.patient_id ORDER BY x.pk""",
    ),
    (
        "sx_variant",
        """
        SELECT x.pk, lower(v.assembly) AS assembly, upper(v.chrom) AS chrom, v.pos,
               upper(v.ref) AS ref, upper(v.alt) AS alt, upper(v.gene) AS gene
        FROM variant_call c JOIN variant v ON v.id = c.variant_id
        JOIN sx_patient x ON x.id = c.patient_id ORDER BY x.pk""",
    ),
)

# Each record group's rows in the index.
INDEX_SOURCES: dict[str, str] = {
    "disease": "sx_disease",
    "series": "sx_series",
    "treatment": "sx_treatment",
    "outcome": "sx_outcome",
    "variant": "sx_variant",
    "biomarker": "sx_biomarker",
}


# ------------------------------------------------------------------------------------------
# Patient-level predicate
# ------------------------------------------------------------------------------------------


class Compiler:
    """Compiles one canonical query; remembers the series-level criteria it met."""

    def __init__(self, patient_alias: str = "p") -> None:
        self.p = patient_alias
        self.series_filters: list[Sql] = []

    def patient_predicate(self, node: Operation | Condition) -> Sql:
        group = local_group(node)
        if group is not None:
            return self._exists(group, [node])
        if isinstance(node, Condition):  # NOT_EQUALS
            pos = positive(node)
            inner = self._exists(KEYS_BY_NAME[pos.key].group, [pos], record=False)
            return Sql(f"(NOT {inner.text})", inner.params)
        if node.operand == "OR":
            return _join([self.patient_predicate(c) for c in node.children], "OR", "true")
        buckets: dict[str, list[Operation | Condition]] = {}
        parts: list[Sql] = []
        for child in node.children:
            g = local_group(child)
            if g is None:
                parts.append(self.patient_predicate(child))
            else:
                buckets.setdefault(g, []).append(child)
        for g, members in buckets.items():
            if disjoint_keys(members):
                parts.append(self._exists(g, members))
            else:
                parts.extend(self._exists(g, [m]) for m in members)
        return _join(parts, "AND", "true")

    def _exists(self, group: str, nodes: list[Operation | Condition], record: bool = True) -> Sql:
        """Some record of ``group`` satisfies all ``nodes`` (the patient row for patient)."""
        if group == "patient":
            return _join([_node_row_predicate(n, self.p) for n in nodes], "AND", "true")
        pred = _join([_node_row_predicate(n, "r") for n in nodes], "AND", "true")
        if group == "series" and record:
            # The series rows of criteria group i are scanned once, into the ``sf`` CTE of
            # :func:`counts_statement` with the flag column ``c<i>``; the patient predicate
            # and the counted series both read them from there.
            self.series_filters.append(
                _join([_node_row_predicate(n, "s") for n in nodes], "AND", "true")
            )
            return Sql(f"{self.p}.pk IN (SELECT pk FROM sf WHERE c{len(self.series_filters)})")
        table = INDEX_SOURCES[group.split(":", 1)[0]]
        params: list[Any] = []
        where = pred.text
        if group.startswith("biomarker:"):
            names = _in("r.name", list(KEYS_BY_NAME[_marker_key(group)].marker_names))
            where = f"{names.text} AND {where}"
            params.extend(names.params)
        # A semi-join on the integer patient key (DuckDB plans it as a hash semi/mark join).
        return Sql(
            f"{self.p}.pk IN (SELECT r.pk FROM {table} r WHERE {where})", params + pred.params
        )


def _marker_key(group: str) -> str:
    return "oncofed:marker:" + group.split(":", 1)[1]


@dataclass
class CompiledQuery:
    """The patient filter and the series criteria groups that decide which studies count.

    ``where`` reads the flags ``c1``, ``c2``, ... of the ``sf`` CTE that
    :func:`counts_statement` builds from ``series_groups`` (one flag per group).
    """

    where: Sql
    series_groups: list[Sql] = field(default_factory=list)

    @property
    def series_filter(self) -> Sql | None:
        """A series satisfies one of the criteria groups (None when there are none)."""
        return _join(self.series_groups, "OR", "false") if self.series_groups else None


def compile_query(op: Operation, patient_alias: str = "p") -> CompiledQuery:
    """Compile a canonical query (from :func:`oncofed.query.validate.parse_query`)."""
    compiler = Compiler(patient_alias)
    where = compiler.patient_predicate(op) if op.children else Sql("true")
    return CompiledQuery(where, compiler.series_filters)


# The statement's first row tells whether the search index reflects the store: the number of
# store changes recorded minus the number the index was built from (0 when fresh).
STALENESS = (
    "(SELECT count(*) FROM store_change)"
    " - coalesce((SELECT max(built_changes) FROM search_index_state), -1)"
)


def counts_statement(op: Operation, max_studies: int | None = None) -> Sql:
    """One statement over the search index returning ``(ds, stat, label, n)`` rows.

    ``ds`` is the index's dataset number. The first row is ``(NULL, 'stale', '', k)``: the
    rows describe the store only when ``k`` is 0 (the caller rebuilds the index and runs the
    statement again otherwise). Then per dataset ``dataset`` (label: its id, ``n``: 1 when
    the dataset table lists it), ``name`` and ``description`` (label), and the counts:
    ``subjects``, ``studies``, ``gender`` (label: stored sex), ``age`` (label: the subject's
    youngest age at diagnosis, else age at the first study, in years), ``modality`` or
    ``body_part`` (label: stored value upper case, body parts as letters and digits only;
    ``n`` counts distinct subjects). Studies are those of the matching subjects
    that hold a series satisfying one of the query's series-level criteria groups, or all
    their studies when the query has none; with ``max_studies``, at most that many per
    subject.
    """
    compiled = compile_query(op)
    series_filter = compiled.series_filter
    if series_filter is None:
        sf = Sql("")
        ser = "SELECT s.ds, s.pk, s.st, s.modality, s.body_part FROM sx_series s"
        studies = "sx_study WHERE pk IN (SELECT pk FROM m)"
    else:
        flags = "".join(f", {g.text} AS c{i}" for i, g in enumerate(compiled.series_groups, 1))
        sf = Sql(
            f"sf AS MATERIALIZED (SELECT s.ds, s.pk, s.st, s.modality, s.body_part{flags}"
            f" FROM sx_series s WHERE {series_filter.text}),",
            [x for g in compiled.series_groups for x in g.params] + series_filter.params,
        )
        ser = "SELECT ds, pk, st, modality, body_part FROM sf s"
        studies = "ser"
    if max_studies is None:
        studies_count = f"SELECT ds, 'studies', '', count(DISTINCT st) FROM {studies} GROUP BY ds"
    else:  # its placeholder is the last in the statement: the bound goes last
        studies_count = (
            "SELECT ds, 'studies', '', sum(least(n, ?))::BIGINT FROM (SELECT ds, pk, "
            f"count(DISTINCT st) AS n FROM {studies} GROUP BY ds, pk) GROUP BY ds"
        )
    text = f"""
        WITH {sf.text}
        m AS MATERIALIZED (
            SELECT p.pk, p.ds, p.sex_label, p.min_age FROM sx_patient p
            WHERE {compiled.where.text}),
        ser AS MATERIALIZED ({ser} WHERE s.pk IN (SELECT pk FROM m))
        SELECT NULL::INTEGER, 'stale', '', {STALENESS}
        UNION ALL
        SELECT ds, 'dataset', id, listed::INTEGER FROM sx_dataset
        UNION ALL
        SELECT ds, 'name', name, 0 FROM sx_dataset
        UNION ALL
        SELECT ds, 'description', description, 0 FROM sx_dataset
        UNION ALL
        SELECT ds, CASE WHEN GROUPING(sex_label) = 0 THEN 'gender'
                        WHEN GROUPING(min_age) = 0 THEN 'age' ELSE 'subjects' END,
               coalesce(sex_label, CAST(min_age AS VARCHAR), ''), count(*)
            FROM m GROUP BY GROUPING SETS ((ds), (ds, sex_label), (ds, min_age))
            HAVING GROUPING(min_age) = 1 OR min_age IS NOT NULL
        UNION ALL
        {studies_count}
        UNION ALL
        SELECT ds, 'modality', modality, count(*)
            FROM (SELECT DISTINCT ds, pk, modality FROM ser WHERE modality IS NOT NULL)
            GROUP BY ds, modality
        UNION ALL
        SELECT ds, 'body_part', body_part, count(*)
            FROM (SELECT DISTINCT ds, pk, body_part FROM ser WHERE body_part IS NOT NULL)
            GROUP BY ds, body_part
    """
    params = sf.params + compiled.where.params
    if max_studies is not None:
        params.append(max_studies)
    return Sql(text, params)
