"""OMOP CDM tables (CSV or TSV exports, v5.3-5.4) into the CDM.

An OMOP export is a set of tables that refer to each other (PERSON, CONDITION_OCCURRENCE,
DRUG_EXPOSURE, PROCEDURE_OCCURRENCE, DEATH, OBSERVATION_PERIOD, SPECIMEN and the vocabulary
table CONCEPT), so a folder is imported as one unit: all of it in one transaction, its
ledger key the hash of all the tables read. Persons become patients (identified by
``person_source_value`` when the export has it, else by ``person_id``); cancer conditions
become diseases with their diagnosis date as the baseline: ICD-O-3 concepts, SNOMED CT
disorders mapped to the CDM's site, ICD-10 and ICD-O-3 by the shipped table
(:mod:`oncofed.node.ingest.vocab`), directly or through the export's own CONCEPT_ANCESTOR /
CONCEPT_RELATIONSHIP to the nearest concept the table knows, or ICD-10 C codes in
``condition_source_value``. Antineoplastic and endocrine drugs (ATC L01/L02 by RxNorm
ingredient) and cancer surgery and radiotherapy (by procedure concept, never by a word in
its name) become treatments as days from diagnosis; DEATH and the end of observation give
vital status and survival or follow-up days. A bad date or birth month names its file,
line and field.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from oncofed.node.ingest import codes, vocab
from oncofed.node.ingest.common import (
    FileOutcome,
    ImportReport,
    NodeTarget,
    Pseudonyms,
    RecordError,
    TargetDataset,
    age_at,
    file_hash,
    import_file,
    prepare_dataset,
    replace_rows,
    run_import,
    upsert_patient,
)
from oncofed.node.ingest.fhir import (
    DISEASE_COLUMNS,
    OUTCOME_COLUMNS,
    TREATMENT_COLUMNS,
)

KIND = "omop"
TABLES = (
    "PERSON", "CONCEPT", "CONCEPT_ANCESTOR", "CONCEPT_RELATIONSHIP", "CONDITION_OCCURRENCE",
    "DRUG_EXPOSURE", "PROCEDURE_OCCURRENCE", "DEATH", "OBSERVATION_PERIOD", "SPECIMEN",
)  # fmt: skip
# Relationships followed from a concept towards one the shipped tables know.
UPWARD = {"Maps to", "Is a", "Has ancestor"}
GENDER = {"8507": "male", "8532": "female", "8521": "other", "8551": "unknown"}
MALIGNANT = re.compile(
    r"malignant|carcinoma|sarcoma|melanoma|lymphoma|leuka?emia|myeloma|blastoma|cancer"
    r"|adenocarcinoma|mesothelioma|germ cell tumou?r",
    re.IGNORECASE,
)
NOT_MALIGNANT = re.compile(r"benign|uncertain behavio|in situ|history of|screening", re.IGNORECASE)


def _delimiter(path: Path) -> str:
    with path.open(encoding="utf-8-sig") as fh:
        header = fh.readline()
    return "\t" if header.count("\t") > header.count(",") else ","


def _table_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f in folder.iterdir():
        stem = f.name.split(".")[0].upper()
        if stem in TABLES and f.suffix.lower() in (".csv", ".tsv", ".txt"):
            found[stem] = f
    return found


def _read(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=_delimiter(path))
        reader.fieldnames = [n.strip().lower() for n in reader.fieldnames or []]
        for row in reader:
            yield reader.line_num, row


def _date(
    path: Path, line: int, name: str, value: str | None, required: bool = False
) -> date | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise RecordError(str(path), f"line {line}", name, "a date YYYY-MM-DD")
        return None
    try:
        y, m, d = (int(x) for x in value[:10].split("-"))
        return date(y, m, d)
    except ValueError:
        raise RecordError(str(path), f"line {line}", name, "a date YYYY-MM-DD", value) from None


def _birth(path: Path, line: int, row: dict[str, str], year: str) -> date | None:
    """The birth date PERSON gives (mid-year or mid-month where month or day is missing);
    a month or day out of range names its file, line and field."""
    if not year:
        return None
    parts = {}
    for name, default, top in (("month_of_birth", 7, 12), ("day_of_birth", 1, 31)):
        text = (row.get(name) or "").strip()
        if text and not (text.isdigit() and 1 <= int(text) <= top):
            raise RecordError(str(path), f"line {line}", name, f"a number in 1..{top}", text)
        parts[name] = int(text) if text else default
    try:
        return date(int(year), parts["month_of_birth"], parts["day_of_birth"])
    except ValueError as exc:
        raise RecordError(
            str(path), f"line {line}", "day_of_birth", "a day that exists in its month",
            f"{year}-{parts['month_of_birth']}-{parts['day_of_birth']}",
        ) from exc  # fmt: skip


@dataclass
class _Concept:
    name: str
    vocabulary: str
    code: str


@dataclass
class _Export:
    folder: Path
    files: dict[str, Path]
    concepts: dict[str, _Concept] = field(default_factory=dict)
    # concept → the concepts above it, nearest first (CONCEPT_ANCESTOR, else the 'Maps to'
    # and 'Is a' rows of CONCEPT_RELATIONSHIP), when the export ships them
    above: dict[str, list[str]] = field(default_factory=dict)

    def concept(self, concept_id: str | None) -> _Concept:
        return self.concepts.get(concept_id or "", _Concept("", "", ""))

    def read_vocabulary(self) -> None:
        for _, row in _read(self.files["CONCEPT"]) if "CONCEPT" in self.files else ():
            self.concepts[row.get("concept_id", "")] = _Concept(
                row.get("concept_name", ""), row.get("vocabulary_id", ""),
                row.get("concept_code", ""),
            )  # fmt: skip
        levels: dict[str, list[tuple[int, str]]] = {}
        if "CONCEPT_ANCESTOR" in self.files:
            for _, row in _read(self.files["CONCEPT_ANCESTOR"]):
                up, down = row.get("ancestor_concept_id", ""), row.get("descendant_concept_id", "")
                if up and down and up != down:
                    level = int(row.get("min_levels_of_separation") or 99)
                    levels.setdefault(down, []).append((level, up))
        if "CONCEPT_RELATIONSHIP" in self.files:
            for _, row in _read(self.files["CONCEPT_RELATIONSHIP"]):
                if row.get("relationship_id") in UPWARD and not row.get("invalid_reason"):
                    down, up = row.get("concept_id_1", ""), row.get("concept_id_2", "")
                    if up and down and up != down:
                        levels.setdefault(down, []).append((1, up))
        self.above = {k: [c for _, c in sorted(v)] for k, v in levels.items()}

    def lineage(self, concept_id: str) -> Iterator[_Concept]:
        """The concept, then the concepts above it, nearest first (each once)."""
        seen, queue = {concept_id}, [concept_id]
        while queue:
            current = queue.pop(0)
            yield self.concept(current)
            for up in self.above.get(current, []):
                if up not in seen and len(seen) < 200:
                    seen.add(up)
                    queue.append(up)

    def cancer(self, concept_id: str | None) -> vocab.Cancer | None:
        """The shipped table's cancer for a condition concept: its own SNOMED code, or the
        nearest concept above it (the export's vocabulary) that the table knows."""
        for c in self.lineage(concept_id or ""):
            if c.vocabulary.upper() in ("SNOMED", "SNOMEDCT") and c.code in vocab.cancers():
                return vocab.cancers()[c.code]
        return None

    def procedure(self, concept_id: str | None) -> str | None:
        """The treatment kind of a cancer procedure concept (itself or one above it)."""
        for c in self.lineage(concept_id or ""):
            known = vocab.cancer_procedures().get(c.code)
            if known is not None and c.vocabulary.upper() in ("SNOMED", "SNOMEDCT"):
                return known[1]
        return None


class _OmopLoader:
    def __init__(self, export: _Export, pseudonyms: Pseudonyms, dataset: str) -> None:
        self.x, self.pseudonyms, self.dataset = export, pseudonyms, dataset

    def _cancer(
        self, row: dict[str, str]
    ) -> tuple[str | None, str | None, str | None, str | None] | None:
        """(icd10, topography, morphology, site) when the condition is a primary cancer:
        an ICD-O-3 concept, a SNOMED CT cancer the shipped table knows (the concept or, by
        the export's vocabulary, one above it), an ICD-10 C code as source value, or, last,
        a malignant disorder by name (site: its own SNOMED code)."""
        concept_id = row.get("condition_concept_id")
        concept = self.x.concept(concept_id)
        source = (row.get("condition_source_value") or "").strip().upper()
        icd10 = source if source.startswith("C") and codes.check("icd10", source) is None else None
        if concept.vocabulary.upper() == "ICDO3" and "-" in concept.code:
            morph, topo = concept.code.split("-", 1)
            return icd10, topo, morph, codes.site_from_icd10(icd10 or topo)
        cancer = self.x.cancer(concept_id)
        if cancer is not None:
            if not cancer.primary:
                return None
            icd10 = icd10 or cancer.icd10
            site = codes.site_from_icd10(icd10) or cancer.site_snomed
            return icd10, cancer.topography, cancer.morphology, site
        name = concept.name
        if icd10 is None and not (MALIGNANT.search(name) and not NOT_MALIGNANT.search(name)):
            return None
        if "secondary" in name.lower() or "metasta" in name.lower():
            return None
        snomed = concept.code if concept.vocabulary.upper() == "SNOMED" else None
        return icd10, None, None, codes.site_from_icd10(icd10) or snomed

    def __call__(self, cur: duckdb.DuckDBPyConnection) -> tuple[int, str]:
        x = self.x
        x.read_vocabulary()
        person_file = x.files["PERSON"]
        persons: dict[str, tuple[str, date | None]] = {}
        patients = []
        for line, row in _read(person_file):
            pid = (row.get("person_id") or "").strip()
            if not pid:
                raise RecordError(str(person_file), f"line {line}", "person_id", "an identifier")
            gender = (row.get("gender_concept_id") or "").strip()
            if gender and gender not in GENDER and gender != "0":
                raise RecordError(
                    str(person_file), f"line {line}", "gender_concept_id",
                    "an OMOP gender concept (8507, 8532, 8521, 8551 or 0)", gender,
                )  # fmt: skip
            year = (row.get("year_of_birth") or "").strip()
            if year and not year.isdigit():
                raise RecordError(str(person_file), f"line {line}", "year_of_birth", "a year", year)
            source = (row.get("person_source_value") or "").strip() or f"omop:{pid}"
            pseudonym = self.pseudonyms.patient(source)
            born = _birth(person_file, line, row, year)
            persons[pid] = (pseudonym, born)
            patients.append(
                (
                    pseudonym,
                    self.dataset,
                    GENDER.get(gender, "unknown"),
                    int(year) if year else None,
                    KIND,
                )
            )
        upsert_patient(cur, patients)

        def person(path: Path, line: int, row: dict[str, str]) -> tuple[str, date | None]:
            pid = (row.get("person_id") or "").strip()
            if pid not in persons:
                raise RecordError(str(path), f"line {line}", "person_id", "a person in PERSON", pid)
            return persons[pid]

        diseases: dict[str, tuple[Any, ...]] = {}
        baseline: dict[str, date] = {}
        if "CONDITION_OCCURRENCE" in x.files:
            path = x.files["CONDITION_OCCURRENCE"]
            for line, row in _read(path):
                pseudonym, born = person(path, line, row)
                when = _date(
                    path, line, "condition_start_date", row.get("condition_start_date"), True
                )
                found = self._cancer(row)
                if found is None or when is None:
                    continue
                icd10, topo, morph, site = found
                key = f"{pseudonym}:{site or icd10 or topo}"
                if key in diseases and baseline.get(pseudonym, when) <= when:
                    continue
                diseases[key] = (
                    self.pseudonyms.of("disease", f"omop:{row.get('condition_occurrence_id')}"),
                    pseudonym, icd10, topo, morph, site, when.year,
                    age_at(born, when) if born else None, None, None, None, None, None,
                )  # fmt: skip
                if pseudonym not in baseline or when < baseline[pseudonym]:
                    baseline[pseudonym] = when
        treatments = self._treatments(person, baseline)
        outcomes = self._outcomes(person, baseline)
        samples = self._specimens(person, baseline)
        replace_rows(cur, "disease", DISEASE_COLUMNS, diseases.values())
        replace_rows(cur, "treatment", TREATMENT_COLUMNS, treatments)
        replace_rows(cur, "outcome", OUTCOME_COLUMNS, outcomes.values(), "patient_id")
        replace_rows(
            cur,
            "biosample",
            ("id", "patient_id", "sample_type", "collection_day", "dataset_id"),
            samples,
        )
        count = len(patients) + len(diseases) + len(treatments) + len(outcomes) + len(samples)
        return count, (
            f"{len(patients)} persons, {len(diseases)} cancers, {len(treatments)} treatments, "
            f"{len(outcomes)} outcomes, {len(samples)} specimens"
        )

    def _treatments(self, person: Any, baseline: dict[str, date]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for table, prefix in (("DRUG_EXPOSURE", "drug"), ("PROCEDURE_OCCURRENCE", "procedure")):
            path = self.x.files.get(table)
            if path is None:
                continue
            for line, row in _read(path):
                pseudonym, _ = person(path, line, row)
                if pseudonym not in baseline:
                    continue
                concept = self.x.concept(row.get(f"{prefix}_concept_id"))
                name = concept.name or row.get(f"{prefix}_source_value") or ""
                code, system = concept.code or None, concept.vocabulary or None
                if prefix == "drug":  # ATC L01/L02 agents, by RxNorm ingredient
                    agent = vocab.agent_for(code, system, name)
                    if agent is None:
                        continue
                    kind, code, system = agent.kind, agent.atc, vocab.ATC_SYSTEM
                    start_col, end_col = "drug_exposure_start_date", "drug_exposure_end_date"
                else:  # cancer surgery and radiotherapy by concept, never by a word
                    known = self.x.procedure(row.get("procedure_concept_id"))
                    if known is None:
                        continue
                    kind = known
                    start_col, end_col = "procedure_date", "procedure_end_date"
                start = _date(path, line, start_col, row.get(start_col), True)
                end = _date(path, line, end_col, row.get(end_col))
                base = baseline[pseudonym]
                if start is None or start < base:
                    continue
                out.append((
                    self.pseudonyms.of("treatment", f"omop:{prefix}:{line}"),
                    pseudonym, None, kind, name, (start - base).days,
                    (end - base).days if end else None, code, system, None,
                ))  # fmt: skip
        return out

    def _outcomes(self, person: Any, baseline: dict[str, date]) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}
        last: dict[str, date] = {}
        path = self.x.files.get("OBSERVATION_PERIOD")
        if path is not None:
            for line, row in _read(path):
                pseudonym, _ = person(path, line, row)
                end = _date(
                    path,
                    line,
                    "observation_period_end_date",
                    row.get("observation_period_end_date"),
                )
                if end and (pseudonym not in last or end > last[pseudonym]):
                    last[pseudonym] = end
        for pseudonym, base in baseline.items():
            if pseudonym in last:
                out[pseudonym] = (pseudonym, "alive", (last[pseudonym] - base).days, False)
        path = self.x.files.get("DEATH")
        if path is not None:
            for line, row in _read(path):
                pseudonym, _ = person(path, line, row)
                died = _date(path, line, "death_date", row.get("death_date"), True)
                start = baseline.get(pseudonym)
                days = (died - start).days if start and died else None
                out[pseudonym] = (pseudonym, "deceased", days, True)
        return out

    def _specimens(self, person: Any, baseline: dict[str, date]) -> list[tuple[Any, ...]]:
        path = self.x.files.get("SPECIMEN")
        out: list[tuple[Any, ...]] = []
        if path is None:
            return out
        for line, row in _read(path):
            pseudonym, _ = person(path, line, row)
            when = _date(path, line, "specimen_date", row.get("specimen_date"))
            base = baseline.get(pseudonym)
            concept = self.x.concept(row.get("specimen_concept_id"))
            out.append((
                self.pseudonyms.of("sample", f"omop:{row.get('specimen_id')}"), pseudonym,
                concept.name or None, (when - base).days if when and base else None, self.dataset,
            ))  # fmt: skip
        return out


def ingest_omop(
    folders: list[Path],
    target: NodeTarget,
    dataset: str | None = None,
    access_level: str | None = None,
) -> ImportReport:
    """Import OMOP export folders; each folder is one all-or-nothing unit."""
    dataset_id = dataset or target.default_dataset("clinical")
    spec = TargetDataset(
        dataset_id, description="Clinical records imported from OMOP CDM", access_level=access_level
    )
    prepare_dataset(target.store, spec)
    report = ImportReport(f"OMOP import into {dataset_id}")
    for folder in folders:
        files = _table_files(folder) if folder.is_dir() else {}
        if "PERSON" not in files:
            report.files.append(FileOutcome(
                str(folder), KIND, "rejected", 0,
                f"{folder}: expected a folder of OMOP tables with PERSON.csv",
            ))  # fmt: skip
            continue
        digest = hashlib.sha256(
            "".join(f"{k}:{file_hash(files[k])};" for k in sorted(files)).encode()
        ).hexdigest()
        loader = _OmopLoader(_Export(folder, files), target.pseudonyms, dataset_id)
        import_file(target.store, report, folder, KIND, loader, spec, digest)
    return report


def omop_command(
    paths: list[Path], node_dir: Path, dataset: str | None = None, access_level: str | None = None
) -> ImportReport:
    """`oncofed node ingest omop FOLDERS`: OMOP CDM CSV/TSV exports (one folder per export)."""
    return run_import(node_dir, lambda target: ingest_omop(paths, target, dataset, access_level))
