"""Clinical CSV exports into the CDM, driven by a declarative mapping file (YAML).

The mapping (the format the synthetic generator writes as ``clinical/mapping.yaml``)::

    version: 1
    patient_key: {column: mrn, pseudonymise: true}   # links every table's rows to a patient
    dataset: {id: berlin-lung, name: ..., access_level: registered}   # optional
    tables:
      patient:                        # CDM table: patient | disease | tumour | biomarker |
        file: patients.csv            #   treatment | outcome | biosample
        fields:                       # CDM field: how to get it from the row
          patient_id: {column: mrn, pseudonymise: true}
          sex: {column: sex, values: {M: male, F: female}}
          birth_date: {column: birth_date, format: '%Y-%m-%d', phi: true}
        drop: [last_name, first_name]  # identifying columns never read
      treatment:
        fields:
          start_day: {derive: days_since, column: start_date, baseline: disease.diagnosis_date}

A field spec has ``column`` (the CSV column), ``values`` (local code → CDM value; anything
else is an error), ``format`` (a ``strptime`` date format), ``type`` (int | float | str),
``pseudonymise`` (replace by the node's keyed pseudonym), ``phi`` (identifying: used only to
derive coarse values, e.g. birth year, never stored), ``required``, ``system`` /
``system_column`` + ``systems`` (the code system of a code), and ``derive`` for computed fields:
``days_since`` (days from ``baseline``, ``disease.diagnosis_date`` by default) and
``site_from_icd10`` (``values`` maps ICD-10 prefixes to sites).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oncofed.node.ingest import codes
from oncofed.node.ingest.common import (
    COLUMNS,
    SEXES,
    ImportReport,
    Loader,
    NodeTarget,
    Pseudonyms,
    RecordError,
    TargetDataset,
    file_hash,
    import_unit,
    parse_date,
    prepare_dataset,
    replace_rows,
    run_import,
    upsert_patient,
)

KIND = "csv"
TABLE_ORDER = ("patient", "disease", "tumour", "biomarker", "biosample", "treatment", "outcome")
CDM_FIELDS: dict[str, tuple[str, ...]] = {
    "patient": ("patient_id", "sex", "birth_date", "birth_year"),
    "disease": (
        "disease_id",
        "patient_id",
        "diagnosis_date",
        "diagnosis_year",
        "age_at_diagnosis",
        "icd10",
        "topography",
        "morphology",
        "stage_t",
        "stage_n",
        "stage_m",
        "stage_group",
        "grade",
        "site",
    ),
    "tumour": ("tumour_id", "patient_id", "disease_id", "body_site", "laterality", "size_mm"),
    "biomarker": (
        "biomarker_id",
        "patient_id",
        "disease_id",
        "name",
        "value_code",
        "value_number",
        "day",
    ),
    "biosample": ("biosample_id", "patient_id", "sample_type", "collection_day"),
    "treatment": (
        "treatment_id",
        "patient_id",
        "disease_id",
        "type",
        "name",
        "code",
        "start_day",
        "end_day",
        "intent",
    ),
    "outcome": ("patient_id", "vital_status", "survival_days", "death_date"),
}


def _strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return value


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    pseudonymise: bool = False
    values: dict[str, str] | None = None
    format: str | None = None
    type: Literal["str", "int", "float"] | None = None
    phi: bool = False
    required: bool = False
    system: str | None = None
    system_column: str | None = None
    systems: dict[str, str] | None = None
    derive: Literal["days_since", "site_from_icd10"] | None = None
    baseline: str = "disease.diagnosis_date"

    _coerce = field_validator("values", "systems", mode="before")(_strings)


class TableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    fields: dict[str, FieldSpec]
    drop: list[str] = Field(default_factory=list)


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str | None = None
    description: str = ""
    access_level: Literal["public", "registered", "controlled"] | None = None


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    description: str = ""
    patient_key: FieldSpec
    dataset: DatasetSpec | None = None
    tables: dict[
        Literal["patient", "disease", "tumour", "biomarker", "biosample", "treatment", "outcome"],
        TableSpec,
    ]


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; errors name the file and the path inside it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecordError(str(path), "file", "-", "valid YAML", exc) from exc
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise RecordError(str(path), "mapping", where, err["msg"]) from exc
    for table, spec in mapping.tables.items():
        for name, f in spec.fields.items():
            if name not in CDM_FIELDS[table]:
                raise RecordError(
                    str(path),
                    "mapping",
                    f"tables.{table}.fields.{name}",
                    f"one of the CDM fields of {table}: {', '.join(CDM_FIELDS[table])}",
                )
            if f.column is None:
                raise RecordError(
                    str(path),
                    "mapping",
                    f"tables.{table}.fields.{name}.column",
                    "the name of a CSV column",
                )
            if f.derive == "days_since" and f.baseline != "disease.diagnosis_date":
                raise RecordError(
                    str(path),
                    "mapping",
                    f"tables.{table}.fields.{name}.baseline",
                    "disease.diagnosis_date (the only baseline dates are days from)",
                )
    return mapping


@dataclass
class Baselines:
    """Diagnosis dates by source disease id and by source patient key (earliest)."""

    by_disease: dict[str, date]
    by_patient: dict[str, date]


class _Row:
    """Reads CDM fields from one CSV row, raising RecordError with file, line and field."""

    def __init__(
        self, file: str, line: int, row: dict[str, str], table: str, pseudonyms: Pseudonyms
    ) -> None:
        self.file, self.line, self.row, self.table = file, line, row, table
        self.pseudonyms = pseudonyms

    def error(self, name: str, expected: str, found: object = None) -> RecordError:
        return RecordError(self.file, f"line {self.line}", name, expected, found)

    def raw(self, spec: FieldSpec) -> str | None:
        value = (self.row.get(spec.column or "") or "").strip()
        return value or None

    def value(self, name: str, spec: FieldSpec, kind: str | None = None) -> Any:
        raw = self.raw(spec)
        column = f"{name} (column {spec.column})"
        if raw is None:
            if spec.required:
                raise self.error(column, "a value (the field is required)")
            return None
        if spec.derive == "site_from_icd10":
            for prefix, site in (spec.values or {}).items():
                if raw.upper().startswith(prefix.upper()):
                    return codes.SITE_SNOMED.get(site, site)
            return codes.site_from_icd10(raw)
        if spec.values is not None:
            if raw not in spec.values:
                raise self.error(column, f"one of {', '.join(sorted(spec.values))}", raw)
            raw = spec.values[raw]
        if spec.format is not None or spec.derive == "days_since":
            try:
                return parse_date(raw, spec.format)
            except ValueError:
                raise self.error(
                    column, f"a date in the form {spec.format or 'YYYY-MM-DD'}", raw
                ) from None
        if spec.type == "int":
            try:
                return int(raw)
            except ValueError:
                raise self.error(column, "a whole number", raw) from None
        if spec.type == "float":
            try:
                return float(raw)
            except ValueError:
                raise self.error(column, "a number", raw) from None
        if spec.pseudonymise:
            return self.pseudonyms.of(kind or self.table, raw)
        return raw


def _read_csv(path: Path, spec: TableSpec, mapping: Mapping) -> tuple[list[str], list[Any]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        needed = {f.column for f in spec.fields.values() if f.column}
        needed |= {f.system_column for f in spec.fields.values() if f.system_column}
        if mapping.patient_key.column:
            needed.add(mapping.patient_key.column)
        missing = sorted(c for c in needed if c and c not in header)
        if missing:
            raise RecordError(
                str(path),
                "line 1 (header)",
                missing[0],
                f"a column named {missing[0]!r} (the mapping reads it); found {', '.join(header)}",
            )
        rows = []
        for row in reader:
            if None in row:
                raise RecordError(
                    str(path),
                    f"line {reader.line_num}",
                    "-",
                    f"{len(header)} columns as in the header",
                    f"{len(header) + len(row[None])}",
                )
            rows.append((reader.line_num, row))
    return header, rows


def _baselines(path: Path, mapping: Mapping, pseudonyms: Pseudonyms) -> Baselines:
    spec = mapping.tables["disease"]
    date_spec = spec.fields.get("diagnosis_date")
    out = Baselines({}, {})
    if date_spec is None:
        return out
    _, rows = _read_csv(path, spec, mapping)
    for line, row in rows:
        r = _Row(str(path), line, row, "disease", pseudonyms)
        when = r.value("diagnosis_date", date_spec)
        if when is None:
            continue
        disease = spec.fields.get("disease_id")
        if disease is not None and (key := r.raw(disease)):
            out.by_disease[key] = when
        patient = r.raw(mapping.patient_key)
        if patient and (patient not in out.by_patient or when < out.by_patient[patient]):
            out.by_patient[patient] = when
    return out


class _TableLoader:
    def __init__(
        self,
        path: Path,
        table: str,
        mapping: Mapping,
        pseudonyms: Pseudonyms,
        baselines: Baselines,
        dataset: str,
    ) -> None:
        self.path, self.table, self.mapping = path, table, mapping
        self.spec = mapping.tables[table]  # type: ignore[index]
        self.pseudonyms, self.baselines, self.dataset = pseudonyms, baselines, dataset

    def _patient(self, r: _Row) -> tuple[str, str]:
        spec = self.spec.fields.get("patient_id", self.mapping.patient_key)
        raw = r.raw(spec)
        if raw is None:
            raise r.error(f"patient_id (column {spec.column})", "the patient's identifier")
        return raw, self.pseudonyms.patient(raw)

    def _days(self, r: _Row, name: str, source_patient: str) -> int | None:
        spec = self.spec.fields.get(name)
        if spec is None:
            return None
        when = r.value(name, spec)
        if when is None:
            return None
        if not isinstance(when, date):
            raise r.error(name, "a date")
        base = None
        disease = self.spec.fields.get("disease_id")
        if disease is not None and (key := r.raw(disease)):
            base = self.baselines.by_disease.get(key)
        if base is None:
            base = self.baselines.by_patient.get(source_patient)
        if base is None:
            raise r.error(
                name, "a row whose patient or disease has a diagnosis date in the disease file"
            )
        return (when - base).days

    def _get(self, r: _Row, name: str, kind: str | None = None) -> Any:
        spec = self.spec.fields.get(name)
        return None if spec is None else r.value(name, spec, kind)

    def _code(self, r: _Row, name: str) -> str | None:
        value = self._get(r, name)
        if value is None:
            return None
        if name.startswith("stage_") and name != "stage_group":
            value = codes.strip_stage_prefix(str(value))
        field = {"stage_t": "t_stage", "stage_n": "n_stage", "stage_m": "m_stage"}.get(name, name)
        expected = codes.check(field, str(value))
        if expected is not None:
            raise r.error(f"{name} (column {self.spec.fields[name].column})", expected, value)
        return str(value)

    def __call__(self, cur: duckdb.DuckDBPyConnection) -> tuple[int, str]:
        _, rows = _read_csv(self.path, self.spec, self.mapping)
        build: Callable[[_Row, str, str], tuple[Any, ...]] = getattr(self, f"_build_{self.table}")
        out: list[tuple[Any, ...]] = []
        patients: dict[str, tuple[Any, ...]] = {}
        for line, row in rows:
            r = _Row(str(self.path), line, row, self.table, self.pseudonyms)
            source, pseudonym = self._patient(r)
            record = build(r, source, pseudonym)
            if self.table == "patient":
                patients[pseudonym] = record
            else:
                patients.setdefault(pseudonym, (pseudonym, self.dataset, None, None, KIND))
                out.append(record)
        upsert_patient(cur, list(patients.values()))
        if self.table != "patient":
            key = "patient_id" if self.table == "outcome" else "id"
            replace_rows(cur, self.table, COLUMNS[self.table], out, key)
        return len(rows), f"{self.table}: {len(rows)} rows"

    # One builder per CDM table: the row's values in the order of COLUMNS[table].

    def _build_patient(self, r: _Row, source: str, pseudonym: str) -> tuple[Any, ...]:
        sex = self._get(r, "sex")
        if sex is not None:
            sex = SEXES.get(str(sex).lower())
            if sex is None:
                raise r.error("sex", "male, female, other or unknown", self._get(r, "sex"))
        birth = self._get(r, "birth_date")
        year = birth.year if isinstance(birth, date) else self._get(r, "birth_year")
        return (pseudonym, self.dataset, sex, int(year) if year is not None else None, KIND)

    def _own_id(self, r: _Row, name: str, source: str, line_kind: str) -> str:
        spec = self.spec.fields.get(name)
        raw = r.raw(spec) if spec is not None else None
        if raw is None:  # no id column: one per patient and line
            raw = f"{source}#{line_kind}#{r.line}"
        return self.pseudonyms.of(line_kind, raw)

    def _disease_ref(self, r: _Row) -> str | None:
        spec = self.spec.fields.get("disease_id")
        raw = r.raw(spec) if spec is not None else None
        return self.pseudonyms.of("disease", raw) if raw else None

    def _build_disease(self, r: _Row, source: str, pseudonym: str) -> tuple[Any, ...]:
        when = self._get(r, "diagnosis_date")
        year = when.year if isinstance(when, date) else self._get(r, "diagnosis_year")
        icd10 = self._code(r, "icd10")
        site = self._get(r, "site") or codes.site_from_icd10(icd10)
        return (
            self._own_id(r, "disease_id", source, "disease"),
            pseudonym,
            icd10,
            self._code(r, "topography"),
            self._code(r, "morphology"),
            site,
            int(year) if year is not None else None,
            _int(r, "age_at_diagnosis", self._get(r, "age_at_diagnosis")),
            self._code(r, "stage_t"),
            self._code(r, "stage_n"),
            self._code(r, "stage_m"),
            self._code(r, "stage_group"),
            _str(self._get(r, "grade")),
        )

    def _build_tumour(self, r: _Row, source: str, pseudonym: str) -> tuple[Any, ...]:
        size = self._get(r, "size_mm")
        return (
            self._own_id(r, "tumour_id", source, "tumour"),
            pseudonym,
            self._disease_ref(r),
            _str(self._get(r, "body_site")),
            _str(self._get(r, "laterality")),
            _float(r, "size_mm", size),
        )

    def _build_biomarker(self, r: _Row, source: str, pseudonym: str) -> tuple[Any, ...]:
        name = self._get(r, "name")
        if name is None:
            raise r.error("name", "the marker's name (e.g. ER, HER2, PSA)")
        return (
            self._own_id(r, "biomarker_id", source, "biomarker"),
            pseudonym,
            self._disease_ref(r),
            str(name),
            _str(self._get(r, "value_code")),
            _float(r, "value_number", self._get(r, "value_number")),
            self._days(r, "day", source),
        )

    def _build_biosample(self, r: _Row, source: str, pseudonym: str) -> tuple[Any, ...]:
        return (
            self._own_id(r, "biosample_id", source, "sample"),
            pseudonym,
            _str(self._get(r, "sample_type")),
            self._days(r, "collection_day", source),
            self.dataset,
        )

    def _build_treatment(self, r: _Row, source: str, pseudonym: str) -> tuple[Any, ...]:
        kind = self._get(r, "type")
        if kind not in codes.TREATMENT_KINDS:
            column = self.spec.fields["type"].column if "type" in self.spec.fields else "-"
            raise r.error(
                f"type (column {column})",
                f"one of {', '.join(codes.TREATMENT_KINDS)} (map local codes with 'values')",
                kind,
            )
        system = None
        code_spec = self.spec.fields.get("code")
        if code_spec is not None:
            system = code_spec.system
            if code_spec.system_column:
                local = (r.row.get(code_spec.system_column) or "").strip()
                if local:
                    systems = code_spec.systems or {}
                    if systems and local not in systems:
                        raise r.error(
                            f"code (column {code_spec.system_column})",
                            f"one of {', '.join(sorted(systems))}",
                            local,
                        )
                    system = systems.get(local, local)
        return (
            self._own_id(r, "treatment_id", source, "treatment"),
            pseudonym,
            self._disease_ref(r),
            kind,
            _str(self._get(r, "name")),
            self._days(r, "start_day", source),
            self._days(r, "end_day", source),
            _str(self._get(r, "code")),
            system,
            _str(self._get(r, "intent")),
        )

    def _build_outcome(self, r: _Row, source: str, pseudonym: str) -> tuple[Any, ...]:
        raw = self._get(r, "vital_status")
        status = codes.VITAL.get(str(raw).lower()) if raw is not None else "unknown"
        if status is None:
            raise r.error("vital_status", "alive, dead or unknown (map local codes)", raw)
        return (pseudonym, status, self._days(r, "survival_days", source), status == "deceased")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(r: _Row, name: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise r.error(name, "a whole number", value) from None


def _float(r: _Row, name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise r.error(name, "a number", value) from None


def _resolve_files(paths: list[Path], mapping: Mapping, mapping_path: Path) -> dict[str, Path]:
    """CDM table → CSV file: the mapping's file names looked up in the given paths."""
    by_name: dict[str, Path] = {}
    for p in paths:
        if p.is_dir():
            for f in p.iterdir():
                by_name.setdefault(f.name, f)
        elif p.is_file():
            by_name[p.name] = p
        else:
            raise RecordError(str(p), "file", "-", "an existing CSV file or folder")
    out: dict[str, Path] = {}
    for table, spec in mapping.tables.items():
        found = by_name.get(Path(spec.file).name)
        if found is None and not paths:
            candidate = mapping_path.parent / spec.file
            found = candidate if candidate.is_file() else None
        if found is not None:
            out[table] = found
    return out


def ingest_clinical(
    paths: list[Path],
    mapping_path: Path,
    target: NodeTarget,
    dataset: str | None = None,
    access_level: str | None = None,
) -> ImportReport:
    """Import the CSV files of a mapping as one: all files in one transaction or none (a
    bad birth date in patients.csv keeps the diagnoses and treatments out too, and the
    report names the file and line); a rerun of the same files is skipped."""
    mapping = load_mapping(mapping_path)
    files = _resolve_files(paths, mapping, mapping_path)
    dataset_id = dataset or (mapping.dataset.id if mapping.dataset else None)
    dataset_id = dataset_id or target.default_dataset("clinical")
    level = access_level or (mapping.dataset.access_level if mapping.dataset else None)
    spec = TargetDataset(
        dataset_id,
        mapping.dataset.name if mapping.dataset else None,
        (mapping.dataset.description if mapping.dataset else "")
        or "Clinical records imported from CSV",
        level,
    )
    prepare_dataset(target.store, spec)
    report = ImportReport(f"clinical CSV import into {dataset_id}")
    baselines = Baselines({}, {})
    if "disease" in files:
        # A bad disease file is rejected below with the same message.
        with contextlib.suppress(RecordError):
            baselines = _baselines(files["disease"], mapping, target.pseudonyms)
    parts: list[tuple[Path, Loader]] = [
        (files[t], _TableLoader(files[t], t, mapping, target.pseudonyms, baselines, dataset_id))
        for t in TABLE_ORDER
        if t in files
    ]
    if parts:
        # The mapping is part of what was imported: a changed mapping re-imports the files.
        digest = _combined_hash([p for p, _ in parts], mapping_path)
        import_unit(target.store, report, parts, KIND, spec, digest)
    return report


def _combined_hash(paths: list[Path], mapping_path: Path) -> str:
    joined = ":".join(file_hash(p) for p in [*paths, mapping_path])
    return hashlib.sha256(joined.encode()).hexdigest()


def clinical_command(
    paths: list[Path],
    mapping: Path | None,
    node_dir: Path,
    dataset: str | None = None,
    access_level: str | None = None,
) -> ImportReport:
    """`oncofed node ingest clinical PATHS --mapping mapping.yaml`: CSV exports via a mapping."""
    mapping = resolve_mapping(paths, mapping)
    return run_import(
        node_dir, lambda target: ingest_clinical(paths, mapping, target, dataset, access_level)
    )


def resolve_mapping(paths: list[Path], mapping: Path | None) -> Path:
    """The mapping to use: the one given, else ``mapping.yaml`` beside (or inside) the first
    path; a clear error naming the option when there is none."""
    if mapping is not None:
        return mapping
    first = paths[0] if paths else Path(".")
    folder = first if first.is_dir() else first.parent
    found = folder / "mapping.yaml"
    if not found.is_file():
        raise RecordError(
            str(found), "file", "--mapping", "a mapping file (give it with --mapping)"
        )
    return found
