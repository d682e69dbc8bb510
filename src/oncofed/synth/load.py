"""Load synthetic patients straight into a node store, without writing source files.

The search and Beacon benchmarks need 100,000 patients per node in seconds, and writing
then re-importing DICOM, CSV and VCF files would measure the importers instead. The rows
are the ones the importers produce for the same records: the same keyed pseudonyms, coded
values as the CDM stores them, dates as years or days from diagnosis. Tests that check the
importers themselves go through the files.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable
from pathlib import Path

import duckdb

from oncofed.node.store import NodeStore
from oncofed.security.pseudonym import pseudonymise
from oncofed.synth.model import PatientRecord

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "patient": ("id", "dataset_id", "sex", "birth_year", "source"),
    "disease": (
        "id",
        "patient_id",
        "icd10",
        "topography",
        "morphology",
        "site_snomed",
        "diagnosis_year",
        "age_at_diagnosis",
        "t_stage",
        "n_stage",
        "m_stage",
        "stage_group",
    ),
    "treatment": ("id", "patient_id", "disease_id", "kind", "agent", "start_day", "end_day"),
    "outcome": ("patient_id", "vital_status", "survival_days", "event"),
    "imaging_study": ("uid", "patient_id", "study_month", "description", "age_at_study"),
    "imaging_series": (
        "uid",
        "study_uid",
        "patient_id",
        "modality",
        "body_part",
        "manufacturer",
        "model",
        "series_month",
        "description",
        "slice_thickness",
        "rows_",
        "columns_",
        "num_instances",
        "seg_source_series_uid",
    ),
    "biosample": ("id", "patient_id", "sample_type", "collection_day"),
    "variant_call": ("variant_id", "biosample_id", "patient_id", "genotype", "zygosity"),
}
VARIANT_COLUMNS = (
    "id",
    "assembly",
    "chrom",
    "pos",
    "ref",
    "alt",
    "variant_type",
    "gene",
    "consequence",
    "hgvs_p",
)


def rows_for(record: PatientRecord, secret: bytes, dataset_id: str) -> dict[str, list[tuple]]:
    """The CDM rows of one synthetic patient, keyed by table."""
    p, d = record.patient, record.diagnosis
    pid = pseudonymise(secret, p.provider_id, p.mrn)
    disease_id = f"{pid}-d1"
    out: dict[str, list[tuple]] = {t: [] for t in TABLE_COLUMNS}
    out["patient"].append((pid, dataset_id, p.sex, p.birth_date.year, "synth"))
    out["disease"].append(
        (
            disease_id,
            pid,
            d.icd10,
            d.icdo3_topography,
            d.icdo3_morphology,
            d.snomed,
            d.diagnosis_date.year,
            d.age_at_diagnosis,
            d.t,
            d.n,
            d.m,
            d.stage_group,
        )
    )
    for i, t in enumerate(record.treatments):
        out["treatment"].append(
            (f"{pid}-t{i + 1}", pid, disease_id, t.kind, t.name, t.start_day, t.end_day)
        )
    o = record.outcome
    out["outcome"].append(
        (
            pid,
            "deceased" if o.vital_status == "dead" else o.vital_status,
            o.survival_days,
            o.vital_status == "dead",
        )
    )
    for study in record.studies:
        study_uid = pseudonymise(secret, p.provider_id, study.uid, kind="uid")
        month = study.date.strftime("%Y-%m")
        age = d.age_at_diagnosis + study.day // 365
        out["imaging_study"].append((study_uid, pid, month, study.description, age))
        by_number = {s.number: s for s in study.series}
        for s in study.series:
            source = by_number.get(s.referenced_series_number or -1)
            out["imaging_series"].append(
                (
                    pseudonymise(secret, p.provider_id, s.uid, kind="uid"),
                    study_uid,
                    pid,
                    s.modality,
                    s.body_part,
                    s.manufacturer,
                    s.model_name,
                    month,
                    s.description,
                    s.slice_thickness,
                    s.rows,
                    s.columns,
                    s.num_instances,
                    pseudonymise(secret, p.provider_id, source.uid, kind="uid") if source else None,
                )
            )
    if record.sample_id is not None:
        sample = pseudonymise(secret, p.provider_id, record.sample_id, kind="sample")
        out["biosample"].append((sample, pid, "tumour", 0))
        for v in record.variants:
            out["variant_call"].append(
                (f"GRCh38:{v.chrom}:{v.pos}:{v.ref}:{v.alt}", sample, pid, "0/1", "heterozygous")
            )
    return out


def load_records(
    store: NodeStore,
    records: Iterable[PatientRecord],
    secret: bytes,
    dataset_id: str,
    dataset_name: str,
    batch: int = 20_000,
) -> int:
    """Bulk-load records (CSV + COPY per table, one transaction per batch); returns patients."""
    loaded = 0
    variants: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory(prefix="oncofed-load-") as tmp:
        buffers: dict[str, list[tuple]] = {t: [] for t in TABLE_COLUMNS}
        with store.transaction() as con:
            con.execute(
                "INSERT INTO dataset (id, name, description) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [dataset_id, dataset_name, "synthetic patients (oncofed synth)"],
            )
        for record in records:
            for table, rows in rows_for(record, secret, dataset_id).items():
                buffers[table].extend(rows)
            for v in record.variants:
                key = f"GRCh38:{v.chrom}:{v.pos}:{v.ref}:{v.alt}"
                variants.setdefault(
                    key,
                    (
                        key,
                        "GRCh38",
                        v.chrom,
                        v.pos,
                        v.ref,
                        v.alt,
                        "SNV" if len(v.ref) == len(v.alt) == 1 else "INDEL",
                        v.gene,
                        v.consequence,
                        v.hgvs_p,
                    ),
                )
            loaded += 1
            if loaded % batch == 0:
                _flush(store, buffers, Path(tmp))
        _flush(store, buffers, Path(tmp))
        with store.transaction() as con:
            existing = {r[0] for r in con.execute("SELECT id FROM variant").fetchall()}
            new = [v for k, v in variants.items() if k not in existing]
            if new:
                _copy(con, "variant", VARIANT_COLUMNS, new, Path(tmp))
    store.refresh_search_index()  # now rather than on the first search
    return loaded


def _flush(store: NodeStore, buffers: dict[str, list[tuple]], tmp: Path) -> None:
    with store.transaction() as con:
        for table, rows in buffers.items():
            if rows:
                _copy(con, table, TABLE_COLUMNS[table], rows, tmp)
                rows.clear()


def _copy(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple],
    tmp: Path,
) -> None:
    path = tmp / f"{table}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    con.execute(f"COPY {table} ({', '.join(columns)}) FROM '{path}' (HEADER false, NULL '')")


def fill_node(node_dir: Path, provider_index: int, patients: int, seed: int = 7) -> int:
    """Fill a stopped node's store with the synthetic patients of one provider; returns the
    number of patients loaded. Used by the tests and the benchmarks."""
    from oncofed.security.pseudonym import load_secret
    from oncofed.settings import load_node_settings
    from oncofed.synth.generate import iter_patients

    settings = load_node_settings(node_dir)
    store = NodeStore(settings.resolve(settings.store_file))
    try:
        return load_records(
            store,
            iter_patients(provider_index, patients, seed=seed),
            load_secret(settings.resolve(settings.secret_file)),
            f"{settings.provider_id}-cohort",
            f"{settings.name} cohort",
        )
    finally:
        store.close()
