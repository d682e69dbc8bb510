"""The transformer, the leak gate and the hold-back rules on files with planted PHI."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ImplicitVRLittleEndian

from oncofed.node.deid import DeidContext, check_output, collect_identifiers, deidentify
from oncofed.node.deid.burnedin import hold_reason
from oncofed.node.deid.deidentify import encode
from oncofed.node.deid.fastpath import process
from oncofed.security.pseudonym import pseudonymise
from tests.imaging_fixtures import (
    PHI,
    PROVIDER,
    SECRET,
    deid_data_files,
    independent_leaks,
    make_ct,
    make_seg,
    pydicom_test_files,
    read,
)


def _roundtrip(src: Dataset, ctx: DeidContext | None = None) -> Dataset:
    result = deidentify(src, ctx or DeidContext(SECRET, PROVIDER))
    return read(DicomBytesIO(encode(result).data))


def test_planted_phi_is_removed_everywhere() -> None:
    src = make_ct()
    ids = collect_identifiers(src)
    encoded = encode(deidentify(src, DeidContext(SECRET, PROVIDER)))
    assert check_output(encoded.scan, ids) is None
    out = read(DicomBytesIO(encoded.data))
    assert independent_leaks(src, out) == []
    assert out.PatientID == pseudonymise(SECRET, PROVIDER, PHI["patient_id"])
    assert out.InstitutionName == PROVIDER
    assert out.StudyDate == "20210301" and out.PatientBirthDate in ("", None)
    assert out.AccessionNumber != PHI["accession"] and len(out.AccessionNumber) == 16
    assert (out.Modality, out.Manufacturer, out.BodyPartExamined) == ("CT", "SIEMENS", "CHEST")
    assert (out.PatientSex, out.PatientAge, out.KVP) == ("F", "061Y", "120")
    assert "ImageComments" not in out and "RequestAttributesSequence" not in out
    assert not any(e.tag.is_private for e in out.iterall())
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.PixelData == src.PixelData


def test_leak_gate_catches_a_name_in_a_kept_descriptor() -> None:
    src = make_ct()
    src.SeriesDescription = f"thorax {PHI['name_family'].lower()} redo"
    ids = collect_identifiers(src)
    leak = check_output(encode(deidentify(src, DeidContext(SECRET, PROVIDER))).scan, ids)
    assert leak is not None and "SeriesDescription" in leak.where
    assert PHI["name_family"].upper() not in str(leak).upper()  # the reason names no PHI


def test_leak_gate_catches_ids_and_dates_in_other_forms() -> None:
    src = make_ct()
    src.StudyDescription = "ref 4471902 born 1961-09-23"
    ids = collect_identifiers(src)
    assert check_output(encode(deidentify(src, DeidContext(SECRET, PROVIDER))).scan, ids)
    src = make_ct()
    src.ProtocolName = "MRN4471902"  # PatientID without its separator
    ids = collect_identifiers(src)
    assert check_output(encode(deidentify(src, DeidContext(SECRET, PROVIDER))).scan, ids)


def test_uids_consistent_across_a_study_and_a_seg() -> None:
    study, series, frame = "1.2.3.100", "1.2.3.200", "1.2.3.300"
    ct = [
        make_ct(study_uid=study, series_uid=series, for_uid=frame, instance=i) for i in range(1, 4)
    ]
    seg = make_seg(ct)
    out_ct = [_roundtrip(d) for d in ct]
    out_seg = _roundtrip(seg)
    assert len({d.StudyInstanceUID for d in [*out_ct, out_seg]}) == 1
    assert out_ct[0].StudyInstanceUID != study
    assert len({d.SeriesInstanceUID for d in out_ct}) == 1
    assert out_seg.SeriesInstanceUID != out_ct[0].SeriesInstanceUID
    assert out_seg.FrameOfReferenceUID == out_ct[0].FrameOfReferenceUID
    ref = out_seg.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == out_ct[0].SeriesInstanceUID
    sop_uids = {d.SOPInstanceUID for d in out_ct}
    assert {i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence} == sop_uids
    assert {i.ReferencedSOPInstanceUID for i in out_seg.SourceImageSequence} == sop_uids


def test_same_patient_same_pseudonym_other_secret_other_pseudonym() -> None:
    a, b = _roundtrip(make_ct()), _roundtrip(make_ct())
    assert a.PatientID == b.PatientID
    c = _roundtrip(make_ct(), DeidContext(b"z" * 32, PROVIDER))
    assert c.PatientID != a.PatientID


def test_deterministic_output() -> None:
    src = make_ct()
    ctx = DeidContext(SECRET, PROVIDER)
    assert encode(deidentify(src, ctx)).data == encode(deidentify(src, ctx)).data


def test_date_shift_mode_is_per_patient_and_recorded() -> None:
    ctx = DeidContext(SECRET, PROVIDER, date_mode="shift")
    result = deidentify(make_ct(), ctx)
    assert result.date_shift_days is not None and result.date_shift_days < 0
    out = result.dataset
    assert out.StudyDate != "20210314" and out.StudyDate == out.SeriesDate
    assert "shifted" in out.DeidentificationMethod[1]
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    other = deidentify(make_ct(patient_id="OTHER-1"), ctx)
    assert other.date_shift_days != result.date_shift_days or other.pseudonym != result.pseudonym


def test_age_computed_before_coarsening() -> None:
    src = make_ct()
    del src.PatientAge
    assert deidentify(src, DeidContext(SECRET, PROVIDER)).dataset.PatientAge == "059Y"


def test_hold_rules() -> None:
    ds = make_ct()
    assert hold_reason(ds) is None
    ds.BurnedInAnnotation = "YES"
    assert "burned-in" in (hold_reason(ds) or "")
    sc = make_ct()
    sc.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    assert "secondary capture" in (hold_reason(sc) or "")
    us = make_ct()
    us.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    us.Modality = "US"
    assert "ultrasound" in (hold_reason(us) or "")
    shot = make_ct()
    shot.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    assert hold_reason(shot)


def _slow(data: bytes, ctx: DeidContext) -> tuple[bytes, list[bytes], object, object]:
    ds = read(DicomBytesIO(data))
    ids = collect_identifiers(ds)
    result = deidentify(ds, ctx)
    encoded = encode(result)
    facts = (result.pseudonym, result.patient_key, result.date_shift_days, result.transfer_syntax)
    return encoded.data, encoded.scan, ids, facts


def _file_bytes(ds: Dataset) -> bytes:
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _accented() -> list[Dataset]:
    """CT files whose names, IDs and descriptions are not ASCII: UTF-8 and Latin-1."""
    out = []
    for charset in ("ISO_IR 192", "ISO_IR 100"):
        ds = make_ct(patient_id="MRN-Ø-4711")
        ds.SpecificCharacterSet = charset
        ds.PatientName = "Müller^Zoë"
        ds.InstitutionName = "Charité Universitätsmedizin"
        ds.StudyDescription = "Thorax für Müller"  # a leak the gate must find
        ds.OperatorsName = "Ødegård^Åse"
        out.append(ds)
    return out


@pytest.mark.parametrize("date_mode", ["month", "shift"])
def test_fast_path_is_the_pydicom_path(date_mode: str) -> None:
    """Wherever the byte-level fast path answers, it gives the same output bytes, the same
    scan chunks and the same identifiers (fragments with their labels, in order) as the
    pydicom path; it answers for the common files."""
    ctx = DeidContext(SECRET, PROVIDER, date_mode=date_mode)  # type: ignore[arg-type]
    implicit = make_ct()
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    planted = [make_ct(), make_seg([make_ct(), make_ct()]), implicit, *_accented()]
    corpus = [_file_bytes(d) for d in planted]
    corpus += [p.read_bytes() for p in pydicom_test_files() + deid_data_files()]
    answered = 0
    for data in corpus:
        fast = process(data, ctx)
        if fast is None:
            continue
        answered += 1
        out, scan, ids, facts = _slow(data, ctx)
        assert fast.encoded.data == out
        assert fast.encoded.scan == scan
        assert list(fast.identifiers.fragments.items()) == list(ids.fragments.items())
        assert fast.identifiers.uids == ids.uids and fast.identifiers.exempt == ids.exempt
        assert fast.identifiers.descriptors == ids.descriptors
        assert (
            fast.pseudonym,
            fast.patient_key,
            fast.date_shift_days,
            fast.transfer_syntax,
        ) == facts
    assert all(process(d, ctx) is not None for d in corpus[: len(planted)])
    assert answered >= 100


def test_fast_path_leak_gate_still_blocks() -> None:
    src = make_ct()
    src.SeriesDescription = f"thorax {PHI['name_family'].lower()} redo"
    fast = process(_file_bytes(src), DeidContext(SECRET, PROVIDER))
    assert fast is not None
    leak = check_output(fast.encoded.scan, fast.identifiers)
    assert leak is not None and "SeriesDescription" in leak.where


@pytest.mark.parametrize("date_mode", ["month", "shift"])
def test_fast_path_reuse_across_files_is_the_pydicom_path(date_mode: str) -> None:
    """The fast path reuses per-element results across the files one context processes;
    files that share element bytes but differ in what those results depend on (the patient's
    date shift, the kept vendor names, the encoding) still come out as the pydicom path's."""
    ctx = DeidContext(SECRET, PROVIDER, date_mode=date_mode)  # type: ignore[arg-type]
    study = "1.2.826.0.1.3680043.8.498.1234567"
    files = []
    for n, (patient, vendor) in enumerate(
        [("MRN-A-1", "SIEMENS"), ("MRN-B-2", "SIEMENS"), ("MRN-A-1", "GE MEDICAL")]
    ):
        ds = make_ct(patient_id=patient, study_uid=study, instance=n + 1)
        ds.Manufacturer = vendor
        ds.StationName = "SIEMENS"  # kept vendor name for two files, identifying for one
        files.append(ds)
    implicit = make_ct(study_uid=study)
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    corpus = [_file_bytes(d) for d in [*files, implicit]]
    corpus += [p.read_bytes() for p in deid_data_files()[:40]]
    for data in corpus + corpus[::-1]:
        fast = process(data, ctx)
        if fast is None:
            continue
        out, scan, ids, facts = _slow(data, DeidContext(SECRET, PROVIDER, date_mode=date_mode))  # type: ignore[arg-type]
        assert fast.encoded.data == out
        assert fast.encoded.scan == scan
        assert list(fast.identifiers.fragments.items()) == list(ids.fragments.items())
        assert fast.identifiers.uids == ids.uids and fast.identifiers.exempt == ids.exempt
        assert fast.identifiers.descriptors == ids.descriptors
        assert fast.pseudonym == facts[0] and fast.date_shift_days == facts[2]
    station = [process(d, ctx) for d in corpus[:3]]
    assert all(r is not None for r in station)
    labels = [set(r.identifiers.fragments.values()) for r in station if r is not None]
    assert "StationName" not in labels[0] and "StationName" in labels[2]


def test_fast_path_takes_utf8_and_latin1_and_the_gate_still_blocks() -> None:
    """Accented names are decoded with the file's character set: the fast path answers and
    the leak gate finds the patient's name left in a kept descriptor, in UTF-8 and in
    ISO 8859-1 bytes alike."""
    ctx = DeidContext(SECRET, PROVIDER)
    for data in (_file_bytes(d) for d in _accented()):  # UTF-8, then ISO 8859-1
        fast = process(data, ctx)
        assert fast is not None
        assert fast.pseudonym == pseudonymise(SECRET, PROVIDER, "MRN-Ø-4711")
        leak = check_output(fast.encoded.scan, fast.identifiers)
        assert leak is not None and "StudyDescription" in leak.where
        assert leak.label == "person name (0010,0010)"
