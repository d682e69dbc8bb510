"""Every search key the federation understands, with its values and how they map onto the
node store (STANDARDS §2 for the EUCAIM keys; ``oncofed:`` keys are our own extensions).

Each key belongs to a *group*: the table whose rows it describes (``patient``, ``disease``,
``series``, ``treatment``, ``outcome``, ``variant``, or one ``biomarker:<NAME>`` per marker).
The group decides which conditions must hold for the same row (see
:mod:`oncofed.query.semantics`). :func:`vocabulary` is the JSON the hub publishes so that
the portal can build its search form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ValueKind = Literal["code", "number", "text", "stage", "hierarchical", "variant"]

CODE_TYPES = frozenset({"EQUALS", "NOT_EQUALS", "IN"})
NUMBER_TYPES = frozenset({"EQUALS", "NOT_EQUALS", "BETWEEN", "LOWER_THAN", "GREATER_THAN"})
TEXT_TYPES = frozenset({"EQUALS", "NOT_EQUALS", "IN", "CONTAINS"})

# Where each group's rows live; ``{p}`` is the patient id expression to correlate on.
GROUP_SOURCES: dict[str, str] = {
    "disease": "FROM disease r WHERE r.patient_id = {p}",
    "series": "FROM imaging_series r WHERE r.patient_id = {p}",
    "treatment": "FROM treatment r WHERE r.patient_id = {p}",
    "outcome": "FROM outcome r WHERE r.patient_id = {p}",
    "variant": (
        "FROM variant_call c JOIN variant r ON r.id = c.variant_id WHERE c.patient_id = {p}"
    ),
    "biomarker": "FROM biomarker r WHERE r.patient_id = {p}",
}


@dataclass(frozen=True)
class Code:
    """One allowed value of a code key and what it matches in the store.

    ``match`` holds stored values (compared case-insensitively) for plain code keys, SQL
    ``LIKE`` patterns (lower case) for manufacturers, and for diagnoses the SNOMED CT code
    followed by ICD-O-3 / ICD-10 topography prefixes.
    """

    code: str
    label: str
    match: tuple[str, ...]


@dataclass(frozen=True)
class KeySpec:
    key: str
    label: str
    group: str
    kind: ValueKind
    column: str
    types: frozenset[str]
    source: Literal["EUCAIM", "oncofed"] = "oncofed"
    description: str = ""
    codes: tuple[Code, ...] = ()
    # How codes match: stored values, LIKE patterns, or the diagnosis rule.
    code_match: Literal["values", "like", "diagnosis"] = "values"
    values: tuple[str, ...] = ()  # closed list for stage keys
    examples: tuple[str, ...] = ()
    unit: str | None = None
    case: Literal["upper", "lower"] = "upper"
    separator: str = ""  # hierarchical codes: "C34" covers "C34.1"
    marker_names: tuple[str, ...] = ()  # biomarker keys: the names the row may carry
    integer: bool = True
    _by_code: dict[str, Code] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_code.update({c.code.upper(): c for c in self.codes})

    def code(self, value: str) -> Code | None:
        return self._by_code.get(value.upper())

    @property
    def listed(self) -> tuple[Code, ...]:
        """One code per value (the first with its label): what forms and the vocabulary
        list; a second code for the same value is accepted in queries as an alias."""
        seen: dict[str, Code] = {}
        for c in self.codes:
            seen.setdefault(c.label, c)
        return tuple(seen.values())


def _codes(*rows: tuple[str, str, tuple[str, ...]]) -> tuple[Code, ...]:
    return tuple(Code(c, label, match) for c, label, match in rows)


# DICOM BodyPartExamined defined terms (PS3.16 Annex L) that name several regions, with the
# regions' own terms, plus the spellings scanners write for them. A series of the abdomen and
# pelvis is found by a search for either.
COMBINED_BODY_PARTS: dict[str, tuple[str, ...]] = {
    "ABDOMENPELVIS": ("ABDOMEN", "PELVIS"),
    "ABDPELVIS": ("ABDOMEN", "PELVIS"),
    "ABDPELV": ("ABDOMEN", "PELVIS"),
    "CHESTABDOMEN": ("CHEST", "ABDOMEN"),
    "CHESTABDPELVIS": ("CHEST", "ABDOMEN", "PELVIS"),
    "CHESTABDPELV": ("CHEST", "ABDOMEN", "PELVIS"),
    "HEADNECK": ("HEAD", "NECK"),
    "NECKCHEST": ("NECK", "CHEST"),
    "NECKCHESTABDOMEN": ("NECK", "CHEST", "ABDOMEN"),
    "NECKCHESTABDPELV": ("NECK", "CHEST", "ABDOMEN", "PELVIS"),
    "HEADNECKCHEST": ("HEAD", "NECK", "CHEST"),
}


def body_part_term(stored: str) -> str:
    """A stored BodyPartExamined as the search index holds it: upper case, letters and digits
    only ("Abd/Pelvis" and "ABDPELVIS" are one term)."""
    return "".join(c for c in stored.upper() if c.isascii() and c.isalnum())


def _parts(*rows: tuple[str, str, tuple[str, ...]]) -> tuple[Code, ...]:
    """Body-part codes, each matching its own terms and every combined term naming one."""
    out = []
    for code, label, terms in rows:
        combined = tuple(t for t, parts in COMBINED_BODY_PARTS.items() if set(parts) & set(terms))
        out.append(Code(code, label, terms + combined))
    return tuple(out)


SEX = KeySpec(
    "SNOMEDCT263495000",
    "Sex",
    "patient",
    "code",
    "sex",
    CODE_TYPES,
    "EUCAIM",
    "Administrative sex of the subject.",
    codes=_codes(
        ("SNOMEDCT248153007", "male", ("male",)),
        ("SNOMEDCT248152002", "female", ("female",)),
        ("SNOMEDCT74964007", "other", ("other",)),
        ("SNOMEDCT261665006", "unknown", ("unknown",)),
    ),
)
AGE_AT_DIAGNOSIS = KeySpec(
    "SNOMEDCT423493009",
    "Age at diagnosis",
    "disease",
    "number",
    "age_at_diagnosis",
    NUMBER_TYPES,
    "EUCAIM",
    "Age in whole years when the cancer was diagnosed; for a patient with no recorded age at "
    "diagnosis (imaging-only data), the age at the patient's first imaging study (DICOM "
    "PatientAge, or the study year minus the birth year), as EUCAIM's reference mediator does.",
    unit="years",
)
DIAGNOSIS = KeySpec(
    "SNOMEDCT439401001",
    "Diagnosis",
    "disease",
    "code",
    "site_snomed",
    CODE_TYPES,
    "EUCAIM",
    "Primary cancer site; matches the SNOMED CT code or the ICD-O-3/ICD-10 topography.",
    code_match="diagnosis",
    codes=_codes(
        ("SNOMEDCT399068003", "prostate cancer", ("399068003", "C61")),
        ("SNOMEDCT254837009", "breast cancer", ("254837009", "C50")),
        ("SNOMEDCT363358000", "lung cancer", ("363358000", "C34")),
        ("SNOMEDCT363406005", "colon cancer", ("363406005", "C18")),
        ("SNOMEDCT363351006", "rectum cancer", ("363351006", "C20")),
        ("SNOMEDCT363484005", "pelvis cancer", ("363484005",)),
        ("SNOMEDCT372244006", "melanoma of skin", ("372244006", "C43")),
        ("SNOMEDCT363418001", "pancreas cancer", ("363418001", "C25")),
        ("SNOMEDCT363518003", "kidney cancer", ("363518003", "C64")),
    ),
)
DIAGNOSIS_YEAR = KeySpec(
    "SNOMEDCT432213005",
    "Year of diagnosis",
    "disease",
    "number",
    "diagnosis_year",
    NUMBER_TYPES,
    "EUCAIM",
    "Calendar year of the diagnosis.",
    unit="year",
)
MODALITY = KeySpec(
    "RID10311",
    "Imaging modality",
    "series",
    "code",
    "modality",
    CODE_TYPES,
    "EUCAIM",
    "Modality of at least one imaging series (DICOM Modality).",
    codes=_codes(
        ("RID10312", "MR", ("MR",)),
        ("RID10321", "CT", ("CT",)),
        ("RID10337", "PET", ("PT",)),
        ("RID10334", "SPECT", ("NM", "ST")),
        ("RID10357", "Mammography", ("MG",)),
    ),
)
BODY_PART = KeySpec(
    "SNOMEDCT123037004",
    "Body part",
    "series",
    "code",
    "body_part",
    CODE_TYPES,
    "EUCAIM",
    "Body part examined by at least one imaging series (DICOM BodyPartExamined).",
    codes=_parts(
        ("SNOMEDCT41216001", "prostate", ("PROSTATE",)),
        ("SNOMEDCT76752008", "breast", ("BREAST",)),
        ("SNOMEDCT39607008", "lung", ("LUNG", "CHEST", "THORAX")),
        ("SNOMEDCT71854001", "colon", ("COLON",)),
        ("SNOMEDCT818981001", "abdomen", ("ABDOMEN",)),
        ("SNOMEDCT816092008", "pelvis", ("PELVIS",)),
        ("SNOMEDCT12921003", "pelvis", ("PELVIS",)),
        ("SNOMEDCT69536005", "head", ("HEAD", "BRAIN")),
        ("SNOMEDCT38266002", "whole body", ("WHOLEBODY",)),
        ("SNOMEDCT15776009", "pancreas", ("PANCREAS",)),
        ("SNOMEDCT64033007", "kidney", ("KIDNEY",)),
        ("SNOMEDCT34402009", "rectum", ("RECTUM",)),
    ),
)
MANUFACTURER = KeySpec(
    "C25392",
    "Manufacturer",
    "series",
    "code",
    "manufacturer",
    CODE_TYPES,
    "EUCAIM",
    "Scanner manufacturer of at least one imaging series, as written in the DICOM header.",
    code_match="like",
    codes=_codes(
        ("C200140", "Siemens", ("%siemens%",)),
        ("birnlex_3066", "Siemens", ("%siemens%",)),
        ("birnlex_12833", "GE", ("ge", "ge %", "%general electric%", "%ge healthcare%")),
        ("birnlex_3065", "Philips", ("%philips%",)),
        ("birnlex_3067", "Toshiba", ("%toshiba%",)),
    ),
)

_T = (
    "TX",
    "T0",
    "TIS",
    "T1",
    "T1A",
    "T1B",
    "T1C",
    "T2",
    "T2A",
    "T2B",
    "T2C",
    "T3",
    "T3A",
    "T3B",
    "T3C",
    "T4",
    "T4A",
    "T4B",
    "T4C",
    "T4D",
)
_N = ("NX", "N0", "N1", "N1A", "N1B", "N1C", "N2", "N2A", "N2B", "N2C", "N3", "N3A", "N3B", "N3C")
_M = ("MX", "M0", "M1", "M1A", "M1B", "M1C", "M1D")
_STAGE = (
    "0",
    "I",
    "IA",
    "IB",
    "IC",
    "II",
    "IIA",
    "IIB",
    "IIC",
    "III",
    "IIIA",
    "IIIB",
    "IIIC",
    "IIID",
    "IV",
    "IVA",
    "IVB",
    "IVC",
)
_STAGE_HELP = " A value also matches its subdivisions (T1 matches T1a, III matches IIIB)."

T_STAGE = KeySpec(
    "oncofed:t_stage",
    "TNM T category",
    "disease",
    "stage",
    "t_stage",
    CODE_TYPES,
    description="Primary tumour (TNM)." + _STAGE_HELP,
    values=_T,
)
N_STAGE = KeySpec(
    "oncofed:n_stage",
    "TNM N category",
    "disease",
    "stage",
    "n_stage",
    CODE_TYPES,
    description="Regional lymph nodes (TNM)." + _STAGE_HELP,
    values=_N,
)
M_STAGE = KeySpec(
    "oncofed:m_stage",
    "TNM M category",
    "disease",
    "stage",
    "m_stage",
    CODE_TYPES,
    description="Distant metastasis (TNM)." + _STAGE_HELP,
    values=_M,
)
STAGE_GROUP = KeySpec(
    "oncofed:stage_group",
    "Stage group",
    "disease",
    "stage",
    "stage_group",
    CODE_TYPES,
    description="AJCC/UICC stage group." + _STAGE_HELP,
    values=_STAGE,
)
MORPHOLOGY = KeySpec(
    "oncofed:morphology",
    "Morphology (ICD-O-3)",
    "disease",
    "hierarchical",
    "morphology",
    CODE_TYPES,
    description="ICD-O-3 histology/behaviour, e.g. 8140/3; 8140 matches any behaviour.",
    examples=("8140/3", "8070/3", "8500/3", "8140"),
    separator="/",
)
TOPOGRAPHY = KeySpec(
    "oncofed:topography",
    "Topography (ICD-O-3)",
    "disease",
    "hierarchical",
    "topography",
    CODE_TYPES,
    description="ICD-O-3 topography, e.g. C34.1; C34 matches every sub-site.",
    examples=("C34", "C34.1", "C50", "C61"),
    separator=".",
)
TREATMENT = KeySpec(
    "oncofed:treatment",
    "Treatment type",
    "treatment",
    "code",
    "kind",
    CODE_TYPES,
    description="At least one treatment of this kind.",
    codes=_codes(
        ("surgery", "surgery", ("surgery",)),
        ("radiotherapy", "radiotherapy", ("radiotherapy",)),
        ("chemotherapy", "chemotherapy", ("chemotherapy",)),
        ("immunotherapy", "immunotherapy", ("immunotherapy",)),
        ("targeted", "targeted therapy", ("targeted",)),
        ("hormone", "hormone therapy", ("hormone",)),
    ),
)
TREATMENT_AGENT = KeySpec(
    "oncofed:treatment_agent",
    "Treatment agent",
    "treatment",
    "text",
    "agent",
    TEXT_TYPES,
    description="Drug or procedure name (case-insensitive); CONTAINS matches part of it.",
    examples=("cisplatin", "pembrolizumab", "osimertinib"),
    case="lower",
)
VITAL_STATUS = KeySpec(
    "oncofed:vital_status",
    "Vital status",
    "outcome",
    "code",
    "vital_status",
    CODE_TYPES,
    description="Vital status at last contact.",
    codes=_codes(
        ("alive", "alive", ("alive",)),
        ("deceased", "deceased", ("deceased", "dead")),
        ("unknown", "unknown", ("unknown",)),
    ),
)
SURVIVAL_DAYS = KeySpec(
    "oncofed:survival_days",
    "Survival / follow-up (days)",
    "outcome",
    "number",
    "survival_days",
    NUMBER_TYPES,
    description="Days from diagnosis to death or last contact (follow-up time).",
    unit="days",
)
GENE = KeySpec(
    "oncofed:gene",
    "Variant in gene",
    "variant",
    "text",
    "gene",
    CODE_TYPES,
    description="At least one called variant in this gene (HGNC symbol).",
    examples=("KRAS", "EGFR", "BRAF", "TP53", "PIK3CA"),
)
VARIANT = KeySpec(
    "oncofed:variant",
    "Specific variant",
    "variant",
    "variant",
    "pos",
    CODE_TYPES,
    description="A variant by position and alleles: [assembly:]chrom:pos:ref:alt, 1-based "
    "(VCF), e.g. chr7:140753336:A:T or GRCh38:chr12:25245350:C:T.",
    examples=("chr7:140753336:A:T", "GRCh38:chr12:25245351:C:A"),
)

_POS_NEG = _codes(
    ("positive", "positive", ("positive", "pos", "+")),
    ("negative", "negative", ("negative", "neg", "-")),
    ("equivocal", "equivocal", ("equivocal",)),
)


def _marker_code(
    name: str, label: str, aliases: tuple[str, ...], codes: tuple[Code, ...] = _POS_NEG
) -> KeySpec:
    return KeySpec(
        f"oncofed:marker:{name}",
        label,
        f"biomarker:{name}",
        "code",
        "value_code",
        CODE_TYPES,
        description=f"Result of the {label} test.",
        codes=codes,
        marker_names=aliases,
    )


def _marker_number(name: str, label: str, aliases: tuple[str, ...], unit: str) -> KeySpec:
    return KeySpec(
        f"oncofed:marker:{name}",
        label,
        f"biomarker:{name}",
        "number",
        "value_number",
        NUMBER_TYPES,
        description=f"Measured {label}.",
        marker_names=aliases,
        unit=unit,
        integer=False,
    )


MARKERS: tuple[KeySpec, ...] = (
    _marker_code("ER", "Oestrogen receptor", ("ER", "ESTROGEN RECEPTOR", "OESTROGEN RECEPTOR")),
    _marker_code("PR", "Progesterone receptor", ("PR", "PGR", "PROGESTERONE RECEPTOR")),
    _marker_code("HER2", "HER2", ("HER2", "ERBB2")),
    _marker_code(
        "MSI",
        "Microsatellite instability",
        ("MSI",),
        _codes(
            ("MSI-H", "MSI-high", ("MSI-H",)),
            ("MSI-L", "MSI-low", ("MSI-L",)),
            ("MSS", "stable", ("MSS",)),
        ),
    ),
    _marker_code(
        "LESION",
        "Lesion on imaging",
        ("LESION",),
        _codes(("present", "present", ("present",)), ("absent", "absent", ("absent",))),
    ),
    _marker_number("PSA", "PSA", ("PSA",), "ng/mL"),
    _marker_number("KI67", "Ki-67 index", ("KI67", "KI-67"), "%"),
    _marker_number("PDL1", "PD-L1 (TPS)", ("PDL1", "PD-L1"), "%"),
    _marker_number("CEA", "CEA", ("CEA",), "ng/mL"),
    _marker_number("CA19-9", "CA 19-9", ("CA19-9", "CA 19-9"), "U/mL"),
)

KEYS: tuple[KeySpec, ...] = (
    SEX,
    AGE_AT_DIAGNOSIS,
    DIAGNOSIS,
    DIAGNOSIS_YEAR,
    MODALITY,
    BODY_PART,
    MANUFACTURER,
    T_STAGE,
    N_STAGE,
    M_STAGE,
    STAGE_GROUP,
    MORPHOLOGY,
    TOPOGRAPHY,
    TREATMENT,
    TREATMENT_AGENT,
    VITAL_STATUS,
    SURVIVAL_DAYS,
    GENE,
    VARIANT,
    *MARKERS,
)
KEYS_BY_NAME: dict[str, KeySpec] = {k.key: k for k in KEYS}

# Labels the mediator response uses for stored DICOM modality codes (as EUCAIM names them).
MODALITY_LABELS: dict[str, str] = {"PT": "PET", "NM": "SPECT", "ST": "SPECT"}


def group_source(group: str) -> str:
    """The SQL ``FROM ... WHERE`` correlating a group's rows with patient ``{p}``."""
    return GROUP_SOURCES[group.split(":", 1)[0]]


def vocabulary() -> dict[str, Any]:
    """Every key with its label, value type, allowed condition types and values (JSON)."""
    keys: list[dict[str, Any]] = []
    for spec in KEYS:
        entry: dict[str, Any] = {
            "key": spec.key,
            "label": spec.label,
            "source": spec.source,
            "level": spec.group.split(":", 1)[0],
            "value_type": {
                "code": "code",
                "stage": "code",
                "number": "number",
                "text": "string",
                "hierarchical": "string",
                "variant": "string",
            }[spec.kind],
            "types": sorted(spec.types),
            "description": spec.description,
        }
        if spec.codes:
            # One entry per value; a second code for it (Siemens' two ontology codes) is
            # accepted in queries and listed as an alias.
            values: dict[str, dict[str, Any]] = {
                c.label: {"code": c.code, "label": c.label} for c in spec.listed
            }
            for c in spec.codes:
                if c.code != values[c.label]["code"]:
                    values[c.label].setdefault("aliases", []).append(c.code)
            entry["values"] = list(values.values())
        if spec.values:
            entry["values"] = [{"code": v, "label": v} for v in spec.values]
        if spec.examples:
            entry["examples"] = list(spec.examples)
        if spec.unit:
            entry["unit"] = spec.unit
        keys.append(entry)
    return {
        "version": 1,
        "operands": ["AND", "OR"],
        "semantics": (
            "A patient matches when it satisfies the tree. Conditions on one kind of record "
            "(imaging series, disease, treatment, variant) that sit in the same AND group and "
            "name different keys must hold for the same record; NOT_EQUALS means the patient "
            "has no record with that value. An empty operation matches everyone."
        ),
        "keys": keys,
    }


def body_part_labels(stored: str) -> list[str]:
    """The vocabulary's labels for a stored BodyPartExamined (a combined term gives each
    region it names); empty for a term outside the vocabulary."""
    term = body_part_term(stored)
    return sorted({c.label for c in BODY_PART.codes if term in c.match})
