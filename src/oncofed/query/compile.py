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
from oncofed.query.vocabulary import KEYS_BY_NAME, KeySpec, group_source


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
    return Sql("(" + f" {op} ".join(p.text for p in parts) + ")",
               [x for p in parts for x in p.params])


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
    if node.operand == "AND" and not _disjoint(node.children):
        return None
    return groups.pop()


def _disjoint(nodes: list[Operation | Condition]) -> bool:
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


def _values(cond: Condition) -> list[str]:
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
    """SQL true when record alias ``r`` satisfies a positive condition (never NULL)."""
    spec = KEYS_BY_NAME[cond.key]
    sql = _row_predicate(spec, cond, r)
    return Sql(f"coalesce({sql.text}, false)", sql.params)


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
    values = _values(cond)
    if spec.kind == "code":
        codes = [spec.code(v) for v in values]
        matches = sorted({m for c in codes if c is not None for m in c.match})
        if spec.code_match == "like":
            return _join([Sql(f"lower({col}) LIKE ?", [m]) for m in matches], "OR", "false")
        if spec.code_match == "diagnosis":
            snomed = [m for m in matches if not m.startswith("C")]
            prefixes = [m for m in matches if m.startswith("C")]
            parts = [Sql(f"{col} IN ({_placeholders(len(snomed))})", snomed)]
            for prefix in prefixes:
                parts.append(Sql(f"starts_with(upper({r}.topography), ?)", [prefix]))
                parts.append(Sql(f"starts_with(upper({r}.icd10), ?)", [prefix]))
            return _join(parts, "OR", "false")
        upper = [m.upper() for m in matches]
        return Sql(f"upper({col}) IN ({_placeholders(len(upper))})", upper)
    if spec.kind == "stage":
        return Sql(f"regexp_full_match(upper({col}), ?)", [stage_pattern(values)])
    if spec.kind == "hierarchical":
        stripped = f"replace(upper({col}), '{spec.separator}', '')"
        return _join([Sql(f"starts_with({stripped}, ?)", [v.replace(spec.separator, "")])
                      for v in values], "OR", "false")
    if spec.kind == "variant":
        parts = []
        for v in values:
            assembly, chroms, pos, ref, alt = variant_parts(v)
            text = (f"(upper({r}.chrom) IN ({_placeholders(len(chroms))}) AND {r}.pos = ? "
                    f"AND upper({r}.ref) = ? AND upper({r}.alt) = ?")
            params: list[Any] = [*chroms, pos, ref, alt]
            if assembly is not None:
                text += f" AND lower({r}.assembly) = ?"
                params.append(assembly.lower())
            parts.append(Sql(text + ")", params))
        return _join(parts, "OR", "false")
    # free text
    fn = spec.case
    if cond.type == "CONTAINS":
        return Sql(f"strpos({fn}({col}), ?) > 0", [values[0]])
    return Sql(f"{fn}({col}) IN ({_placeholders(len(values))})", values)


def _node_row_predicate(node: Operation | Condition, r: str) -> Sql:
    if isinstance(node, Condition):
        return row_predicate(node, r)
    parts = [_node_row_predicate(c, r) for c in node.children]
    return _join(parts, node.operand, "true")


# ------------------------------------------------------------------------------------------
# Patient-level predicate
# ------------------------------------------------------------------------------------------


class Compiler:
    """Compiles one canonical query; remembers the series-level criteria it met."""

    def __init__(self, patient_alias: str = "p") -> None:
        self.p = patient_alias
        self.series_filters: list[Sql] = []
        self._series_nodes: list[list[Operation | Condition]] = []

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
            if _disjoint(members):
                parts.append(self._exists(g, members))
            else:
                parts.extend(self._exists(g, [m]) for m in members)
        return _join(parts, "AND", "true")

    def _exists(self, group: str, nodes: list[Operation | Condition],
                record: bool = True) -> Sql:
        """Some record of ``group`` satisfies all ``nodes`` (the patient row for patient)."""
        if group == "patient":
            return _join([_node_row_predicate(n, self.p) for n in nodes], "AND", "true")
        pred = _join([_node_row_predicate(n, "r") for n in nodes], "AND", "true")
        if group == "series" and record:
            self.series_filters.append(_join([_node_row_predicate(n, "s") for n in nodes],
                                             "AND", "true"))
        source = group_source(group).format(p=f"{self.p}.id")
        params: list[Any] = []
        if group.startswith("biomarker:"):
            names = list(KEYS_BY_NAME[_marker_key(group)].marker_names)
            source += f" AND upper(r.name) IN ({_placeholders(len(names))})"
            params.extend(names)
        return Sql(f"EXISTS (SELECT 1 {source} AND {pred.text})", params + pred.params)


def _marker_key(group: str) -> str:
    return "oncofed:marker:" + group.split(":", 1)[1]


@dataclass
class CompiledQuery:
    """The patient filter and the series filter that decides which studies are counted."""

    where: Sql
    series_filter: Sql | None


def compile_query(op: Operation, patient_alias: str = "p") -> CompiledQuery:
    """Compile a canonical query (from :func:`oncofed.query.validate.parse_query`)."""
    compiler = Compiler(patient_alias)
    where = compiler.patient_predicate(op) if op.children else Sql("true")
    series = _join(compiler.series_filters, "OR", "false") if compiler.series_filters else None
    return CompiledQuery(where, series)


def counts_statement(op: Operation) -> Sql:
    """One statement returning ``(dataset_id, stat, label, n)`` rows for a query.

    ``stat`` is ``subjects``, ``studies``, ``gender`` (label: stored sex), ``age`` (label:
    the subject's youngest age at diagnosis, in years), ``modality`` or ``body_part``
    (label: stored value upper case; ``n`` counts distinct subjects). Studies are those of the
    matching subjects that hold a series satisfying one of the query's series-level criteria
    groups, or all their studies when the query has none.
    """
    compiled = compile_query(op)
    if compiled.series_filter is None:
        series_where = Sql("true")
        studies = (
            "SELECT DISTINCT dataset_id, study_uid FROM ("
            " SELECT dataset_id, study_uid FROM ser UNION ALL"
            " SELECT m.dataset_id, i.uid FROM m JOIN imaging_study i ON i.patient_id = m.id)"
        )
    else:
        series_where = compiled.series_filter
        studies = "SELECT DISTINCT dataset_id, study_uid FROM ser"
    text = f"""
        WITH m AS MATERIALIZED (
            SELECT p.id, p.dataset_id, p.sex FROM patient p WHERE {compiled.where.text}),
        ser AS MATERIALIZED (
            SELECT m.dataset_id, s.patient_id, s.study_uid, s.modality, s.body_part
            FROM m JOIN imaging_series s ON s.patient_id = m.id WHERE {series_where.text}),
        ages AS (
            SELECT m.dataset_id, m.id, min(d.age_at_diagnosis) AS age
            FROM m JOIN disease d ON d.patient_id = m.id
            WHERE d.age_at_diagnosis IS NOT NULL GROUP BY m.dataset_id, m.id)
        SELECT dataset_id, 'subjects', '', count(*) FROM m GROUP BY dataset_id
        UNION ALL
        SELECT dataset_id, 'studies', '', count(*) FROM ({studies}) GROUP BY dataset_id
        UNION ALL
        SELECT dataset_id, 'gender', sex, count(*) FROM m GROUP BY dataset_id, sex
        UNION ALL
        SELECT dataset_id, 'age', CAST(age AS VARCHAR), count(*) FROM ages
            GROUP BY dataset_id, age
        UNION ALL
        SELECT dataset_id, 'modality', upper(modality), count(DISTINCT patient_id) FROM ser
            WHERE modality IS NOT NULL GROUP BY dataset_id, upper(modality)
        UNION ALL
        SELECT dataset_id, 'body_part', upper(body_part), count(DISTINCT patient_id) FROM ser
            WHERE body_part IS NOT NULL GROUP BY dataset_id, upper(body_part)
    """
    return Sql(text, compiled.where.params + series_where.params)
