"""The records a synthetic provider holds, before they are written in any file format.

Every writer (DICOM, CSV, FHIR, VCF) and the in-memory benchmark API work from these same
records, so a patient is the same person in every format: that is what lets downstream tests
check that ingest links images, clinical rows and variants of one patient together.
Frozen dataclasses, because a record is generated once from its seed and never edited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Sex = Literal["male", "female"]
VitalStatus = Literal["alive", "dead"]
TreatmentKind = Literal[
    "surgery", "radiotherapy", "chemotherapy", "immunotherapy", "targeted", "hormone"
]
SeriesKind = Literal["image", "secondary_capture", "ultrasound", "segmentation"]


@dataclass(frozen=True)
class Provider:
    """A hospital of the federation; `id` is the provider id the hub knows it by."""

    index: int
    id: str
    name: str
    country: str
    city: str
    address: str
    mrn_prefix: str
    phone_prefix: str
    preferred_vendor: str


@dataclass(frozen=True)
class Diagnosis:
    """The primary cancer, coded as a registry would (ICD-10, ICD-O-3) and as EUCAIM searches
    it (SNOMED CT), with its TNM stage at diagnosis."""

    id: str
    site: str
    label: str
    icd10: str
    icdo3_topography: str
    icdo3_morphology: str
    morphology_label: str
    snomed: str
    body_site_snomed: str
    diagnosis_date: dt.date
    age_at_diagnosis: int
    t: str
    n: str
    m: str
    stage_group: str
    grade: int


@dataclass(frozen=True)
class Treatment:
    """One line of treatment; days count from the diagnosis date, as the CDM stores them."""

    id: str
    kind: TreatmentKind
    name: str
    code: str
    code_system: str
    start_day: int
    end_day: int
    intent: Literal["curative", "palliative"]


@dataclass(frozen=True)
class Outcome:
    """Vital status at last contact; `survival_days` is time from diagnosis to death or to
    last contact (censored), the pair a Kaplan-Meier estimate needs."""

    vital_status: VitalStatus
    survival_days: int
    last_contact_date: dt.date
    death_date: dt.date | None


@dataclass(frozen=True)
class ImagingSeries:
    """Series-level metadata: what EUCAIM searches on (modality, body part, manufacturer)
    plus what the DICOM writer needs to lay out the instances."""

    uid: str
    number: int
    kind: SeriesKind
    modality: str
    sop_class_uid: str
    body_part: str
    body_part_snomed: str
    manufacturer: str
    model_name: str
    description: str
    slice_thickness: float
    num_instances: int
    rows: int
    columns: int
    frame_of_reference_uid: str
    burned_in_annotation: bool = False
    referenced_series_number: int | None = None


@dataclass(frozen=True)
class ImagingStudy:
    """One imaging study (an exam) with its series; `day` counts from the diagnosis date."""

    uid: str
    number: int
    accession_number: str
    study_id: str
    date: dt.date
    time: str
    day: int
    description: str
    referring_physician: str
    performing_physician: str
    operator: str
    series: tuple[ImagingSeries, ...]


@dataclass(frozen=True)
class VariantCall:
    """A somatic SNV from the hotspot table, with its annotation and allele fraction."""

    gene: str
    chrom: str
    pos: int
    ref: str
    alt: str
    consequence: str
    impact: str
    hgvs_c: str
    hgvs_p: str
    gene_id: str
    transcript: str
    exon: str
    vaf: float
    depth: int


@dataclass(frozen=True)
class Patient:
    """The person as the hospital knows them, identifiers and all (the fake PHI the
    de-identification downstream must remove)."""

    provider_id: str
    index: int
    mrn: str
    other_id: str
    given_name: str
    family_name: str
    sex: Sex
    birth_date: dt.date
    address: str
    postcode: str
    city: str
    phone: str


@dataclass(frozen=True)
class Lesion:
    """Whether the patient's images show a lesion, and where: the label a federated imaging
    model learns (`oncofed:lesion` in the clinical export). Geometry is in the image's
    normalised coordinates ([-1, 1] on both axes), so one lesion fits every matrix size."""

    present: bool
    x: float = 0.0
    y: float = 0.0
    radius_x: float = 0.0
    radius_y: float = 0.0
    contrast: float = 0.0


@dataclass(frozen=True)
class PatientRecord:
    """Everything generated for one patient: the unit of streaming and of determinism."""

    patient: Patient
    diagnosis: Diagnosis
    treatments: tuple[Treatment, ...]
    outcome: Outcome
    studies: tuple[ImagingStudy, ...]
    sample_id: str | None
    variants: tuple[VariantCall, ...] = field(default=())
    lesion: Lesion = field(default=Lesion(present=False))

    @property
    def sequenced(self) -> bool:
        """Whether the tumour was sequenced (only then is the patient in the VCF)."""
        return self.sample_id is not None
