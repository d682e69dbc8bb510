"""The catalogue of analysable variables, read from the common data model a node holds.

Why a catalogue: a researcher names variables, never expressions (DataSHIELD evaluates the
client's strings, its classic hole), and every fact an analysis needs to be disclosure-safe
comes from here, not from the data: the categorical levels and their order (so that every
node builds the same design matrix, reference level first), the bounds a value is clamped
to and the histogram bin edges (data minima and maxima would be patients' values).

A node turns its store into a :class:`Frame` (one row per patient, in the order of the
search index's dense patient key ``pk``) with :func:`load_frame`; the cohort mask of the
search AST selects rows of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Kind = Literal["numeric", "categorical", "binary", "survival"]

Floats = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    kind: Kind
    description: str
    levels: tuple[str, ...] = ()  # categorical: catalogue order, the first is the reference
    bounds: tuple[float, float] | None = None  # numeric: values are clamped to these
    edges: tuple[float, ...] = ()  # numeric: histogram bin edges (summary quantiles)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "kind": self.kind,
            "description": self.description,
            "analyses": list(ANALYSES_BY_KIND[self.kind]),
        }
        if self.levels:
            out["levels"] = list(self.levels)
        if self.bounds is not None:
            out["bounds"] = list(self.bounds)
        if self.edges:
            out["bin_edges"] = list(self.edges)
        return out


ANALYSES_BY_KIND: dict[Kind, tuple[str, ...]] = {
    "numeric": ("glm", "cox", "summary"),
    "categorical": ("glm", "cox", "crosstab", "km"),
    "binary": ("glm", "cox", "crosstab", "km", "summary"),
    "survival": ("km", "cox"),
}

_B: Kind = "binary"
VARIABLES: tuple[Variable, ...] = (
    Variable(
        "age",
        "Age at diagnosis (years)",
        "numeric",
        "The patient's youngest age at a recorded diagnosis.",
        bounds=(0.0, 120.0),
        edges=tuple(float(x) for x in range(0, 125, 5)),
    ),
    Variable(
        "sex",
        "Sex",
        "categorical",
        "Administrative sex; 'other' and 'unknown' count as missing.",
        levels=("female", "male"),
    ),
    Variable(
        "stage",
        "Stage group (I-IV)",
        "categorical",
        "AJCC/UICC stage group of the first diagnosis, sub-stages folded (IIIB is III).",
        levels=("I", "II", "III", "IV"),
    ),
    Variable(
        "diagnosis",
        "Diagnosis (EUCAIM SNOMED CT site)",
        "categorical",
        "The EUCAIM diagnosis code of the first diagnosis.",
        levels=(),  # filled below from the search vocabulary
    ),
    Variable(
        "vital_status",
        "Deceased",
        _B,
        "1 when the patient is recorded as deceased, 0 when alive; unknown is missing.",
    ),
    Variable(
        "survival",
        "Overall survival (days, event = death)",
        "survival",
        "Days from diagnosis to death or last contact; the event is death.",
        bounds=(0.0, 36500.0),
    ),
    Variable(
        "survival_days",
        "Follow-up (days)",
        "numeric",
        "Days from diagnosis to death or last contact.",
        bounds=(0.0, 36500.0),
        edges=(*tuple(float(x) for x in range(0, 7300 + 365, 365)), 36500.0),
    ),
    Variable("surgery", "Had surgery", _B, "Any treatment of kind surgery."),
    Variable("radiotherapy", "Had radiotherapy", _B, "Any treatment of kind radiotherapy."),
    Variable("chemotherapy", "Had chemotherapy", _B, "Any treatment of kind chemotherapy."),
    Variable("immunotherapy", "Had immunotherapy", _B, "Any treatment of kind immunotherapy."),
    Variable("imaging_ct", "Has CT imaging", _B, "Any imaging series of modality CT."),
    Variable("imaging_mr", "Has MR imaging", _B, "Any imaging series of modality MR."),
    Variable("imaging_pt", "Has PET imaging", _B, "Any imaging series of modality PT."),
    Variable("variant_any", "Has a variant call", _B, "Any variant call recorded."),
)


def _diagnosis_levels() -> tuple[str, ...]:
    from oncofed.query.vocabulary import DIAGNOSIS

    return tuple(c.code for c in DIAGNOSIS.codes)


VARIABLES = tuple(
    Variable(v.name, v.label, v.kind, v.description, levels=_diagnosis_levels())
    if v.name == "diagnosis"
    else v
    for v in VARIABLES
)
BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}


class VariableError(ValueError):
    """A variable the catalogue does not hold, or one an analysis cannot use."""


def variable(name: str, analysis: str | None = None) -> Variable:
    """The catalogue entry of ``name``; refused if unknown or not usable by ``analysis``."""
    v = BY_NAME.get(name)
    if v is None:
        raise VariableError(
            f"unknown variable {name!r}; the analysable variables are: {', '.join(BY_NAME)}"
        )
    if analysis is not None and analysis not in ANALYSES_BY_KIND[v.kind]:
        usable = [x.name for x in VARIABLES if analysis in ANALYSES_BY_KIND[x.kind]]
        raise VariableError(
            f"variable {name!r} ({v.kind}) cannot be used by {analysis}; it can use: "
            + ", ".join(usable)
        )
    return v


def catalogue() -> dict[str, Any]:
    """The JSON the hub publishes (GET /api/analyses/variables)."""
    return {"variables": [v.as_dict() for v in VARIABLES]}


# -- the frame a node analyses -------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """Per-patient analysis columns of one node, rows in search-index order (``pk`` - 1).

    Numeric and binary columns are float64 with NaN for missing; categorical columns are
    codes into the variable's levels with -1 for missing (a value outside the catalogue is
    missing too); ``survival`` is two columns, ``survival.time`` and ``survival.event``.
    ``dataset`` holds each row's dataset number into ``datasets``.
    """

    columns: dict[str, Floats | Codes]
    dataset: Codes
    datasets: tuple[str, ...]

    @property
    def rows(self) -> int:
        return len(self.dataset)

    def take(self, rows: npt.NDArray[np.int64]) -> Frame:
        return Frame(
            {k: v.take(rows) for k, v in self.columns.items()},
            self.dataset.take(rows),
            self.datasets,
        )

    @classmethod
    def from_records(cls, records: dict[str, list[Any]], dataset: str = "ds") -> Frame:
        """A frame from plain values per variable (tests, benchmarks): categorical values
        as level strings, survival as ``survival.time`` / ``survival.event``."""
        n = len(next(iter(records.values())))
        columns: dict[str, Floats | Codes] = {}
        for name, values in records.items():
            base = name.split(".", 1)[0]
            v = BY_NAME[base]
            if v.kind == "categorical":
                index = {level: i for i, level in enumerate(v.levels)}
                columns[name] = np.array([index.get(x, -1) for x in values], dtype=np.int64)
            else:
                columns[name] = np.array(
                    [np.nan if x is None else float(x) for x in values], dtype=np.float64
                )
        return cls(columns, np.zeros(n, dtype=np.int64), (dataset,))


FRAME_SQL = """
SELECT x.pk, x.ds, x.min_age AS age, lower(p.sex) AS sex,
       d.stage, d.diagnosis,
       CASE upper(o.vital_status) WHEN 'DECEASED' THEN 1.0 WHEN 'ALIVE' THEN 0.0 END
           AS vital_status,
       o.survival_days::DOUBLE AS survival_days,
       CASE WHEN o.event IS NULL THEN NULL WHEN o.event THEN 1.0 ELSE 0.0 END AS event,
       t.surgery, t.radiotherapy, t.chemotherapy, t.immunotherapy,
       s.imaging_ct, s.imaging_mr, s.imaging_pt,
       CASE WHEN v.patient_id IS NULL THEN 0.0 ELSE 1.0 END AS variant_any
FROM sx_patient x
JOIN patient p ON p.id = x.id
LEFT JOIN (
    SELECT patient_id,
           nullif(regexp_extract(upper(arg_min(stage_group, id)), '^(IV|III|II|I)', 1), '')
               AS stage,
           arg_min(site_snomed, id) AS diagnosis
    FROM disease GROUP BY patient_id) d ON d.patient_id = x.id
LEFT JOIN outcome o ON o.patient_id = x.id
LEFT JOIN (
    SELECT patient_id,
           max(CASE WHEN lower(kind) = 'surgery' THEN 1.0 ELSE 0.0 END) AS surgery,
           max(CASE WHEN lower(kind) = 'radiotherapy' THEN 1.0 ELSE 0.0 END) AS radiotherapy,
           max(CASE WHEN lower(kind) = 'chemotherapy' THEN 1.0 ELSE 0.0 END) AS chemotherapy,
           max(CASE WHEN lower(kind) = 'immunotherapy' THEN 1.0 ELSE 0.0 END) AS immunotherapy
    FROM treatment GROUP BY patient_id) t ON t.patient_id = x.id
LEFT JOIN (
    SELECT patient_id,
           max(CASE WHEN upper(modality) = 'CT' THEN 1.0 ELSE 0.0 END) AS imaging_ct,
           max(CASE WHEN upper(modality) = 'MR' THEN 1.0 ELSE 0.0 END) AS imaging_mr,
           max(CASE WHEN upper(modality) = 'PT' THEN 1.0 ELSE 0.0 END) AS imaging_pt
    FROM imaging_series GROUP BY patient_id) s ON s.patient_id = x.id
LEFT JOIN (SELECT DISTINCT patient_id FROM variant_call) v ON v.patient_id = x.id
ORDER BY x.pk
"""

_ZERO_IF_NONE = (
    "surgery",
    "radiotherapy",
    "chemotherapy",
    "immunotherapy",
    "imaging_ct",
    "imaging_mr",
    "imaging_pt",
)


def frame_from_columns(data: dict[str, Any], datasets: tuple[str, ...]) -> Frame:
    """The frame of :data:`FRAME_SQL`'s result (DuckDB ``fetchnumpy``)."""

    def floats(name: str) -> Floats:
        return np.ma.filled(np.ma.asarray(data[name], dtype=np.float64), np.nan)

    def codes(name: str) -> Codes:
        raw = np.ma.asarray(data[name])
        index = {level: i for i, level in enumerate(BY_NAME[name].levels)}
        missing = np.ma.getmaskarray(raw)
        return np.fromiter(
            (
                -1 if gone else index.get(str(x), -1)
                for x, gone in zip(raw.data, missing, strict=False)
            ),
            dtype=np.int64,
            count=len(raw),
        )

    columns: dict[str, Floats | Codes] = {
        "age": floats("age"),
        "sex": codes("sex"),
        "stage": codes("stage"),
        "diagnosis": codes("diagnosis"),
        "vital_status": floats("vital_status"),
        "survival_days": floats("survival_days"),
        "survival.time": floats("survival_days"),
        "survival.event": floats("event"),
        "variant_any": floats("variant_any"),
    }
    for name in _ZERO_IF_NONE:
        columns[name] = np.nan_to_num(floats(name), nan=0.0)
    ds = np.asarray(np.ma.getdata(data["ds"]), dtype=np.int64) - 1
    return Frame(columns, ds, datasets)
