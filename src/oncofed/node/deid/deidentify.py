"""The de-identifying transformer: a source pydicom Dataset in, a de-identified one out.

:func:`deidentify` is a pure function of the source dataset and a :class:`DeidContext` (the
node's secret, its provider id, the UID root and the date mode): the same input gives the same
bytes out, so a rerun after a crash writes identical files and the same patient gets the same
pseudonym from every ingest. Elements that keep their value are passed through undecoded
(pixel data included), which is what keeps it fast.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Literal

from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from oncofed.node.deid.profile import METHOD_CODES, OPTIONS, Op, load_table, resolve
from oncofed.security.pseudonym import pseudonymise

DateMode = Literal["month", "shift"]

# UIDs of classes and schemes, not instances: never remapped.
CLASS_UID_TAGS = frozenset(
    {
        0x00080016,  # SOPClassUID
        0x00081150,  # ReferencedSOPClassUID
        0x0008001A,  # RelatedGeneralSOPClassUID
        0x0008001B,  # OriginalSpecializedSOPClassUID
        0x00080062,  # SOPClassesInStudy
        0x0008010C,  # CodingSchemeUID
        0x00080118,  # MappingResourceUID
        0x0008010D,  # ContextGroupExtensionCreatorUID
        0x00041510,  # ReferencedSOPClassUIDInFile
        0x00041512,  # ReferencedTransferSyntaxUIDInFile
    }
)
DICOM_ROOT = "1.2.840.10008."
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
IMPLEMENTATION_VERSION = "ONCOFED_DEID_1"
DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, object] = {
    "PN": DUMMY_TEXT,
    "LO": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "UC": DUMMY_TEXT,
    "CS": DUMMY_TEXT,
    "AE": DUMMY_TEXT,
    "UR": "urn:oncofed:anonymized",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "AT": 0,
    **{vr: b"\x00" * 8 for vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN")},
}


class DeidError(ValueError):
    """The source cannot be de-identified (e.g. it is not an image object)."""


@dataclass
class DeidContext:
    """What the transformer needs from the node: its secret, provider id and choices."""

    secret: bytes
    provider_id: str
    uid_root: str = "2.25."
    date_mode: DateMode = "month"
    max_shift_days: int = 365
    _uids: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # Keyed hashes already computed: the files of a study repeat the same PatientID and
    # accession number, and one HMAC costs as much as de-identifying several elements.
    _keyed: dict[tuple[str, str], str] = field(default_factory=dict, repr=False, compare=False)
    # The fast path's per-element results (see fastpath._Run.clean); valid for this
    # context's secret and choices only, which is why they live here.
    _fast: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.uid_root.endswith("."):
            self.uid_root += "."
        if len(self.uid_root) > 24:
            raise ValueError(f"uid_root {self.uid_root!r} is too long (24 characters at most)")

    def map_uid(self, uid: str) -> str:
        uid = uid.strip().rstrip("\x00")
        if not uid or uid.startswith(DICOM_ROOT):
            return uid
        mapped = self._uids.get(uid)
        if mapped is None:
            digest = hmac.digest(self.secret, b"uid\x1f" + uid.encode(), "sha256")
            number = str(int.from_bytes(digest[:16], "big"))
            mapped = (self.uid_root + number)[:64]
            if len(self._uids) > 200_000:
                self._uids.clear()
            self._uids[uid] = mapped
        return mapped

    def pseudonym(self, source_id: str) -> str:
        key = ("patient", source_id)
        found = self._keyed.get(key)
        if found is None:
            found = pseudonymise(self.secret, self.provider_id, source_id, "patient")
            self._remember(key, found)
        return found

    def accession(self, value: str) -> str:
        key = ("accession", value)
        found = self._keyed.get(key)
        if found is None:
            mac = hmac.new(self.secret, f"accession\x1f{value.strip()}".encode(), hashlib.sha256)
            found = mac.hexdigest()[:16].upper()
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[str, str], value: str) -> None:
        if len(self._keyed) > 100_000:
            self._keyed.clear()
        self._keyed[key] = value

    def shift_days(self, source_id: str) -> int:
        mac = hmac.new(self.secret, f"dateshift\x1f{source_id.strip()}".encode(), hashlib.sha256)
        return -(int.from_bytes(mac.digest()[:4], "big") % self.max_shift_days + 1)

    @property
    def method(self) -> list[str]:
        dates = "dates year-month" if self.date_mode == "month" else "dates shifted per patient"
        return [f"oncofed {load_table().version}", f"PatientID keyed hash; UIDs hashed; {dates}"]


@dataclass
class Deidentified:
    dataset: Dataset  # with file_meta set, ready to write
    pseudonym: str
    patient_key: str  # which source field gave the pseudonym (never its value)
    date_shift_days: int | None
    transfer_syntax: UID


@dataclass
class _Run:
    ctx: DeidContext
    shift: int | None


_op_cache: dict[tuple[int, str], Op] = {}
_vr_cache: dict[int, str] = {}


def vr_of(tag: int, elem: DataElement | RawDataElement) -> str:
    """The element's VR; the data dictionary's where the file does not say (implicit VR,
    UN) or says it ambiguously."""
    vr = elem.VR
    if vr and vr != "UN" and " or " not in vr:
        return str(vr)
    cached = _vr_cache.get(tag)
    if cached is None:
        try:
            cached = dictionary_VR(tag)
        except KeyError:
            cached = "UN"
        if " or " in cached:
            cached = "OW" if "OW" in cached else "US"
        _vr_cache[tag] = cached
    return cached


def _settle_vr(vr: str, raw: RawDataElement) -> str:
    """A writable VR for an element read with an ambiguous one."""
    if " or " not in vr:
        return vr
    return "OB" if raw.length == 0xFFFFFFFF or "OW" not in vr else "OW"


def _op_for(tag: int, vr: str) -> Op:
    key = (tag, vr)
    op = _op_cache.get(key)
    if op is None:
        code = load_table().basic(tag)
        if code is not None:
            op = resolve(tag, code, vr)
        elif tag in OPTIONS:
            op = OPTIONS[tag].op
        elif vr == "SQ":
            op = Op.RECURSE
        elif vr == "UI":
            op = Op.UID
        elif vr in ("DA", "DT"):
            op = Op.DATE
        else:
            op = Op.KEEP
        _op_cache[key] = op
    return op


def peek(ds: Dataset, key: str | int) -> object:
    """The value of an element of `ds`, or None; unlike ``ds.get`` it leaves a raw element
    raw, so that a kept element is written with the bytes it was read with."""
    tag = tag_for_keyword(key) if isinstance(key, str) else key
    if tag is None:
        return None
    elem = ds._dict.get(tag)  # type: ignore[call-overload]
    if elem is None:
        return None
    if isinstance(elem, RawDataElement):
        elem = convert_raw_data_element(elem, encoding=ds._character_set, ds=ds)
    return elem.value


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _coarsen(value: str, vr: str, shift: int | None) -> str:
    out = []
    for part in value.split("\\"):
        part = part.strip()
        digits = part[:8]
        if len(digits) < 6 or not digits[:6].isdigit():
            out.append("")
            continue
        if shift is None or len(digits) < 8 or not digits.isdigit():
            out.append(digits[:6] + "01")
            continue
        try:
            day = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
        except ValueError:
            out.append(digits[:6] + "01")
            continue
        out.append((day + dt.timedelta(days=shift)).strftime("%Y%m%d"))
    return "\\".join(out)


def _clean(src: Dataset, run: _Run, depth: int) -> Dataset:
    out = Dataset()
    implicit, little = src.original_encoding
    if implicit is not None and little is not None:
        # Same encoding as the source: pydicom then writes kept elements as raw bytes
        # instead of decoding and re-encoding every value.
        out.set_original_encoding(implicit, little, src.original_character_set)
    store = out._dict
    ctx = run.ctx
    for tag, raw in src._dict.items():
        t = int(tag)
        group = t >> 16
        if group & 1 or (t & 0xFFFF) == 0 or group < 0x0008:
            continue  # private, group length, command / file meta / directory groups
        vr = vr_of(t, raw)
        op = _op_for(t, vr)
        if op is Op.KEEP or op is Op.CLEAN:
            if raw.VR is not None and " or " in raw.VR and isinstance(raw, RawDataElement):
                raw = raw._replace(VR=_settle_vr(vr, raw))
            store[tag] = raw
            continue
        if op is Op.REMOVE:
            continue
        if op is Op.EMPTY:
            out[tag] = DataElement(tag, vr, [] if vr == "SQ" else None)
            continue
        elem = src[tag]
        if op is Op.RECURSE:
            items = elem.value if vr == "SQ" and elem.value is not None else []
            out[tag] = DataElement(
                tag, "SQ", Sequence([_clean(item, run, depth + 1) for item in items])
            )
        elif op is Op.UID:
            if t in CLASS_UID_TAGS:
                store[tag] = raw  # kept as read
            elif elem.VM > 1:
                out[tag] = DataElement(tag, "UI", [ctx.map_uid(str(u)) for u in elem.value])
            else:
                out[tag] = DataElement(tag, "UI", ctx.map_uid(_text(elem.value)) or None)
        elif op is Op.DATE:
            text = "\\".join(_text(v) for v in elem.value) if elem.VM > 1 else _text(elem.value)
            out[tag] = DataElement(tag, vr, _coarsen(text, vr, run.shift) or None)
        elif op is Op.PATIENT_ID:
            value = _text(elem.value)
            out[tag] = DataElement(tag, vr, ctx.pseudonym(value) if value else None)
        elif op is Op.PATIENT_NAME:
            pass  # set once at the top level below
        elif op is Op.ACCESSION:
            value = _text(elem.value)
            out[tag] = DataElement(tag, vr, ctx.accession(value) if value else None)
        elif op is Op.PROVIDER:
            out[tag] = DataElement(tag, vr, ctx.provider_id[:64] if _text(elem.value) else None)
        elif op is Op.DUMMY:
            if vr == "SQ":
                out[tag] = DataElement(
                    tag, "SQ", Sequence([_clean(i, run, depth + 1) for i in elem.value or []])
                )
            elif vr in ("DA", "DT"):
                out[tag] = DataElement(tag, vr, _coarsen(_text(elem.value), vr, run.shift))
            elif vr == "UI":
                out[tag] = DataElement(tag, vr, ctx.map_uid(_text(elem.value)) or None)
            else:
                dummy = _DUMMY_BY_VR.get(vr)
                out[tag] = DataElement(tag, vr, dummy if dummy is not None else None)
    return out


def _patient_key(src: Dataset) -> tuple[str, str]:
    """The source identifier the pseudonym is computed from, and which field it came from."""
    for key in ("PatientID", "PatientName"):
        try:
            value = _text(peek(src, key))
        except Exception:
            value = ""
        if value:
            return value, key
    study = _text(peek(src, "StudyInstanceUID"))
    if study:
        return f"study:{study}", "StudyInstanceUID"
    raise DeidError(
        "neither PatientID, PatientName nor StudyInstanceUID: cannot link the "
        "image to a patient; fix the source or ingest it with its study"
    )


def _age(src: Dataset) -> str | None:
    """PatientAge from birth date and study date when the source lacks it (computed before
    the dates are coarsened, as STANDARDS §6 asks)."""
    birth = _text(peek(src, "PatientBirthDate"))[:8]
    when = _text(peek(src, "StudyDate") or peek(src, "SeriesDate") or peek(src, "AcquisitionDate"))
    if len(birth) != 8 or len(when[:8]) != 8 or not (birth + when[:8]).isdigit():
        return None
    try:
        b = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
        s = dt.date(int(when[:4]), int(when[4:6]), int(when[6:8]))
    except ValueError:
        return None
    years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
    return f"{years:03d}Y" if 0 <= years < 200 else None


def _transfer_syntax(src: Dataset) -> UID:
    implicit, little = src.original_encoding
    meta = getattr(src, "file_meta", None)
    declared = meta.get("TransferSyntaxUID") if meta is not None else None
    if declared is not None:
        declared = UID(str(declared))
        if declared == DeflatedExplicitVRLittleEndian:
            return ExplicitVRLittleEndian  # written inflated: the leak gate reads plain bytes
        if declared.is_transfer_syntax and (
            implicit is None  # built in memory: nothing raw to re-encode
            or (declared.is_implicit_VR == implicit and declared.is_little_endian == little)
        ):
            return declared
    if implicit is None or little is None:
        raise DeidError("the encoding of the dataset could not be determined")
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def deidentify(src: Dataset, ctx: DeidContext) -> Deidentified:
    """De-identify `src` per the profile (see :mod:`oncofed.node.deid.profile`)."""
    if "SOPInstanceUID" not in src or "SOPClassUID" not in src:
        raise DeidError("no SOPInstanceUID/SOPClassUID: not a DICOM composite object")
    syntax = _transfer_syntax(src)
    source_id, patient_key = _patient_key(src)
    shift = ctx.shift_days(source_id) if ctx.date_mode == "shift" else None
    age = None if _text(peek(src, "PatientAge")) else _age(src)
    out = _clean(src, _Run(ctx, shift), 0)
    pseudonym = ctx.pseudonym(source_id)
    out.PatientID = pseudonym
    out.PatientName = pseudonym
    if age is not None:
        out.PatientAge = age
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = ctx.method
    codes = []
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    out.DeidentificationMethodCodeSequence = codes
    out.LongitudinalTemporalInformationModified = "MODIFIED"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(_text(peek(out, "SOPClassUID")))
    meta.MediaStorageSOPInstanceUID = UID(_text(peek(out, "SOPInstanceUID")))
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    out.file_meta = meta
    return Deidentified(out, pseudonym, patient_key, shift, syntax)


@dataclass
class Encoded:
    """A de-identified file as bytes, with the parts the leak gate scans."""

    data: bytes
    scan: list[bytes]  # everything but the pixel data


def _write_items(fp: DicomBytesIO, ds: Dataset, encodings: list[str]) -> None:
    """Write the elements of `ds` in tag order; kept (raw) elements go out as read."""
    store = ds._dict
    for tag in sorted(store):
        elem = store[tag]
        if elem.VR == "SQ" and isinstance(elem, DataElement):
            fp.write_tag(tag)
            if not fp.is_implicit_VR:
                fp.write(b"SQ\x00\x00")
            fp.write_UL(0xFFFFFFFF)
            for item in elem.value or []:
                fp.write_tag(ITEM)
                fp.write_UL(0xFFFFFFFF)
                _write_items(fp, item, encodings)
                fp.write_tag(ITEM_END)
                fp.write_UL(0)
            fp.write_tag(SEQUENCE_END)
            fp.write_UL(0)
        else:
            if elem.VR is not None and " or " in elem.VR:
                elem = _settle(elem, ds)
            if isinstance(elem, RawDataElement) and elem.value is None:
                elem = elem._replace(value=b"")  # read with zero length: kept empty
            write_data_element(fp, elem, encodings)


def _settle(elem: DataElement | RawDataElement, ds: Dataset) -> DataElement | RawDataElement:
    bits = int(peek(ds, "BitsAllocated") or 8)  # type: ignore[call-overload]
    vr = "OW" if bits > 8 and elem.tag == 0x7FE00010 else "OB"
    if elem.tag != 0x7FE00010:
        vr = "US" if "US" in str(elem.VR) else "OB"
    if isinstance(elem, RawDataElement):
        return elem._replace(VR=vr)
    elem.VR = vr
    return elem


def encode(result: Deidentified) -> Encoded:
    """Write the output to bytes: preamble, file meta, then the dataset in tag order.

    Kept elements are written from their raw bytes (never decoded); the pixel data is
    written last and left out of the chunks the leak gate scans."""
    ds = result.dataset
    syntax = result.transfer_syntax
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, ds.file_meta, enforce_standard=True)
    head.is_little_endian = syntax.is_little_endian
    head.is_implicit_VR = syntax.is_implicit_VR
    charset = peek(ds, "SpecificCharacterSet")
    encodings = convert_encodings(charset)  # type: ignore[arg-type]
    bulk = {t: ds._dict.pop(t) for t in [t for t in ds._dict if int(t) >= 0x7FE00008]}
    try:
        _write_items(head, ds, encodings)
    finally:
        ds._dict.update(bulk)
    chunks = [head.getvalue()]
    parts = [chunks[0]]
    for tag in sorted(bulk):
        tail = DicomBytesIO()
        tail.is_little_endian = syntax.is_little_endian
        tail.is_implicit_VR = syntax.is_implicit_VR
        elem = bulk[tag]
        if elem.VR is not None and " or " in elem.VR:
            bits = int(peek(ds, "BitsAllocated") or 8)  # type: ignore[call-overload]
            wide = not syntax.is_compressed and bits > 8
            vr = "OW" if wide else "OB"
            if isinstance(elem, RawDataElement):
                elem = elem._replace(VR=vr)
            else:
                elem.VR = vr
        if isinstance(elem, RawDataElement) and elem.value is None:
            elem = elem._replace(value=b"")
        write_data_element(tail, elem, encodings)
        parts.append(tail.getvalue())
        if int(tag) not in PIXEL_TAGS:
            chunks.append(parts[-1])
    return Encoded(b"".join(parts), chunks)
