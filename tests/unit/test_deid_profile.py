"""Per-attribute conformance with DICOM PS3.15 Annex E Table E.1-1 and our options."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from pydicom.datadict import dictionary_keyword, dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from oncofed.node.deid import DeidContext, deidentify
from oncofed.node.deid.profile import (
    OPTIONS,
    SUPPLEMENT,
    SUPPLEMENT_MASKS,
    Op,
    load_table,
    table_from_dicom_anonymizer,
    table_from_dicom_standard,
)
from tests.imaging_fixtures import PROVIDER, SECRET

anonymizer_db = pytest.importorskip(
    "dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c"
)


def test_shipped_table_matches_dicom_anonymizer_copy() -> None:
    shipped = json.loads(
        resources.files("oncofed.node.deid").joinpath("annex_e.json").read_text("utf-8")
    )
    assert shipped == table_from_dicom_anonymizer(anonymizer_db, shipped["edition"])
    assert len(shipped["attributes"]) > 600


def _dicom_standard_table() -> str:
    """The `dicom-standard` package's copy of Table E.1-1 (installed as data files)."""
    from importlib.metadata import files

    # A test extra (pyproject.toml): missing, this fails rather than skips.
    found = [
        f
        for f in files("dicom-standard") or []
        if f.name == "confidentiality_profile_attributes.json"
    ]
    assert found, "dicom-standard ships confidentiality_profile_attributes.json"
    return str(found[0].locate())


# Codes the 2026c edition (dicom-anonymizer) changed since the edition dicom-standard parsed.
EDITION_CHANGES = {0x30080105: "X/Z", 0x30100077: "X/D", 0x300A00B2: "X/Z", 0x00100020: "Z/D"}


def test_shipped_table_covers_dicom_standard_copy() -> None:
    """Every attribute of the other machine-readable copy is in the shipped table, with the
    same code, except where the newer edition changed it."""
    standard = table_from_dicom_standard(_dicom_standard_table())
    assert len(standard) > 400
    table = load_table()
    missing = sorted(f"{t:08X}" for t in standard if table.basic(t) is None)
    assert missing == []
    differ = {t: table.basic(t) for t, code in standard.items() if table.basic(t) != code}
    assert differ == EDITION_CHANGES


def test_supplement_is_not_in_the_standard_copies() -> None:
    """The supplement adds only what neither copy lists (else it would hide their code)."""
    standard = table_from_dicom_standard(_dicom_standard_table())
    anonymizer = _expected_codes()
    for tag in SUPPLEMENT:
        assert tag not in standard and tag not in anonymizer, f"{tag:08X}"
    for value, _mask, _code, _why in SUPPLEMENT_MASKS:
        assert value not in standard and value not in anonymizer


def _expected_codes() -> dict[int, str]:
    """Table E.1-1 read straight from dicom-anonymizer (independent of our JSON)."""
    names = {
        "D_TAGS": "D",
        "Z_TAGS": "Z",
        "X_TAGS": "X",
        "U_TAGS": "U",
        "Z_D_TAGS": "Z/D",
        "X_Z_TAGS": "X/Z",
        "X_D_TAGS": "X/D",
        "X_Z_D_TAGS": "X/Z/D",
        "X_Z_U_STAR_TAGS": "X/Z/U*",
    }
    out = {}
    for name, code in names.items():
        for entry in getattr(anonymizer_db, name):
            if len(entry) == 2:
                out[entry[0] << 16 | entry[1]] = code
    return out


SAMPLE = {
    "PN": "Doe^Jane",
    "LO": "SAMPLE VALUE",
    "SH": "SAMPLEVAL",
    "LT": "sample text",
    "ST": "sample text",
    "UT": "sample text",
    "UC": "sample",
    "CS": "SAMPLE",
    "AE": "SAMPLEAE",
    "DA": "20210314",
    "DT": "20210314101500",
    "TM": "101500",
    "AS": "061Y",
    "DS": "12.5",
    "IS": "42",
    "UI": "1.2.3.4.5.6.7.8.9",
    "UR": "http://example.org/x",
    "FL": 1.5,
    "FD": 1.5,
    "SL": 7,
    "SS": 7,
    "UL": 7,
    "US": 7,
    "SV": 7,
    "UV": 7,
    "OB": b"\x01\x02",
    "OW": b"\x01\x02",
    "OF": b"\x00\x00\x80\x3f",
    "OD": b"\x00" * 8,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "UN": b"ab",
    "AT": 0x00100010,
}


def _sample_element(tag: int) -> DataElement | None:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    vr = vr.split(" or ")[0]
    if vr == "SQ":
        item = Dataset()
        item.CodeMeaning = "inner"
        item.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.10"
        return DataElement(tag, vr, Sequence([item]))
    return DataElement(tag, vr, SAMPLE[vr])


def _base() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5.6.7.8.99"
    ds.PatientID = "P1"
    ds.set_original_encoding(False, True)
    return ds


def _is_empty(elem: DataElement) -> bool:
    return elem.value in (None, "", b"", []) or elem.VM == 0


# Command, file meta and directory groups never reach a stored dataset (the transformer
# drops those groups and rebuilds the file meta); PatientID and the SOP UIDs are needed by the
# test dataset itself and are covered by test_patient_id_and_uids.
NOT_DATASET_GROUPS = (0x0000, 0x0002, 0x0004, 0xFFFA, 0xFFFC)
COVERED_ELSEWHERE = (0x00100020, 0x00080016, 0x00080018)
# The table as both copies list it, the supplement, and an overlay group for each mask.
ALL_CODES = {
    **_expected_codes(),
    **{t: code for t, (code, _why) in SUPPLEMENT.items()},
    **{value | 0x00020000: code for value, _m, code, _why in SUPPLEMENT_MASKS},
}
CASES = [
    (tag, code)
    for tag, code in sorted(ALL_CODES.items())
    if tag >> 16 not in NOT_DATASET_GROUPS
    and tag not in COVERED_ELSEWHERE
    and _sample_element(tag) is not None
]


@pytest.mark.parametrize(("tag", "code"), CASES, ids=[f"{t:08X}" for t, _ in CASES])
def test_attribute_action_matches_profile(tag: int, code: str) -> None:
    elem = _sample_element(tag)
    assert elem is not None
    src = _base()
    src[tag] = elem
    ctx = DeidContext(SECRET, PROVIDER)
    out = deidentify(src, ctx).dataset
    vr = elem.VR
    option = OPTIONS.get(tag)
    present = tag in out
    got = out[tag] if present else None
    if option is not None:
        assert present
        assert got is not None
        if option.op in (Op.KEEP, Op.CLEAN):
            assert got.value == elem.value, option.why
        elif option.op is Op.PATIENT_NAME:
            assert str(got.value).startswith(PROVIDER + "-")
        elif option.op is Op.ACCESSION:
            assert got.value != elem.value and len(got.value) == 16
        elif option.op is Op.PROVIDER:
            assert got.value == PROVIDER
        return
    if vr in ("DA", "DT") and tag != 0x00100030:
        # Retain Longitudinal Temporal Information, Modified Dates: year-month, day 01.
        assert present and got is not None
        assert got.value == "20210301", dictionary_keyword(tag)
        return
    choices = set(code.replace("*", "").split("/"))
    allowed = set()
    if "X" in choices:
        allowed.add("removed")
    if "Z" in choices:
        allowed.add("emptied")
    if "D" in choices:
        allowed.add("replaced")
    if "U" in choices:
        allowed.add("remapped")
    if not present:
        outcome = "removed"
    elif vr == "SQ":
        inner = got.value[0] if got.value else None
        if inner is None:
            outcome = "emptied"
        else:
            # Kept and cleaned item by item: UIDs in it remapped.
            assert inner.ReferencedSOPInstanceUID != "1.2.3.4.5.6.7.8.10"
            outcome = "remapped" if "U" in choices else "replaced"
    elif _is_empty(got):
        outcome = "emptied"
    elif vr == "UI":
        assert got.value != elem.value and str(got.value).startswith("2.25.")
        outcome = "remapped" if "U" in choices else "replaced"
    else:
        assert got.value != elem.value, dictionary_keyword(tag)
        outcome = "replaced"
    assert outcome in allowed, f"{dictionary_keyword(tag)} {code}: {outcome}"


def test_patient_id_and_uids() -> None:
    src = _base()
    out = deidentify(src, DeidContext(SECRET, PROVIDER)).dataset
    assert out.PatientID.startswith(PROVIDER + "-") and out.PatientID != "P1"
    assert out.SOPClassUID == CTImageStorage
    assert out.SOPInstanceUID != src.SOPInstanceUID
    assert out.SOPInstanceUID.startswith("2.25.")
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert "113107" in {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
    assert load_table().version in out.DeidentificationMethod[0]


def test_private_and_unlisted_handling() -> None:
    src = _base()
    src.add_new(0x00090010, "LO", "VENDOR")
    src.add_new(0x00091001, "LO", "secret")
    src.Modality = "CT"
    src.KVP = "120"
    src.add_new(0x00091002, "SQ", Sequence([Dataset()]))
    out = deidentify(src, DeidContext(SECRET, PROVIDER)).dataset
    assert not any(e.tag.is_private for e in out.iterall())
    assert out.Modality == "CT" and out.KVP == "120"


def test_free_text_in_content_items_is_replaced() -> None:
    """ContentSequence is D (no Clean Structured Content claimed): the items keep their codes
    and references, their TextValue is replaced, at any depth."""
    src = _base()
    inner = Dataset()
    inner.ValueType = "TEXT"
    inner.TextValue = "Mr Kowalczyk called twice"
    outer = Dataset()
    outer.ValueType = "CONTAINER"
    outer.TextValue = "seen by Dr Dubois"
    outer.ContentSequence = Sequence([inner])
    src.ContentSequence = Sequence([outer])
    src.add_new(0x00400400, "LT", "patient Kowalczyk anxious")
    src.add_new(0x60020022, "LO", "Kowalczyk overlay")
    out = deidentify(src, DeidContext(SECRET, PROVIDER)).dataset
    text = str(out)
    assert "Kowalczyk" not in text and "Dubois" not in text
    item = out.ContentSequence[0]
    assert item.ValueType == "CONTAINER" and item.ContentSequence[0].ValueType == "TEXT"
