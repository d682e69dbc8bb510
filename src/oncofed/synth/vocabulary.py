"""Reference tables the generator draws from: cancer sites, hotspot variants, drugs, scanners,
hospitals and names.

The facts live as data files in `synth/data/` (TOML for nested tables, CSV for flat ones),
read once when this module is imported, so that a reader checking the biology reads tables,
not code, and tests can hold every code against the search vocabulary. This module gives them
types. Coordinates are GRCh38, 1-based, alleles on the forward strand; HGVS on the Ensembl
canonical transcript named in each row.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any, TypeVar


def _text(name: str) -> str:
    return resources.files("oncofed.synth").joinpath("data", name).read_text(encoding="utf-8")


def _toml(name: str) -> dict[str, Any]:
    return tomllib.loads(_text(name))


def _csv(name: str) -> list[dict[str, str]]:
    lines = [line for line in _text(name).splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


_T = TypeVar("_T")


def _row(cls: type[_T], row: dict[str, str]) -> _T:
    """A CSV row as the dataclass `cls`, its `int` fields converted."""
    values: dict[str, Any] = {
        f.name: int(row[f.name]) if f.type == "int" else row[f.name]
        for f in fields(cls)  # type: ignore[arg-type]
    }
    return cls(**values)


# --------------------------------------------------------------------------------------------
# Cancer sites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Morphology:
    """An ICD-O-3 histology code with its label and relative frequency within the site."""

    code: str
    label: str
    weight: float


@dataclass(frozen=True)
class Imaging:
    """One kind of exam done for a site: modality, body part and series descriptions."""

    modality: str
    body_part: str
    body_part_snomed: str
    study_description: str
    series: tuple[str, ...]
    slice_thickness: float
    probability: float


@dataclass(frozen=True)
class CancerSite:
    """What the generator needs to make a plausible patient with this cancer."""

    key: str
    label: str
    weight: float
    p_male: float
    age_mean: float
    age_sd: float
    age_min: int
    age_max: int
    icd10: tuple[str, ...]
    snomed: str
    body_site_snomed: str
    morphologies: tuple[Morphology, ...]
    stage_weights: tuple[float, float, float, float]
    survival_factor: float
    imaging: tuple[Imaging, ...]
    drivers: tuple[tuple[str, float], ...]
    co_mutations: tuple[tuple[str, float], ...]


def _site(row: dict[str, Any]) -> CancerSite:
    return CancerSite(
        **{
            k: row[k]
            for k in (
                "key", "label", "weight", "p_male", "age_mean", "age_sd", "age_min",
                "age_max", "snomed", "body_site_snomed", "survival_factor",
            )
        },
        icd10=tuple(row["icd10"]),
        morphologies=tuple(Morphology(**m) for m in row["morphologies"]),
        stage_weights=tuple(row["stage_weights"]),
        imaging=tuple(Imaging(**{**i, "series": tuple(i["series"])}) for i in row["imaging"]),
        drivers=tuple((d["hotspot"], d["p"]) for d in row["drivers"]),
        co_mutations=tuple((d["hotspot"], d["p"]) for d in row["co_mutations"]),
    )  # fmt: skip


SITES: tuple[CancerSite, ...] = tuple(_site(row) for row in _toml("sites.toml")["site"])
SITES_BY_KEY: dict[str, CancerSite] = {s.key: s for s in SITES}

# --------------------------------------------------------------------------------------------
# Somatic hotspots (GRCh38)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hotspot:
    """A recurrent somatic SNV with forward-strand alleles and SnpEff-style annotation."""

    key: str
    gene: str
    gene_id: str
    transcript: str
    exon: str
    chrom: str
    pos: int
    ref: str
    alt: str
    hgvs_c: str
    hgvs_p: str
    consequence: str = "missense_variant"
    impact: str = "MODERATE"


HOTSPOTS: tuple[Hotspot, ...] = tuple(_row(Hotspot, row) for row in _csv("hotspots.csv"))
HOTSPOTS_BY_KEY: dict[str, Hotspot] = {h.key: h for h in HOTSPOTS}

# GRCh38 primary assembly lengths, for the VCF ##contig header lines.
GRCH38_CONTIGS: tuple[tuple[str, int], ...] = tuple(
    (row["name"], int(row["length"])) for row in _csv("contigs.csv")
)
CONTIG_ORDER: dict[str, int] = {name: i for i, (name, _) in enumerate(GRCH38_CONTIGS)}

# --------------------------------------------------------------------------------------------
# Treatments: (name, ATC code) for drugs; SNOMED CT for procedures.
# --------------------------------------------------------------------------------------------

_TREATMENTS = _toml("treatments.toml")
ATC: str = _TREATMENTS["atc_system"]
SNOMED: str = _TREATMENTS["snomed_system"]
DRUGS: dict[str, str] = dict(_TREATMENTS["drugs"])
SURGERY: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _TREATMENTS["surgery"].items()}
SURGERY_SNOMED: str = _TREATMENTS["surgery_snomed"]
RADIOTHERAPY_SNOMED: str = _TREATMENTS["radiotherapy_snomed"]

# --------------------------------------------------------------------------------------------
# Scanners
# --------------------------------------------------------------------------------------------

_SCANNERS = _toml("scanners.toml")
VENDORS: tuple[str, ...] = tuple(_SCANNERS["vendors"])
SCANNER_MODELS: dict[tuple[str, str], tuple[str, ...]] = {
    (m["vendor"], m["modality"]): tuple(m["models"]) for m in _SCANNERS["model"]
}

# --------------------------------------------------------------------------------------------
# Hospitals and names
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hospital:
    """A real European cancer centre the synthetic provider is named after."""

    id: str
    name: str
    country: str
    city: str
    street: str
    postcode: str
    mrn_prefix: str
    language: str
    phone_prefix: str


HOSPITALS: tuple[Hospital, ...] = tuple(_row(Hospital, row) for row in _csv("hospitals.csv"))

_NAMES = _toml("names.toml")
# language: (male, female)
FIRST_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    lang: (tuple(n["male"]), tuple(n["female"])) for lang, n in _NAMES["first_names"].items()
}
FAMILY_NAMES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _NAMES["family_names"].items()}
STREETS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _NAMES["streets"].items()}
