"""The leak gate matches identifying values, not common words: no false alarms on public
archive headers, and every planted identifier still caught, in any spelling."""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from oncofed.node.deid import DeidContext, check_output, collect_identifiers, deidentify
from oncofed.node.deid.deidentify import encode
from oncofed.node.deid.leakgate import identifying_token
from oncofed.synth.archive import archive_headers
from oncofed.synth.federation import generate_federation
from tests.imaging_fixtures import PHI, PROVIDER, SECRET, independent_leaks, make_ct, read

CTX = DeidContext(SECRET, PROVIDER)


def _leak(src: Dataset) -> object:
    return check_output(encode(deidentify(src, CTX)).scan, collect_identifiers(src))


def test_no_false_alarms_on_public_archive_headers() -> None:
    """PatientName = PatientID = Lung_Dx-A0011 and descriptors "lung+c", "PThead_lung",
    "BREAST"...: nothing identifying is there, so nothing may be blocked."""
    files = list(archive_headers(70, files_per_patient=3))
    blocked = [(str(ds.PatientID), str(ds.SeriesDescription)) for ds in files if _leak(ds)]
    rate = len(blocked) / len(files)
    assert rate == 0.0, f"{len(blocked)} of {len(files)} blocked, e.g. {blocked[:5]}"


def test_an_archive_id_in_a_descriptor_is_still_caught() -> None:
    """The whole value is identifying even where its words are not."""
    src = next(archive_headers(1))
    src.SeriesDescription = f"redo {src.PatientID}"
    leak = _leak(src)
    assert leak is not None and "SeriesDescription" in str(leak)
    src = next(archive_headers(1))
    src.ImageComments = "a0001"  # the part of the name that is an ID
    src.PatientName = "Lung_Dx-A0001"
    src.PatientID = "other"
    src.ProtocolName = "x A0001 y"
    assert _leak(src) is not None


def test_separators_are_ignored_on_both_sides() -> None:
    for source_id, written in (
        ("MRN00441722", "MRN-004-417-22"),
        ("MRN00441722", "mrn 004 417 22"),
        ("MRN-004-417-22", "MRN00441722"),
        ("00441722", "0044-1722"),
    ):
        src = make_ct(patient_id=source_id)
        src.StudyDescription = f"ref {written} done"
        leak = _leak(src)
        assert leak is not None and "PatientID" in str(leak), (source_id, written)


def test_a_number_is_not_found_inside_a_longer_number() -> None:
    src = make_ct(patient_id="417220")
    src.StudyDescription = "dose 94172201"
    assert _leak(src) is None
    src.StudyDescription = "ref 417220"
    assert _leak(src) is not None


def test_common_words_of_a_name_are_not_looked_for_alone() -> None:
    assert not identifying_token("Lung")
    assert not identifying_token("BREAST")
    assert not identifying_token("Dx")
    assert not identifying_token("0011")
    assert identifying_token("A0011")
    assert identifying_token(PHI["name_family"])
    assert identifying_token("LIDC")
    # A one-word name that is a word of the domain ("PHANTOM") names no one.
    src = make_ct()
    src.PatientName = "PHANTOM"
    src.SeriesDescription = "phantom head"
    assert _leak(src) is None


def test_a_name_part_equal_to_a_kept_coded_descriptor_is_not_looked_for_alone() -> None:
    src = make_ct()
    src.PatientName = "Kowalczyk^Zorbax"
    src.ManufacturerModelName = "Zorbax 64"
    src.SeriesDescription = "zorbax recon"
    assert _leak(src) is None
    src.SeriesDescription = "kowalczyk recon"
    assert _leak(src) is not None


_ALNUM = string.ascii_uppercase + string.digits


@settings(max_examples=60, deadline=None)
@given(
    core=st.text(_ALNUM, min_size=6, max_size=12).filter(lambda s: any(c.isdigit() for c in s)),
    cuts=st.lists(st.integers(1, 11), max_size=3),
    sep=st.sampled_from(["-", " ", "_", "/", ""]),
    lower=st.booleans(),
)
def test_a_planted_id_is_caught_in_any_spelling(
    core: str, cuts: list[int], sep: str, lower: bool
) -> None:
    written = core
    for cut in sorted({c for c in cuts if c < len(core)}, reverse=True):
        written = written[:cut] + sep + written[cut:]
    src = make_ct(patient_id=core)
    src.StudyDescription = f"see {written.lower() if lower else written} here"
    assert _leak(src) is not None


def test_synth_planted_phi_passes_clean_and_is_caught_when_kept(tmp_path: Path) -> None:
    """`oncofed synth` plants names, MRNs, addresses and phones in every header: the
    de-identified output is clean (no false alarm, no leak by an independent scan), and the
    same values written into a kept descriptor, in other spellings, are caught."""
    generate_federation(tmp_path, 1, 3, 5, instances=1, formats=["dicom"], progress=False)
    files = sorted(tmp_path.rglob("*.dcm"))[:12]
    assert files
    for path in files:
        src = read(path)
        encoded = encode(deidentify(src, CTX))
        assert check_output(encoded.scan, collect_identifiers(src)) is None, path.name
        assert independent_leaks(src, read(DicomBytesIO(encoded.data))) == []
        family = str(src.PatientName).split("^")[0]
        mrn = str(src.PatientID)
        for planted in (
            f"re {family.lower()} scan",
            f"ref {'-'.join(mrn[i : i + 3] for i in range(0, len(mrn), 3))}",
        ):
            src.SeriesDescription = planted
            assert _leak(src) is not None, planted


def test_a_leak_in_a_tag_without_keyword_names_the_tag_once() -> None:
    src = make_ct()
    src.add_new(0x00191001, "LO", "x")  # private: removed, never the place of a leak
    src.add_new(0x00420099, "LO", f"note {PHI['name_family']}")  # no keyword, kept
    leak = _leak(src)
    assert leak is not None
    assert str(leak).count("(0042,0099)") == 1, str(leak)


def test_a_name_with_spaces_and_a_digit_keeps_every_part() -> None:
    src = make_ct()
    src.PatientName = "Kowalczyk Hieronymus 2"
    src.SeriesDescription = "seen by hieronymus"
    assert _leak(src) is not None
