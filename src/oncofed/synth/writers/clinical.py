"""The clinical export of a hospital: CSV files with local column names and local codes,
plus `mapping.yaml`, the declarative mapping an importer uses to read them into the common
data model (STANDARDS §7).

Local codes on purpose (sex M/F, treatment OP/RT/CT/IT/TT/HT, vital status A/D): a real
export never speaks the CDM's vocabulary, and the importer must be shown how to translate.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

from oncofed.synth.lesion import ABSENT, LESION_MARKER, PRESENT
from oncofed.synth.model import PatientRecord

TREATMENT_CODES = {
    "surgery": "OP",
    "radiotherapy": "RT",
    "chemotherapy": "CT",
    "immunotherapy": "IT",
    "targeted": "TT",
    "hormone": "HT",
}

COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": (
        "mrn",
        "last_name",
        "first_name",
        "sex",
        "birth_date",
        "street",
        "postcode",
        "city",
        "phone",
        "national_id",
    ),
    "diagnoses": (
        "mrn",
        "diagnosis_id",
        "diagnosis_date",
        "age_at_dx",
        "icd10",
        "icdo3_topography",
        "icdo3_morphology",
        "histology_text",
        "t",
        "n",
        "m",
        "stage_group",
        "grade",
    ),
    "treatments": (
        "mrn",
        "treatment_id",
        "diagnosis_id",
        "tx_type",
        "tx_name",
        "tx_code",
        "tx_code_system",
        "start_date",
        "end_date",
        "intent",
    ),
    "outcomes": ("mrn", "vital_status", "last_contact_date", "death_date"),
    # Findings per patient; today the imaging lesion read on the patient's scans.
    "biomarkers": ("mrn", "biomarker_id", "diagnosis_id", "marker", "result"),
}


class ClinicalWriter:
    """Streams patient records into the four CSV files; use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "clinical"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}
        self._writers: dict[str, Any] = {}
        self.rows: dict[str, int] = dict.fromkeys(COLUMNS, 0)

    def __enter__(self) -> ClinicalWriter:
        for name, columns in COLUMNS.items():
            handle = (self.folder / f"{name}.csv").open("w", newline="", encoding="utf-8")
            self._files[name] = handle
            self._writers[name] = csv.writer(handle, lineterminator="\n")
            self._writers[name].writerow(columns)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._files.values():
            handle.close()

    def _row(self, name: str, row: list[object]) -> None:
        self._writers[name].writerow(row)
        self.rows[name] += 1

    def write(self, record: PatientRecord) -> None:
        """Append one patient's rows to every file."""
        p, d, o = record.patient, record.diagnosis, record.outcome
        self._row(
            "patients",
            [
                p.mrn,
                p.family_name,
                p.given_name,
                "M" if p.sex == "male" else "F",
                p.birth_date.isoformat(),
                p.address,
                p.postcode,
                p.city,
                p.phone,
                p.other_id,
            ],
        )
        self._row(
            "diagnoses",
            [
                p.mrn,
                d.id,
                d.diagnosis_date.isoformat(),
                d.age_at_diagnosis,
                d.icd10,
                d.icdo3_topography,
                d.icdo3_morphology,
                d.morphology_label,
                d.t,
                d.n,
                d.m,
                d.stage_group,
                d.grade,
            ],
        )
        for t in record.treatments:
            start = d.diagnosis_date.toordinal() + t.start_day
            end = d.diagnosis_date.toordinal() + t.end_day
            self._row(
                "treatments",
                [
                    p.mrn,
                    t.id,
                    d.id,
                    TREATMENT_CODES[t.kind],
                    t.name,
                    t.code,
                    "ATC" if "whocc" in t.code_system else "SNOMED",
                    date.fromordinal(start).isoformat(),
                    date.fromordinal(end).isoformat(),
                    t.intent[0].upper(),
                ],
            )
        self._row(
            "outcomes",
            [
                p.mrn,
                "D" if o.vital_status == "dead" else "A",
                o.last_contact_date.isoformat(),
                o.death_date.isoformat() if o.death_date else "",
            ],
        )
        self._row(
            "biomarkers",
            [
                p.mrn,
                f"{d.id}-{LESION_MARKER}",
                d.id,
                LESION_MARKER,
                PRESENT if record.lesion.present else ABSENT,
            ],
        )


MAPPING: dict[str, Any] = {
    "version": 1,
    "description": (
        "How this provider's clinical CSV export maps to the oncofed common data model "
        "(EUCAIM CDM, mCODE-based; STANDARDS section 7). Read by the node's CSV importer. "
        "'column' names a CSV column; 'values' translates local codes; 'derive' names a "
        "computation the importer knows. Columns marked 'phi: true' are identifying: the "
        "importer drops them or replaces them by the provider's keyed pseudonym."
    ),
    "patient_key": {"column": "mrn", "pseudonymise": True},
    "tables": {
        "patient": {
            "file": "patients.csv",
            "fields": {
                "patient_id": {"column": "mrn", "pseudonymise": True},
                "sex": {"column": "sex", "values": {"M": "male", "F": "female"}},
                "birth_date": {"column": "birth_date", "format": "%Y-%m-%d", "phi": True},
            },
            "drop": [
                "last_name",
                "first_name",
                "street",
                "postcode",
                "city",
                "phone",
                "national_id",
            ],
        },
        "disease": {
            "file": "diagnoses.csv",
            "fields": {
                "disease_id": {"column": "diagnosis_id", "pseudonymise": True},
                "patient_id": {"column": "mrn", "pseudonymise": True},
                "diagnosis_date": {"column": "diagnosis_date", "format": "%Y-%m-%d"},
                "age_at_diagnosis": {"column": "age_at_dx", "type": "int"},
                "icd10": {"column": "icd10", "system": "http://hl7.org/fhir/sid/icd-10"},
                "topography": {"column": "icdo3_topography", "system": "ICD-O-3"},
                "morphology": {"column": "icdo3_morphology", "system": "ICD-O-3"},
                "stage_t": {"column": "t"},
                "stage_n": {"column": "n"},
                "stage_m": {"column": "m"},
                "stage_group": {"column": "stage_group", "system": "AJCC 8th edition"},
                "grade": {"column": "grade", "type": "int"},
                "site": {
                    "derive": "site_from_icd10",
                    "column": "icd10",
                    "values": {
                        "C34": "lung",
                        "C50": "breast",
                        "C61": "prostate",
                        "C18": "colon",
                        "C20": "rectum",
                        "C43": "melanoma",
                        "C25": "pancreas",
                        "C64": "kidney",
                    },
                },
            },
            "drop": ["histology_text"],
        },
        "treatment": {
            "file": "treatments.csv",
            "fields": {
                "treatment_id": {"column": "treatment_id", "pseudonymise": True},
                "disease_id": {"column": "diagnosis_id", "pseudonymise": True},
                "type": {"column": "tx_type", "values": {v: k for k, v in TREATMENT_CODES.items()}},
                "name": {"column": "tx_name"},
                "code": {
                    "column": "tx_code",
                    "system_column": "tx_code_system",
                    "systems": {
                        "ATC": "http://www.whocc.no/atc",
                        "SNOMED": "http://snomed.info/sct",
                    },
                },
                "start_day": {
                    "derive": "days_since",
                    "column": "start_date",
                    "baseline": "disease.diagnosis_date",
                },
                "end_day": {
                    "derive": "days_since",
                    "column": "end_date",
                    "baseline": "disease.diagnosis_date",
                },
                "intent": {"column": "intent", "values": {"C": "curative", "P": "palliative"}},
            },
        },
        "outcome": {
            "file": "outcomes.csv",
            "fields": {
                "patient_id": {"column": "mrn", "pseudonymise": True},
                "vital_status": {"column": "vital_status", "values": {"A": "alive", "D": "dead"}},
                "survival_days": {
                    "derive": "days_since",
                    "column": "last_contact_date",
                    "baseline": "disease.diagnosis_date",
                },
                "death_date": {"column": "death_date", "format": "%Y-%m-%d", "phi": True},
            },
        },
        "biomarker": {
            "file": "biomarkers.csv",
            "fields": {
                "biomarker_id": {"column": "biomarker_id", "pseudonymise": True},
                "patient_id": {"column": "mrn", "pseudonymise": True},
                "disease_id": {"column": "diagnosis_id", "pseudonymise": True},
                "name": {"column": "marker"},
                "value_code": {
                    "column": "result",
                    "values": {PRESENT: PRESENT, ABSENT: ABSENT},
                },
            },
        },
    },
}


def write_mapping(root: Path) -> Path:
    """Write `clinical/mapping.yaml` (the same for every provider, since the exports share a
    layout) and return its path."""
    path = root / "clinical" / "mapping.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("# Declarative mapping from this clinical export to the oncofed CDM.\n")
        yaml.safe_dump(MAPPING, handle, sort_keys=False, allow_unicode=True, width=100)
    return path
