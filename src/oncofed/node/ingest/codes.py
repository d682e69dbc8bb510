"""Code checks and small vocabularies shared by the clinical importers (CSV, FHIR, OMOP)."""

from __future__ import annotations

import re

ICD10 = re.compile(r"^[A-Z]\d{2}(\.\d{1,2})?$")
TOPOGRAPHY = re.compile(r"^C\d{2}(\.\d)?$")
MORPHOLOGY = re.compile(r"^\d{4}/\d$")
T_STAGE = re.compile(r"^[cpy]?T(X|is|0|[1-4][a-d]?|a)$", re.IGNORECASE)
N_STAGE = re.compile(r"^[cpy]?N(X|0|[1-3][a-c]?)(\(.*\))?$", re.IGNORECASE)
M_STAGE = re.compile(r"^[cpy]?M(X|0|1[a-d]?)$", re.IGNORECASE)
STAGE_GROUP = re.compile(r"^(0|I{1,3}|IV)[A-C]?[1-3]?$|^IS$", re.IGNORECASE)

# The form each checked CDM field must take, as an error message shows it.
EXPECTED = {
    "icd10": ("an ICD-10 code like C34.1", ICD10),
    "topography": ("an ICD-O-3 topography code like C34.1", TOPOGRAPHY),
    "morphology": ("an ICD-O-3 morphology code like 8140/3", MORPHOLOGY),
    "t_stage": ("a TNM T category like T2, cT3 or T1a", T_STAGE),
    "n_stage": ("a TNM N category like N0, cN1 or N2b", N_STAGE),
    "m_stage": ("a TNM M category like M0, cM1 or M1a", M_STAGE),
    "stage_group": ("a stage group like I, IIA, IIIC or IV", STAGE_GROUP),
}

# Primary site → SNOMED CT disorder code (the EUCAIM "diagnosis" values, STANDARDS §2).
SITE_SNOMED = {
    "prostate": "399068003",
    "breast": "254837009",
    "lung": "363358000",
    "colon": "363406005",
    "rectum": "363351006",
    "melanoma": "372244006",
    "pancreas": "363418001",
    "kidney": "363518003",
}
ICD10_SITE = {
    "C61": "prostate",
    "C50": "breast",
    "C34": "lung",
    "C18": "colon",
    "C20": "rectum",
    "C43": "melanoma",
    "C25": "pancreas",
    "C64": "kidney",
}

TREATMENT_KINDS = (
    "surgery",
    "radiotherapy",
    "chemotherapy",
    "immunotherapy",
    "targeted",
    "hormone",
    "systemic",
    "other",
)

VITAL = {"alive": "alive", "dead": "deceased", "deceased": "deceased", "unknown": "unknown"}


def check(field: str, value: str) -> str | None:
    """None when ``value`` has the form of ``field``, else the expected form."""
    spec = EXPECTED.get(field)
    if spec is None or spec[1].match(value):
        return None
    return spec[0]


def strip_stage_prefix(value: str) -> str:
    """'cT4' → 'T4' (the CDM keeps the category; the prefix is the staging type)."""
    return value[1:] if value[:1] in ("c", "p", "y") and len(value) > 1 else value


def site_from_icd10(code: str | None) -> str | None:
    if not code:
        return None
    site = ICD10_SITE.get(code[:3].upper())
    return SITE_SNOMED.get(site) if site else None
