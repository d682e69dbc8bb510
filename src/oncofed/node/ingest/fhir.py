"""FHIR R4 mCODE bundles (or single resources) into the CDM.

Each file is validated as FHIR (``fhir.resources``, R4B models, which read R4 content) and
then read for: Patient (sex, birth year, death), Condition (primary cancer: ICD-10, SNOMED,
ICD-O-3 topography and morphology, onset = the baseline), Observation (TNM categories and
stage group, tumour markers, vital status), Procedure (surgery, radiotherapy) and
MedicationRequest / MedicationAdministration (systemic therapy). Dates become days from the
patient's diagnosis. A patient is identified by its medical record number (identifier of
type ``MR``) when it has one, else by its FHIR id; references between files are resolved
by a first pass over all files, so a folder of single resources imports as well as bundles.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from oncofed.node.ingest import codes, vocab
from oncofed.node.ingest.common import (
    COLUMNS,
    ImportReport,
    NodeTarget,
    Pseudonyms,
    RecordError,
    TargetDataset,
    age_at,
    import_file,
    prepare_dataset,
    replace_rows,
    run_import,
    upsert_patient,
)

KIND = "fhir"
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
# LOINC and SNOMED codes of the TNM observations (clinical and pathological).
TNM_CODES = {
    "t_stage": {"21905-5", "21899-0", "399504009", "384625004", "78873005"},
    "n_stage": {"21906-3", "21900-6", "399534004", "371494008", "277206009"},
    "m_stage": {"21907-1", "21901-4", "399387003", "371497001", "277208005"},
    "stage_group": {"21908-9", "21902-2", "399537006", "399390009", "258232004"},
}
TNM_PROFILES = {
    "t_stage": "tnm-primary-tumor-category",
    "n_stage": "tnm-regional-nodes-category",
    "m_stage": "tnm-distant-metastases-category",
    "stage_group": "tnm-stage-group",
}
VITAL_STATUS = {"419099009": "deceased", "438949009": "alive"}
MED_KINDS = {
    "chemotherapy": "chemotherapy",
    "immunotherapy": "immunotherapy",
    "targeted": "targeted",
    "targeted therapy": "targeted",
    "hormone": "hormone",
    "hormone therapy": "hormone",
    "endocrine therapy": "hormone",
}
SEX = {"male": "male", "female": "female", "other": "other", "unknown": "unknown"}


def _codings(concept: Any) -> list[dict[str, Any]]:
    if isinstance(concept, list):
        return [c for item in concept for c in _codings(item)]
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding", []) if isinstance(c, dict)]


def _code(concept: Any, *systems: str) -> str | None:
    for c in _codings(concept):
        if not systems or c.get("system") in systems:
            return c.get("code")
    return None


def _display(concept: Any) -> str | None:
    if isinstance(concept, dict) and concept.get("text"):
        return str(concept["text"])
    for c in _codings(concept):
        if c.get("display"):
            return str(c["display"])
        if c.get("code"):
            return str(c["code"])
    return None


def _profiles(resource: dict[str, Any]) -> list[str]:
    return list(resource.get("meta", {}).get("profile", []))


def _has_profile(resource: dict[str, Any], suffix: str) -> bool:
    return any(p.startswith(MCODE) and p.endswith(suffix) for p in _profiles(resource))


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value[:10]
    if len(text) == 4:
        text += "-07-01"
    elif len(text) == 7:
        text += "-15"
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _start_end(resource: dict[str, Any], *names: str) -> tuple[date | None, date | None]:
    for name in names:
        value = resource.get(name)
        if isinstance(value, dict):
            return _date(value.get("start")), _date(value.get("end"))
        if isinstance(value, str):
            return _date(value), None
    return None, None


def _ref_id(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        return ref["reference"].rsplit("/", 1)[-1].removeprefix("urn:uuid:")
    return None


def _resources(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """(record label, resource) pairs of a bundle or a single resource."""
    if not isinstance(data, dict):
        return []
    if data.get("resourceType") == "Bundle":
        out = []
        for i, entry in enumerate(data.get("entry", [])):
            r = entry.get("resource")
            if isinstance(r, dict):
                out.append((f"entry {i} ({r.get('resourceType')}/{r.get('id', '?')})", r))
        return out
    return [(f"{data.get('resourceType')}/{data.get('id', '?')}", data)]


def is_ndjson(path: Path) -> bool:
    return path.suffix in (".ndjson", ".jsonl")


def read_resources(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(record label, resource) of a file: a Bundle, one resource, or NDJSON (one resource
    a line, as FHIR Bulk Data exports write them), each checked against the FHIR models."""
    if not is_ndjson(path):
        return _resources(read_fhir(path))
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise RecordError(str(path), "file", "-", "UTF-8 NDJSON", exc) from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(
                str(path), f"line {n}", "-", "one FHIR resource as JSON", exc
            ) from exc
        _validate(path, data, f"line {n}")
        out.append((f"line {n} ({data.get('resourceType')}/{data.get('id', '?')})", data))
    return out


def read_fhir(path: Path) -> dict[str, Any]:
    """The file's JSON, checked against the FHIR models; errors name the entry and field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(str(path), "file", "-", "a FHIR JSON resource or Bundle", exc) from exc
    _validate(path, data, "resource")
    return data


def _validate(path: Path, data: Any, record: str) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    kind = data.get("resourceType") if isinstance(data, dict) else None
    if not isinstance(kind, str):
        raise RecordError(str(path), record if record != "resource" else "file", "resourceType",
                          "a FHIR resource")  # fmt: skip
    try:
        model = get_fhir_model_class(kind)
    except KeyError as exc:
        raise RecordError(
            str(path), "file", "resourceType", "a FHIR R4 resource type", kind
        ) from exc
    try:
        model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        if len(loc) >= 3 and loc[0] == "entry" and isinstance(loc[1], int):
            entry = data.get("entry", [])[loc[1]].get("resource", {})
            record = f"entry {loc[1]} ({entry.get('resourceType')}/{entry.get('id', '?')})"
            loc = loc[3:]
        where = ".".join(str(p) for p in loc) or "-"
        raise RecordError(
            str(path), record, where, f"valid FHIR ({err['msg']})", err.get("input")
        ) from exc


@dataclass
class Index:
    """What a first pass over all files knows: patients' source ids and diagnosis dates."""

    patients: dict[str, str] = field(default_factory=dict)  # FHIR id → source id
    births: dict[str, date] = field(default_factory=dict)
    baselines: dict[str, date] = field(default_factory=dict)  # FHIR patient id → diagnosis

    def add(self, resources: list[tuple[str, dict[str, Any]]]) -> None:
        for _, r in resources:
            kind = r.get("resourceType")
            if kind == "Patient" and r.get("id"):
                self.patients[r["id"]] = _source_id(r)
                born = _date(r.get("birthDate"))
                if born:
                    self.births[r["id"]] = born
            elif kind == "Condition" and _is_primary_cancer(r):
                pid = _ref_id(r.get("subject"))
                onset = _date(r.get("onsetDateTime")) or _date(r.get("recordedDate"))
                if pid and onset and (pid not in self.baselines or onset < self.baselines[pid]):
                    self.baselines[pid] = onset


def _source_id(patient: dict[str, Any]) -> str:
    for ident in patient.get("identifier", []):
        mr = _code(ident.get("type"), "http://terminology.hl7.org/CodeSystem/v2-0203") == "MR"
        if mr and ident.get("value"):
            return str(ident["value"])
    return f"fhir:{patient.get('id')}"


def _is_primary_cancer(r: dict[str, Any]) -> bool:
    """mCODE's primary cancer profile, else a malignant ICD-10 code, else a SNOMED CT
    cancer concept of the shipped table (Synthea codes cancers with SNOMED CT only)."""
    if _has_profile(r, "primary-cancer-condition"):
        return True
    if _has_profile(r, "secondary-cancer-condition"):
        return False
    icd = _code(r.get("code"), *ICD10_SYSTEMS)
    if icd:
        return icd.startswith("C")
    cancer = vocab.cancers().get(_code(r.get("code"), SNOMED) or "")
    return cancer is not None and cancer.primary


_STAGE_TEXT = re.compile(r"\b([cpy]?[TNM](?:X|is|\d[a-d]?\d?)|stage (?:0|I{1,3}V?|IV)[A-C]?\d?)\b")


def _stage_value(field_name: str, concept: Any) -> str | None:
    """A TNM value from a coded answer: 'cT3', 'IIB' (from the code, else from the display)."""
    for c in _codings(concept):
        for text in (c.get("code", ""), c.get("display", "")):
            if not text:
                continue
            if field_name == "stage_group":
                m = re.search(
                    r"(?:stage\s+)?\b(0|I{1,3}|IV)([A-C]\d?)?\b", text.replace("Stage", "stage")
                )
                if m and codes.check("stage_group", m.group(0).split()[-1]) is None:
                    return m.group(0).split()[-1]
            else:
                value = (
                    codes.strip_stage_prefix(text.split()[-1])
                    if " " in text
                    else codes.strip_stage_prefix(text)
                )
                if codes.check(field_name, value) is None:
                    return value
                m = _STAGE_TEXT.search(text)
                if m and codes.check(field_name, codes.strip_stage_prefix(m.group(1))) is None:
                    return codes.strip_stage_prefix(m.group(1))
    return None


class _FhirLoader:
    def __init__(self, path: Path, pseudonyms: Pseudonyms, index: Index, dataset: str) -> None:
        self.path, self.pseudonyms, self.index, self.dataset = path, pseudonyms, index, dataset

    def _patient(self, record: str, r: dict[str, Any]) -> tuple[str, str]:
        fhir_id = _ref_id(r.get("subject")) or _ref_id(r.get("patient"))
        if fhir_id is None:
            raise RecordError(str(self.path), record, "subject", "a reference to the Patient")
        source = self.index.patients.get(fhir_id, f"fhir:{fhir_id}")
        return fhir_id, self.pseudonyms.patient(source)

    def _day(self, fhir_id: str, when: date | None) -> int | None:
        base = self.index.baselines.get(fhir_id)
        return None if base is None or when is None else (when - base).days

    def __call__(self, cur: duckdb.DuckDBPyConnection) -> tuple[int, str]:
        resources = read_resources(self.path)
        known = self._known_patients(cur, resources)
        dangling: dict[str, int] = {}
        patients: dict[str, tuple[Any, ...]] = {}
        diseases: list[tuple[Any, ...]] = []
        stages: dict[str, dict[str, str]] = {}
        biomarkers: list[tuple[Any, ...]] = []
        treatments: list[tuple[Any, ...]] = []
        outcomes: dict[str, tuple[Any, ...]] = {}
        administered: set[tuple[str, str | None]] = set()
        requests: list[tuple[str, dict[str, Any]]] = []
        count = 0
        for record, r in resources:
            kind = r.get("resourceType")
            rid = str(r.get("id") or f"{self.path.name}#{record}")
            if kind == "Patient":
                count += 1
                pseudonym = self.pseudonyms.patient(_source_id(r))
                sex = SEX.get(str(r.get("gender", "unknown")), "unknown")
                born = _date(r.get("birthDate"))
                patients[pseudonym] = (
                    pseudonym,
                    self.dataset,
                    sex,
                    born.year if born else None,
                    KIND,
                )
                dead = _date(r.get("deceasedDateTime"))
                if dead is not None or r.get("deceasedBoolean") is True:
                    day = self._day(str(r.get("id")), dead)
                    outcomes[pseudonym] = (pseudonym, "deceased", day, True)
                continue
            if kind not in (
                "Condition",
                "Observation",
                "Procedure",
                "MedicationRequest",
                "MedicationAdministration",
            ):
                continue
            fhir_id, pseudonym = self._patient(record, r)
            if pseudonym not in known:  # no stub for a patient the import does not hold
                dangling[fhir_id] = dangling.get(fhir_id, 0) + 1
                continue
            patients.setdefault(pseudonym, (pseudonym, self.dataset, None, None, KIND))
            if kind == "Condition":
                if not _is_primary_cancer(r):
                    continue
                count += 1
                diseases.append(self._disease(record, r, rid, fhir_id, pseudonym))
            elif kind == "Observation":
                count += self._observation(r, rid, fhir_id, pseudonym, stages, biomarkers, outcomes)
            elif kind == "Procedure":
                row = self._procedure(r, rid, fhir_id, pseudonym)
                if row is not None:
                    count += 1
                    treatments.append(row)
            elif kind == "MedicationAdministration":
                given = self._medication(r, rid, fhir_id, pseudonym, "effective")
                if given is not None:
                    count += 1
                    treatments.append(given)
                    administered.add((pseudonym, _code(r.get("medicationCodeableConcept"))))
            else:
                requests.append((record, r))
        for record, r in requests:  # a request adds a treatment only when none was given
            fhir_id, pseudonym = self._patient(record, r)
            if pseudonym not in known:
                dangling[fhir_id] = dangling.get(fhir_id, 0) + 1
                continue
            if (pseudonym, _code(r.get("medicationCodeableConcept"))) in administered:
                continue
            rid = str(r.get("id") or f"{self.path.name}#{record}")
            asked = self._medication(r, rid, fhir_id, pseudonym, "authoredOn")
            if asked is not None:
                count += 1
                treatments.append(asked)
        # Stage observations fill in the patient's disease rows (one primary per patient here).
        diseases = [self._with_stage(d, stages.get(d[1], {})) for d in diseases]
        for pseudonym, found in stages.items():
            if not any(d[1] == pseudonym for d in diseases) and found:
                cur.execute(
                    "UPDATE disease SET t_stage = coalesce(?, t_stage), "
                    "n_stage = coalesce(?, n_stage), m_stage = coalesce(?, m_stage), "
                    "stage_group = coalesce(?, stage_group) "
                    "WHERE patient_id = ?",
                    [
                        found.get("t_stage"),
                        found.get("n_stage"),
                        found.get("m_stage"),
                        found.get("stage_group"),
                        pseudonym,
                    ],
                )
        upsert_patient(cur, list(patients.values()))
        replace_rows(cur, "disease", DISEASE_COLUMNS, diseases)
        replace_rows(cur, "biomarker", BIOMARKER_COLUMNS, biomarkers)
        replace_rows(cur, "treatment", TREATMENT_COLUMNS, treatments)
        replace_rows(cur, "outcome", OUTCOME_COLUMNS, outcomes.values(), "patient_id")
        detail = (
            f"{len(patients)} patients, {len(diseases)} cancers, {len(treatments)} treatments, "
            f"{len(biomarkers)} markers"
        )
        if dangling:
            shown = ", ".join(f"Patient/{p}" for p in sorted(dangling)[:3])
            more = f" and {len(dangling) - 3} more" if len(dangling) > 3 else ""
            detail += (
                f"; {sum(dangling.values())} resources skipped: they refer to "
                f"{len(dangling)} patients neither in this import nor in the store ({shown}{more})"
            )
        return count, detail

    def _known_patients(
        self, cur: duckdb.DuckDBPyConnection, resources: list[tuple[str, dict[str, Any]]]
    ) -> set[str]:
        """Pseudonyms a resource may refer to: patients of this import (any file of it) and
        patients already in the store (an earlier import)."""
        known = {self.pseudonyms.patient(src) for src in self.index.patients.values()}
        refs = set()
        for _, r in resources:
            ref = _ref_id(r.get("subject")) or _ref_id(r.get("patient"))
            if ref is not None and ref not in self.index.patients:
                refs.add(self.pseudonyms.patient(f"fhir:{ref}"))
        if refs:
            rows = cur.execute(
                "SELECT id FROM patient WHERE list_contains(?, id)", [sorted(refs)]
            ).fetchall()
            known |= {r[0] for r in rows}
        return known

    def _disease(
        self, record: str, r: dict[str, Any], rid: str, fhir_id: str, pseudonym: str
    ) -> tuple[Any, ...]:
        icd10 = _code(r.get("code"), *ICD10_SYSTEMS)
        if icd10 is not None and codes.check("icd10", icd10) is not None:
            raise RecordError(
                str(self.path), record, "code.coding[icd-10]", codes.EXPECTED["icd10"][0], icd10
            )
        topography = _code(r.get("bodySite"), ICDO3)
        if topography is not None and codes.check("topography", topography) is not None:
            raise RecordError(
                str(self.path),
                record,
                "bodySite.coding[icd-o-3]",
                codes.EXPECTED["topography"][0],
                topography,
            )
        morphology = None
        for ext in r.get("extension", []):
            if str(ext.get("url", "")).endswith("histology-morphology-behavior"):
                morphology = _code(ext.get("valueCodeableConcept"), ICDO3)
        if morphology is not None and codes.check("morphology", morphology) is not None:
            raise RecordError(
                str(self.path),
                record,
                "extension[histology-morphology-behavior]",
                codes.EXPECTED["morphology"][0],
                morphology,
            )
        snomed = _code(r.get("code"), SNOMED)
        cancer = vocab.cancers().get(snomed or "")
        if cancer is not None:  # the codes the concept maps to fill what the resource lacks
            icd10 = icd10 or cancer.icd10
            topography = topography or cancer.topography
            morphology = morphology or cancer.morphology
        site = codes.site_from_icd10(icd10) or (cancer.site_snomed if cancer else None) or snomed
        onset = self.index.baselines.get(fhir_id)
        born = self.index.births.get(fhir_id)
        age = age_at(born, onset) if born and onset else None
        stage = {}
        for s in r.get("stage", []):
            value = _stage_value("stage_group", s.get("summary"))
            if value:
                stage["stage_group"] = value
        return (
            self.pseudonyms.of("disease", rid),
            pseudonym,
            icd10,
            topography,
            morphology,
            site,
            onset.year if onset else None,
            age,
            None,
            None,
            None,
            stage.get("stage_group"),
            None,
        )

    @staticmethod
    def _with_stage(row: tuple[Any, ...], found: dict[str, str]) -> tuple[Any, ...]:
        out = list(row)
        for name, i in (("t_stage", 8), ("n_stage", 9), ("m_stage", 10), ("stage_group", 11)):
            out[i] = found.get(name) or out[i]
        return tuple(out)

    def _observation(
        self,
        r: dict[str, Any],
        rid: str,
        fhir_id: str,
        pseudonym: str,
        stages: dict[str, dict[str, str]],
        biomarkers: list[tuple[Any, ...]],
        outcomes: dict[str, tuple[Any, ...]],
    ) -> int:
        code_values = {c.get("code") for c in _codings(r.get("code"))}
        value = r.get("valueCodeableConcept")
        for name in TNM_CODES:
            if _has_profile(r, TNM_PROFILES[name]) or code_values & TNM_CODES[name]:
                found = _stage_value(name, value)
                if found:
                    stages.setdefault(pseudonym, {})[name] = found
                return 1
        when = _date(r.get("effectiveDateTime")) or _start_end(r, "effectivePeriod")[0]
        if "75186-7" in code_values:  # vital status
            status = VITAL_STATUS.get(_code(value, SNOMED) or "", "unknown")
            outcomes[pseudonym] = (
                pseudonym,
                status,
                self._day(fhir_id, when),
                status == "deceased",
            )
            return 1
        if _has_profile(r, "tumor-marker-test"):
            quantity = r.get("valueQuantity") or {}
            biomarkers.append((
                self.pseudonyms.of("biomarker", rid), pseudonym, None,
                _display(r.get("code")) or "unknown",
                _display(value) if value else None,
                float(quantity["value"]) if "value" in quantity else None,
                self._day(fhir_id, when),
            ))  # fmt: skip
            return 1
        return 0

    def _procedure(
        self, r: dict[str, Any], rid: str, fhir_id: str, pseudonym: str
    ) -> tuple[Any, ...] | None:
        if _has_profile(r, "surgical-procedure"):
            kind = "surgery"
        elif _has_profile(r, "radiotherapy-course-summary") or _has_profile(
            r, "radiation-procedure"
        ):
            kind = "radiotherapy"
        elif (
            known := vocab.cancer_procedures().get(_code(r.get("code"), SNOMED) or "")
        ) is not None:
            kind = known[1]  # by its concept (Synthea has no mCODE profiles)
        else:
            return None
        start, end = _start_end(r, "performedPeriod", "performedDateTime")
        return (
            self.pseudonyms.of("treatment", rid),
            pseudonym,
            None,
            kind,
            _display(r.get("code")),
            self._day(fhir_id, start),
            self._day(fhir_id, end),
            _code(r.get("code")),
            (_codings(r.get("code")) or [{}])[0].get("system"),
            _intent(r),
        )

    def _medication(
        self, r: dict[str, Any], rid: str, fhir_id: str, pseudonym: str, when: str
    ) -> tuple[Any, ...] | None:
        """A systemic cancer treatment: an ATC L01/L02 agent (by code or RxNorm ingredient),
        mCODE's cancer-related medication, or a category that says so; else None."""
        category = r.get("category")
        text = (
            _display(category[0] if isinstance(category, list) and category else category) or ""
        ).lower()
        med = r.get("medicationCodeableConcept")
        coding = (_codings(med) or [{}])[0]
        agent = vocab.agent_for(coding.get("code"), coding.get("system"), _display(med))
        related = _has_profile(r, "cancer-related-medication-request") or _has_profile(
            r, "cancer-related-medication-administration"
        )
        if agent is None and text not in MED_KINDS and not related:
            return None  # not a cancer treatment (ibuprofen, simvastatin ...)
        kind = agent.kind if agent else MED_KINDS.get(text, "systemic")
        code, system = (
            (agent.atc, vocab.ATC_SYSTEM) if agent else (coding.get("code"), coding.get("system"))
        )
        if when == "effective":
            start, end = _start_end(r, "effectivePeriod", "effectiveDateTime")
        else:
            start, end = _date(r.get("authoredOn")), None
        return (
            self.pseudonyms.of("treatment", rid),
            pseudonym,
            None,
            kind,
            _display(med),
            self._day(fhir_id, start),
            self._day(fhir_id, end),
            code,
            system,
            _intent(r),
        )


def _intent(r: dict[str, Any]) -> str | None:
    for ext in r.get("extension", []):
        if str(ext.get("url", "")).endswith("procedure-intent"):
            text = (_display(ext.get("valueCodeableConcept")) or "").lower()
            return (
                "curative" if "curative" in text else "palliative" if "palliative" in text else text
            )
    return None


DISEASE_COLUMNS = COLUMNS["disease"]
BIOMARKER_COLUMNS = COLUMNS["biomarker"]
TREATMENT_COLUMNS = COLUMNS["treatment"]
OUTCOME_COLUMNS = COLUMNS["outcome"]


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in (".json", ".ndjson", ".jsonl"))
        else:
            out.append(p)
    return out


def ingest_fhir(
    paths: list[Path],
    target: NodeTarget,
    dataset: str | None = None,
    access_level: str | None = None,
) -> ImportReport:
    """Import FHIR JSON files (bundles or resources); each file in one transaction."""
    dataset_id = dataset or target.default_dataset("clinical")
    spec = TargetDataset(
        dataset_id, description="Clinical records imported from FHIR", access_level=access_level
    )
    prepare_dataset(target.store, spec)
    files = _files(paths)
    index = Index()
    for f in files:  # first pass: a bad file is reported by its own import below
        try:
            index.add(read_resources(f))
        except (OSError, ValueError, AttributeError):
            continue
    report = ImportReport(f"FHIR import into {dataset_id}")
    for f in files:
        loader = _FhirLoader(f, target.pseudonyms, index, dataset_id)
        import_file(target.store, report, f, KIND, loader, spec)
    return report


def fhir_command(
    paths: list[Path], node_dir: Path, dataset: str | None = None, access_level: str | None = None
) -> ImportReport:
    """`oncofed node ingest fhir PATHS`: FHIR R4 (mCODE) JSON bundles, resources or folders."""
    return run_import(node_dir, lambda target: ingest_fhir(paths, target, dataset, access_level))
