"""Tests of the synthetic federation generator (oncofed.synth).

One small federation is generated once per module and shared; each test reads it. The
properties that must hold for any seed are checked with hypothesis on the in-memory API.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oncofed.synth import (
    SynthError,
    generate_federation,
    iter_patients,
    make_patient_record,
    make_provider,
)
from oncofed.synth.generate import stage_number
from oncofed.synth.vocabulary import CONTIG_ORDER, HOTSPOTS, SITES_BY_KEY
from oncofed.synth.writers.dicom import PRIVATE_CREATOR, PRIVATE_GROUP, write_patient_images
from oncofed.synth.writers.fhir import build_bundle

ARGS = {"providers": 2, "patients": 6, "seed": 7, "instances": 2, "progress": False}


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fed") / "out"
    generate_federation(out, **ARGS)  # type: ignore[arg-type]
    return out, json.loads((out / "federation.json").read_text())


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_tree(federation: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = federation
    again = tmp_path / "again"
    generate_federation(again, **ARGS)  # type: ignore[arg-type]
    assert _tree_hashes(out) == _tree_hashes(again)


def test_different_seed_differs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate_federation(a, 1, 4, seed=1, images=False, progress=False)
    generate_federation(b, 1, 4, seed=2, images=False, progress=False)
    assert _tree_hashes(a) != _tree_hashes(b)


def test_patient_i_does_not_depend_on_patient_count() -> None:
    five = list(iter_patients(0, 5, seed=11))
    ten = list(iter_patients(0, 10, seed=11))
    assert five == ten[:5]
    provider = make_provider(0)
    assert build_bundle(provider, five[3], 11) == build_bundle(provider, ten[3], 11)
    # and a window starting later gives the same patients
    assert list(iter_patients(0, 3, seed=11, start=4)) == ten[4:7]


def test_refuses_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SynthError, match="not empty"):
        generate_federation(tmp_path, 1, 1, images=False, progress=False)
    generate_federation(tmp_path, 1, 1, images=False, progress=False, force=True)
    generate_federation(tmp_path, 1, 2, images=False, progress=False, force=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert json.loads((tmp_path / "federation.json").read_text())["arguments"]["patients"] == 2


def test_provider_ids_are_distinct_for_many_providers() -> None:
    ids = [make_provider(i).id for i in range(40)]
    assert len(set(ids)) == 40
    assert make_provider(0).id == "de-berlin"
    assert "(synthetic)" in make_provider(0).name


# --- DICOM --------------------------------------------------------------------------------


def test_every_dicom_file_reads_with_valid_meta_and_consistent_uids(
    federation: tuple[Path, dict],
) -> None:
    out, manifest = federation
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == sum(p["counts"]["dicom_files"] for p in manifest["providers"])
    studies: dict[str, set[str]] = {}
    for path in files:
        ds = pydicom.dcmread(path)
        meta = ds.file_meta
        assert meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        mrn, study_folder = path.parts[-4], path.parts[-3]
        assert ds.PatientID == mrn
        studies.setdefault(f"{mrn}/{study_folder}", set()).add(ds.StudyInstanceUID)
        if ds.Modality == "CT":
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        if ds.Modality == "MR":
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        for keyword in ("Manufacturer", "BodyPartExamined", "PatientSex", "PatientAge"):
            assert getattr(ds, keyword, None), (path, keyword)
    # one StudyInstanceUID per study folder, and distinct across studies
    assert all(len(uids) == 1 for uids in studies.values())
    assert len({next(iter(u)) for u in studies.values()}) == len(studies)


def test_series_share_frame_of_reference_and_study(federation: tuple[Path, dict]) -> None:
    out, _ = federation
    series: dict[Path, set[tuple[str, str, str]]] = {}
    for path in out.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        series.setdefault(path.parent, set()).add(
            (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID)
        )
    assert series and all(len(v) == 1 for v in series.values())


def test_phi_is_planted_everywhere(federation: tuple[Path, dict]) -> None:
    out, _ = federation
    path = next(
        p
        for p in sorted(out.rglob("*.dcm"))
        if pydicom.dcmread(p, stop_before_pixels=True).Modality in ("CT", "MR")
    )
    ds = pydicom.dcmread(path)
    name, mrn = str(ds.PatientName), ds.PatientID
    assert "^" in name and mrn
    for keyword in (
        "PatientBirthDate",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "InstitutionName",
        "InstitutionAddress",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
        "StudyTime",
        "SeriesDate",
        "OtherPatientIDsSequence",
    ):
        assert ds.get(keyword), keyword
    family = name.split("^")[0]
    assert family in ds.ImageComments and mrn in ds.ImageComments
    # depth 1 and depth 2
    assert ds.ReferencedPatientSequence[0].OtherPatientIDsSequence[0].PatientName == name
    assert ds.ReferencedPatientSequence[0].OtherPatientIDsSequence[0].PatientID == mrn
    assert family in ds.RequestAttributesSequence[0].RequestedProcedureDescription
    # private block
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    assert str(block[0x01].value) == name
    assert block[0x02].value == mrn


def test_held_back_objects_are_written(tmp_path: Path) -> None:
    provider = make_provider(0)
    kinds_needed = {"secondary_capture", "ultrasound"}
    found: dict[str, Path] = {}
    for record in iter_patients(0, 400, seed=3, instances=1):
        kinds = {s.kind for st_ in record.studies for s in st_.series}
        if kinds & (kinds_needed - set(found)):
            write_patient_images(tmp_path, provider, record, 3)
            for path in (tmp_path / "dicom" / record.patient.mrn).rglob("*.dcm"):
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                if ds.Modality == "OT":
                    found["secondary_capture"] = path
                    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
                    assert ds.BurnedInAnnotation == "YES"
                if ds.Modality == "US":
                    found["ultrasound"] = path
                    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"
        if set(found) == kinds_needed:
            break
    assert set(found) == kinds_needed


def test_segmentation_references_its_source_series(tmp_path: Path) -> None:
    pytest.importorskip("highdicom")
    record = next(
        r
        for r in iter_patients(0, 200, seed=5, instances=2)
        if any(s.kind == "segmentation" for st_ in r.studies for s in st_.series)
    )
    write_patient_images(tmp_path, make_provider(0), record, 5)
    segs = [
        p
        for p in tmp_path.rglob("*.dcm")
        if pydicom.dcmread(p, stop_before_pixels=True).Modality == "SEG"
    ]
    assert segs
    seg = pydicom.dcmread(segs[0])
    referenced = seg.ReferencedSeriesSequence[0]
    source = pydicom.dcmread(segs[0].parent.parent / "series-1" / "1.dcm")
    assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID


# --- clinical, FHIR, VCF -------------------------------------------------------------------


def test_csv_rows_match_manifest(federation: tuple[Path, dict]) -> None:
    out, manifest = federation
    for provider in manifest["providers"]:
        folder = out / provider["path"] / "clinical"
        for table, expected in provider["counts"]["csv_rows"].items():
            with (folder / f"{table}.csv").open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == expected
        assert provider["counts"]["csv_rows"]["patients"] == provider["counts"]["patients"]
        assert (folder / "mapping.yaml").exists()


def test_fhir_bundles_are_valid_transactions(federation: tuple[Path, dict]) -> None:
    out, manifest = federation
    for provider in manifest["providers"]:
        bundles = sorted((out / provider["path"] / "fhir").glob("*.json"))
        assert len(bundles) == provider["counts"]["patients"]
        for path in bundles:
            bundle = json.loads(path.read_text(encoding="utf-8"))
            assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
            types = {e["resource"]["resourceType"] for e in bundle["entry"]}
            assert {"Patient", "Condition", "Observation"} <= types
            for entry in bundle["entry"]:
                resource = entry["resource"]
                assert entry["fullUrl"].endswith(resource["id"])
                assert entry["request"]["url"] == f"{resource['resourceType']}/{resource['id']}"
            patient = bundle["entry"][0]["resource"]
            assert patient["identifier"][0]["value"] == path.stem
            assert patient["name"][0]["family"] and patient["birthDate"]


def test_vcf_is_sorted_with_correct_alleles_and_samples(federation: tuple[Path, dict]) -> None:
    out, manifest = federation
    table = {(h.chrom, h.pos, h.alt): h for h in HOTSPOTS}
    for index, provider in enumerate(manifest["providers"]):
        expected = [
            r.sample_id for r in iter_patients(index, ARGS["patients"], ARGS["seed"]) if r.sample_id
        ]
        samples: list[str] = []
        for name in provider["counts"]["vcf_files"]:
            with gzip.open(out / provider["path"] / name, "rt") as handle:
                lines = handle.read().splitlines()
            assert lines[0] == "##fileformat=VCFv4.2"
            assert any(line.startswith("##contig=<ID=chr17,") for line in lines)
            header = next(line for line in lines if line.startswith("#CHROM"))
            columns = header.split("\t")
            samples += columns[9:]
            records = [line.split("\t") for line in lines if not line.startswith("#")]
            keys = [(CONTIG_ORDER[r[0]], int(r[1])) for r in records]
            assert keys == sorted(keys)
            for r in records:
                hotspot = table[(r[0], int(r[1]), r[4])]
                assert r[3] == hotspot.ref
                assert f"|{hotspot.gene}|" in r[7] and hotspot.hgvs_p in r[7]
                assert len(r) == len(columns)
                assert any(cell.startswith("0/1") for cell in r[9:])
        assert samples == expected


def test_vcf_batches_split_samples(tmp_path: Path) -> None:
    manifest = generate_federation(
        tmp_path / "f", 1, 30, seed=1, images=False, formats=["vcf"], progress=False, vcf_batch=7
    )
    counts = manifest.providers[0].counts
    assert len(counts.vcf_files) == -(-counts.sequenced // 7)


def test_hotspot_table_matches_known_coordinates() -> None:
    known = {
        "KRAS_G12D": ("chr12", 25245350, "C", "T"),
        "KRAS_G12C": ("chr12", 25245351, "C", "A"),
        "EGFR_L858R": ("chr7", 55191822, "T", "G"),
        "BRAF_V600E": ("chr7", 140753336, "A", "T"),
        "PIK3CA_H1047R": ("chr3", 179234297, "A", "G"),
        "PIK3CA_E545K": ("chr3", 179218303, "G", "A"),
        "TP53_R175H": ("chr17", 7675088, "C", "T"),
        "TP53_R273H": ("chr17", 7673802, "C", "T"),
        "IDH1_R132H": ("chr2", 208248388, "C", "T"),
    }
    by_key = {h.key: h for h in HOTSPOTS}
    for key, (chrom, pos, ref, alt) in known.items():
        h = by_key[key]
        assert (h.chrom, h.pos, h.ref, h.alt) == (chrom, pos, ref, alt)


# --- distributions -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), provider=st.integers(0, 20), index=st.integers(0, 10**5))
def test_any_patient_is_clinically_plausible(seed: int, provider: int, index: int) -> None:
    record = make_patient_record(make_provider(provider), index, seed)
    p, d, o = record.patient, record.diagnosis, record.outcome
    site = SITES_BY_KEY[d.site]
    if d.site == "prostate":
        assert p.sex == "male"
    assert site.age_min - 1 <= d.age_at_diagnosis <= site.age_max
    assert 2010 <= d.diagnosis_date.year <= 2024
    assert p.birth_date < d.diagnosis_date
    assert (d.m.startswith("M1")) == (stage_number(d.stage_group) == 4)
    assert o.survival_days >= 1
    assert (o.death_date is not None) == (o.vital_status == "dead")
    for t in record.treatments:
        assert 0 <= t.start_day <= t.end_day <= o.survival_days
    assert all(c.ref == next(h.ref for h in HOTSPOTS if h.pos == c.pos) for c in record.variants)
    assert record.studies and record.studies[0].series


def test_site_and_sex_mix_is_realistic() -> None:
    records = list(iter_patients(0, 1500, seed=42))
    sites = [r.diagnosis.site for r in records]
    for site in SITES_BY_KEY:
        assert site in sites
    breast = [r for r in records if r.diagnosis.site == "breast"]
    assert sum(r.patient.sex == "female" for r in breast) / len(breast) > 0.95
    assert not any(r.patient.sex == "female" and r.diagnosis.site == "prostate" for r in records)
    sequenced = sum(r.sequenced for r in records) / len(records)
    assert 0.5 < sequenced < 0.7
    lung_seq = [r for r in records if r.diagnosis.site == "lung" and r.sequenced]
    assert any(v.gene in ("KRAS", "EGFR") for r in lung_seq for v in r.variants)
    stage4 = [r.outcome.survival_days for r in records if r.diagnosis.stage_group.startswith("IV")]
    stage1 = [
        r.outcome.survival_days
        for r in records
        if r.diagnosis.stage_group.startswith("I") and stage_number(r.diagnosis.stage_group) == 1
    ]
    assert sorted(stage4)[len(stage4) // 2] < sorted(stage1)[len(stage1) // 2]
