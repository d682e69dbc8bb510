"""The learnable label of the synthetic images (`oncofed:lesion`): deterministic, visible in
the pixels, different in prevalence per provider and correlated with stage."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
from hypothesis import given, settings
from hypothesis import strategies as st

from oncofed.synth import iter_patients, make_patient_record, make_provider
from oncofed.synth.generate import stage_number
from oncofed.synth.lesion import scanner_of
from oncofed.synth.writers.dicom import lesion_mask, write_patient_images


def _first_ct(root: Path) -> pydicom.Dataset:
    for path in sorted(root.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        if ds.Modality == "CT":
            return ds
    raise AssertionError("no CT image written")


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 5), st.integers(0, 500))
def test_lesion_is_a_function_of_seed_provider_and_index(seed: int, prov: int, i: int) -> None:
    provider = make_provider(prov)
    record = make_patient_record(provider, i, seed)
    assert make_patient_record(provider, i, seed).lesion == record.lesion
    lesion = record.lesion
    if lesion.present:
        assert 0.1 <= lesion.radius_x <= 0.25 and 0.1 <= lesion.contrast <= 0.35
        assert abs(lesion.x) + lesion.radius_x < 0.85  # inside the body phantom


def test_prevalence_differs_per_provider_and_follows_stage() -> None:
    rates = []
    by_stage: dict[int, list[bool]] = {1: [], 4: []}
    for prov in range(3):
        records = list(iter_patients(prov, 400, seed=11, instances=1))
        rates.append(np.mean([r.lesion.present for r in records]))
        for r in records:
            stage = stage_number(r.diagnosis.stage_group)
            if stage in by_stage:
                by_stage[stage].append(r.lesion.present)
        assert abs(rates[-1] - scanner_of(make_provider(prov)).prevalence) < 0.1
    assert rates[0] < rates[1] < rates[2]
    assert np.mean(by_stage[4]) > np.mean(by_stage[1]) + 0.15


def test_lesion_is_visible_in_the_pixels(tmp_path: Path) -> None:
    provider = make_provider(0)
    record = next(r for r in iter_patients(0, 50, seed=3, instances=1) if r.lesion.present)
    write_patient_images(tmp_path / "with", provider, record, 3)
    write_patient_images(
        tmp_path / "without",
        provider,
        replace(record, lesion=replace(record.lesion, present=False)),
        3,
    )
    with_, without = _first_ct(tmp_path / "with"), _first_ct(tmp_path / "without")
    mask = lesion_mask(with_.Rows, record.lesion)
    assert mask.sum() >= 4
    gain = with_.pixel_array[mask].mean() - without.pixel_array[mask].mean()
    # Contrast x gain x 4095 grey levels, far above the scanner noise.
    assert gain > 0.1 * 4095
    outside = ~mask
    assert np.array_equal(with_.pixel_array[outside], without.pixel_array[outside])
