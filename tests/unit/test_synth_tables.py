"""The generator's reference tables (data files in `synth/data/`) against the search
vocabulary: every code the synthetic federation writes must be one a researcher can search
for, or a search for it would silently find nothing."""

from __future__ import annotations

import fnmatch
import re

import pytest

from oncofed.query.vocabulary import BODY_PART, DIAGNOSIS, MANUFACTURER, MODALITY
from oncofed.synth import vocabulary as v


def _diagnosis_matches() -> set[str]:
    return {m for c in DIAGNOSIS.codes for m in c.match}


@pytest.mark.parametrize("site", v.SITES, ids=lambda s: s.key)
def test_every_site_is_a_searchable_diagnosis(site: v.CancerSite) -> None:
    matches = _diagnosis_matches()
    assert site.snomed in matches, f"{site.key}: SNOMED CT {site.snomed} not in the vocabulary"
    for icd10 in site.icd10:
        assert any(icd10.startswith(m) for m in matches if m.startswith("C")), (
            f"{site.key}: ICD-10 {icd10} matches no diagnosis of the vocabulary"
        )
    assert abs(sum(m.weight for m in site.morphologies) - 1) < 1e-9
    for m in site.morphologies:
        assert re.fullmatch(r"\d{4}/\d", m.code), f"{site.key}: ICD-O-3 {m.code!r}"
    assert abs(sum(site.stage_weights) - 1) < 1e-9
    for hotspot, _ in (*site.drivers, *site.co_mutations):
        assert hotspot in v.HOTSPOTS_BY_KEY, f"{site.key}: unknown hotspot {hotspot}"


@pytest.mark.parametrize("site", v.SITES, ids=lambda s: s.key)
def test_every_exam_is_searchable(site: v.CancerSite) -> None:
    modalities = {m for c in MODALITY.codes for m in c.match}
    body_parts = {m for c in BODY_PART.codes for m in c.match}
    bodies = {c.code.removeprefix("SNOMEDCT") for c in BODY_PART.codes}
    for exam in site.imaging:
        assert exam.modality in modalities, f"{site.key}: modality {exam.modality}"
        assert exam.body_part.upper() in body_parts, f"{site.key}: body part {exam.body_part}"
        assert exam.body_part_snomed in bodies, f"{site.key}: {exam.body_part_snomed}"


@pytest.mark.parametrize("vendor", v.VENDORS)
def test_every_vendor_is_a_searchable_manufacturer(vendor: str) -> None:
    patterns = [m.replace("%", "*") for c in MANUFACTURER.codes for m in c.match]
    assert any(fnmatch.fnmatch(vendor.lower(), p) for p in patterns), vendor


def test_scanner_models_name_known_vendors_and_modalities() -> None:
    for vendor, modality in v.SCANNER_MODELS:
        assert vendor in v.VENDORS
        assert modality in {*(m for c in MODALITY.codes for m in c.match), "US"}


def test_every_drug_is_an_antineoplastic_or_hormonal_agent() -> None:
    for drug, atc in v.DRUGS.items():
        assert re.fullmatch(r"L0[12][A-Z]{2}\d{2}", atc), f"{drug}: ATC {atc}"


def test_hotspots_lie_on_grch38_contigs() -> None:
    lengths = dict(v.GRCH38_CONTIGS)
    for h in v.HOTSPOTS:
        assert 0 < h.pos <= lengths[h.chrom], h.key
        assert h.ref != h.alt and len(h.ref) == len(h.alt) == 1, h.key


def test_every_hospital_speaks_a_language_with_names() -> None:
    for hospital in v.HOSPITALS:
        assert hospital.language in v.FIRST_NAMES, hospital.id
        assert hospital.language in v.FAMILY_NAMES, hospital.id
        assert hospital.language in v.STREETS, hospital.id
