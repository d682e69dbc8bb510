"""The SQL compiler against the plain-Python evaluator, over random cohorts and queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncofed.node.store import NodeStore
from oncofed.query import count_matches, parse_query
from oncofed.query.evaluate import evaluate_counts, load_cohort

TABLES = (
    "dataset",
    "patient",
    "disease",
    "imaging_study",
    "imaging_series",
    "treatment",
    "outcome",
    "biomarker",
    "variant",
    "variant_call",
)

VARIANTS = [
    ("GRCh38:chr12:25245350:C:T", "GRCh38", "chr12", 25245350, "C", "T", "KRAS"),
    ("GRCh38:12:25245351:C:A", "GRCh38", "12", 25245351, "C", "A", "KRAS"),
    ("GRCh38:chr7:140753336:A:T", "GRCh38", "chr7", 140753336, "A", "T", "BRAF"),
    ("GRCh37:chr7:140453136:A:T", "GRCh37", "chr7", 140453136, "A", "T", "braf"),
    ("GRCh38:chr17:7675088:C:T", "GRCh38", "chr17", 7675088, "C", "T", "TP53"),
]


def maybe(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([*values, None])


@st.composite
def cohorts(draw: st.DrawFn) -> dict[str, list[tuple[Any, ...]]]:
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    datasets = draw(st.integers(1, 3))
    for d in range(datasets):
        rows["dataset"].append((f"ds{d}", f"Dataset {d}", "about it"))
    rows["variant"] = [v[:1] + v[1:] for v in VARIANTS]
    serial = iter(range(10_000))
    for i in range(draw(st.integers(0, 12))):
        pid = f"p{i}"
        rows["patient"].append(
            (
                pid,
                f"ds{draw(st.integers(0, datasets - 1))}",
                draw(st.sampled_from(["male", "female", "other", "unknown"])),
                draw(maybe([1950, 1970])),
            )
        )
        for _ in range(draw(st.integers(0, 2))):
            rows["disease"].append(
                (
                    f"d{next(serial)}",
                    pid,
                    draw(maybe(["C34.1", "C61", "C50.4", "C18.7"])),
                    draw(maybe(["C34.1", "C61", "C50.4", "C343", "C20"])),
                    draw(maybe(["8140/3", "8070/3", "8500/3", "8140/2"])),
                    draw(maybe(["363358000", "399068003", "254837009", "363406005"])),
                    draw(maybe([2001, 2010, 2015, 2020])),
                    draw(maybe([25, 39, 40, 55, 70, 71, 88])),
                    draw(maybe(["T1", "t1a", "T2", "Tis", "T4b", "T12"])),
                    draw(maybe(["N0", "N1", "N2a"])),
                    draw(maybe(["M0", "M1", "M1c"])),
                    draw(maybe(["I", "IA", "II", "IIIB", "III", "IV"])),
                )
            )
        studies = [f"st{next(serial)}" for _ in range(draw(st.integers(0, 2)) or 1)]
        for uid in studies:
            if draw(st.booleans()):
                rows["imaging_study"].append((uid, pid, draw(maybe([38, 52, 66]))))
            for _ in range(draw(st.integers(0, 2)) or 1):
                rows["imaging_series"].append(
                    (
                        f"se{next(serial)}",
                        uid,
                        pid,
                        draw(maybe(["MR", "CT", "PT", "NM", "MG", "mr"])),
                        draw(
                            maybe(
                                [
                                    *("PROSTATE", "CHEST", "BREAST", "PELVIS", "lung"),
                                    *("ABDOMENPELVIS", "Abd/Pelvis", "chestabdpelvis"),
                                    "HEADNECK",
                                ]
                            )
                        ),
                        draw(
                            maybe(
                                [
                                    "SIEMENS",
                                    "GE MEDICAL SYSTEMS",
                                    "Philips Healthcare",
                                    "TOSHIBA",
                                    "GE",
                                ]
                            )
                        ),
                    )
                )
        for _ in range(draw(st.integers(0, 2))):
            rows["treatment"].append(
                (
                    f"t{next(serial)}",
                    pid,
                    draw(st.sampled_from(["surgery", "chemotherapy", "immunotherapy", "hormone"])),
                    draw(maybe(["cisplatin", "Pembrolizumab", "carboplatin"])),
                )
            )
        if draw(st.booleans()):
            rows["outcome"].append(
                (
                    pid,
                    draw(st.sampled_from(["alive", "deceased", "dead", "unknown"])),
                    draw(maybe([0, 100, 365, 1000, 3000])),
                )
            )
        for _ in range(draw(st.integers(0, 2))):
            rows["biomarker"].append(
                (
                    f"b{next(serial)}",
                    pid,
                    draw(st.sampled_from(["ER", "pr", "HER2", "PSA", "Ki67", "Estrogen receptor"])),
                    draw(maybe(["positive", "NEGATIVE", "equivocal", "MSS"])),
                    draw(maybe([0.5, 4.0, 10.0, 30.0])),
                )
            )
        for v in draw(st.lists(st.sampled_from(VARIANTS), max_size=2, unique=True)):
            rows["variant_call"].append((v[0], f"s{pid}", pid))
    return rows


INSERTS = {
    "dataset": "INSERT INTO dataset (id, name, description) VALUES (?, ?, ?)",
    "patient": "INSERT INTO patient (id, dataset_id, sex, birth_year) VALUES (?, ?, ?, ?)",
    "disease": "INSERT INTO disease (id, patient_id, icd10, topography, morphology, "
    "site_snomed, diagnosis_year, age_at_diagnosis, t_stage, n_stage, m_stage, "
    "stage_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "imaging_study": "INSERT INTO imaging_study (uid, patient_id, age_at_study) VALUES (?, ?, ?)",
    "imaging_series": "INSERT INTO imaging_series (uid, study_uid, patient_id, modality, "
    "body_part, manufacturer) VALUES (?, ?, ?, ?, ?, ?)",
    "treatment": "INSERT INTO treatment (id, patient_id, kind, agent) VALUES (?, ?, ?, ?)",
    "outcome": "INSERT INTO outcome (patient_id, vital_status, survival_days) VALUES (?, ?, ?)",
    "biomarker": "INSERT INTO biomarker (id, patient_id, name, value_code, value_number) "
    "VALUES (?, ?, ?, ?, ?)",
    "variant": "INSERT INTO variant (id, assembly, chrom, pos, ref, alt, gene) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)",
    "variant_call": "INSERT INTO variant_call (variant_id, biosample_id, patient_id) "
    "VALUES (?, ?, ?)",
}


def load(store: NodeStore, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    with store.transaction() as cur:
        for table in TABLES:
            cur.execute(f"DELETE FROM {table}")
        for table in TABLES:
            if rows[table]:  # one multi-row INSERT: DuckDB's executemany is slow
                head, _, one = INSERTS[table].partition(" VALUES ")
                cur.execute(
                    f"{head} VALUES " + ", ".join(one for _ in rows[table]),
                    [x for row in rows[table] for x in row],
                )


def cond(key: str, type_: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": type_, "value": value}


def code_conditions(key: str, codes: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.sampled_from(codes).map(lambda c: cond(key, "EQUALS", c)),
        st.sampled_from(codes).map(lambda c: cond(key, "NOT_EQUALS", c)),
        st.lists(st.sampled_from(codes), min_size=1, max_size=3).map(
            lambda cs: cond(key, "IN", cs)
        ),
    )


def number_conditions(key: str, lo: int, hi: int) -> st.SearchStrategy[dict[str, Any]]:
    n = st.integers(lo, hi)
    return st.one_of(
        st.builds(
            lambda t, v: cond(key, t, v),
            st.sampled_from(["EQUALS", "NOT_EQUALS", "LOWER_THAN", "GREATER_THAN"]),
            n,
        ),
        st.tuples(n, n).map(lambda ab: cond(key, "BETWEEN", {"min": min(ab), "max": max(ab)})),
        n.map(lambda a: cond(key, "BETWEEN", {"min": a})),
    )


CONDITIONS = st.one_of(
    code_conditions(
        "SNOMEDCT263495000",
        ["SNOMEDCT248153007", "SNOMEDCT248152002", "SNOMEDCT74964007", "SNOMEDCT261665006"],
    ),
    number_conditions("SNOMEDCT423493009", 20, 90),
    code_conditions(
        "SNOMEDCT439401001",
        ["SNOMEDCT399068003", "SNOMEDCT254837009", "SNOMEDCT363358000", "SNOMEDCT363351006"],
    ),
    number_conditions("SNOMEDCT432213005", 2000, 2022),
    code_conditions("RID10311", ["RID10312", "RID10321", "RID10337", "RID10334", "RID10357"]),
    code_conditions(
        "SNOMEDCT123037004",
        [
            *("SNOMEDCT41216001", "SNOMEDCT76752008", "SNOMEDCT39607008", "SNOMEDCT816092008"),
            *("SNOMEDCT818981001", "SNOMEDCT69536005"),
        ],
    ),
    code_conditions("C25392", ["C200140", "birnlex_12833", "birnlex_3065", "birnlex_3067"]),
    code_conditions("oncofed:t_stage", ["T1", "T1A", "T2", "TIS", "T4"]),
    code_conditions("oncofed:stage_group", ["I", "II", "III", "IIIB", "IV"]),
    code_conditions("oncofed:m_stage", ["M0", "M1"]),
    code_conditions("oncofed:morphology", ["8140/3", "8140", "8070/3"]),
    code_conditions("oncofed:topography", ["C34", "C34.3", "C61", "C50"]),
    code_conditions("oncofed:treatment", ["surgery", "chemotherapy", "hormone"]),
    code_conditions("oncofed:treatment_agent", ["cisplatin", "pembrolizumab"]),
    st.sampled_from(["platin", "PEMBRO"]).map(
        lambda v: cond("oncofed:treatment_agent", "CONTAINS", v)
    ),
    code_conditions("oncofed:vital_status", ["alive", "deceased", "unknown"]),
    number_conditions("oncofed:survival_days", 0, 3000),
    code_conditions("oncofed:marker:ER", ["positive", "negative"]),
    number_conditions("oncofed:marker:PSA", 0, 40),
    code_conditions("oncofed:gene", ["KRAS", "braf", "TP53"]),
    code_conditions(
        "oncofed:variant",
        [
            "chr12:25245350:C:T",
            "12:25245351:C:A",
            "GRCh38:chr7:140753336:A:T",
            "GRCh37:7:140453136:A:T",
        ],
    ),
)


def operations(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda o, cs: {"operand": o, "children": cs},
        st.sampled_from(["AND", "OR"]),
        st.lists(children, max_size=4),
    )


# Conditions on few keys of the same record groups, so that the same-record rule is exercised.
GROUPED = st.one_of(
    code_conditions("RID10311", ["RID10312", "RID10321"]),
    code_conditions("SNOMEDCT123037004", ["SNOMEDCT41216001", "SNOMEDCT39607008"]),
    code_conditions("C25392", ["C200140", "birnlex_3065"]),
    code_conditions("oncofed:gene", ["KRAS", "BRAF"]),
    code_conditions("oncofed:variant", ["chr12:25245350:C:T", "GRCh38:chr7:140753336:A:T"]),
    code_conditions("SNOMEDCT439401001", ["SNOMEDCT363358000", "SNOMEDCT399068003"]),
    code_conditions("oncofed:stage_group", ["I", "III"]),
)

QUERIES = st.one_of(
    st.recursive(CONDITIONS, operations, max_leaves=5),
    st.recursive(GROUPED, operations, max_leaves=5),
).map(lambda n: n if "operand" in n else {"operand": "AND", "children": [n]})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeStore]:
    s = NodeStore(Path(tmp_path_factory.mktemp("store")) / "node.duckdb")
    yield s
    s.close()


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=cohorts(), queries=st.lists(QUERIES, min_size=1, max_size=4))
def test_sql_counts_equal_python_evaluator(
    store: NodeStore, rows: dict[str, list[tuple[Any, ...]]], queries: list[dict[str, Any]]
) -> None:
    load(store, rows)
    assert_counts_agree(store, queries)


def assert_counts_agree(store: NodeStore, queries: list[dict[str, Any]]) -> None:
    """The SQL compiler, the in-memory path federated search takes (query.columnar) and the
    plain-Python reference evaluator count the same for every query."""
    with store.reading() as con:
        cohort = load_cohort(con)
        for raw in queries:
            op = parse_query(raw)
            expected = evaluate_counts(op, cohort)
            assert count_matches(con, op) == expected, raw
            assert store.search_counts(op) == expected, raw
            # Each subject's studies clipped to the policy's bound (here 1: the generator
            # gives a subject up to two studies).
            clipped = evaluate_counts(op, cohort, max_studies=1)
            assert count_matches(con, op, 1) == clipped, raw
            assert store.search_counts(op, 1) == clipped, raw
            assert all(c.studies <= c.subjects for c in clipped)


@settings(max_examples=80, deadline=None)
@given(QUERIES, st.randoms(use_true_random=False))
def test_canonical_form_ignores_order_and_is_stable(raw: dict[str, Any], rnd: Any) -> None:
    def shuffled(node: Any) -> Any:
        if "operand" not in node:
            return {**node, "system": "urn:x"}
        children = [shuffled(c) for c in node["children"]]
        rnd.shuffle(children)
        return {"operand": node["operand"], "children": children}

    op = parse_query(raw)
    assert parse_query(shuffled(raw)) == op
    assert parse_query(op.model_dump(mode="json", exclude_none=True)) == op  # idempotent
    assert parse_query({"operand": "OR", "children": [raw]}) == op


def test_search_index_follows_every_store_change(tmp_path: Path) -> None:
    """Counts come from the derived search index, which is never used stale."""
    path = tmp_path / "node.duckdb"
    store = NodeStore(path, threads=1)
    ct = parse_query({"operand": "AND", "children": [cond("RID10311", "EQUALS", "RID10321")]})
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    rows["dataset"] = [("ds0", "Dataset 0", "about it")]
    rows["patient"] = [("p1", "ds0", "female", 1970), ("p2", "ds0", "male", 1950)]
    rows["imaging_series"] = [("se1", "st1", "p1", "ct", "CHEST", "GE")]
    load(store, rows)

    def subjects() -> int:
        with store.reading() as con:
            counts = count_matches(con, ct)
            assert counts == evaluate_counts(ct, load_cohort(con))
        assert store.search_counts(ct) == counts  # the in-memory copy follows as well
        return counts[0].subjects

    assert subjects() == 1
    with store.transaction() as cur:  # a write through the store: the index follows
        cur.execute("UPDATE imaging_series SET modality = 'MR' WHERE uid = 'se1'")
    assert subjects() == 0
    cur = store.cursor()  # a write outside store.transaction() must invalidate explicitly
    cur.execute(
        "INSERT INTO imaging_series (uid, study_uid, patient_id, modality) "
        "VALUES ('se2', 'st2', 'p2', 'CT')"
    )
    cur.close()
    store.invalidate_search_index()
    assert subjects() == 1
    store.close()
    reopened = NodeStore(path)  # the index persists with the store and is still fresh
    assert reopened.refresh_search_index() is False
    store = reopened
    assert subjects() == 1
    assert store.refresh_search_index(force=True) is True
    store.close()
