"""The byte-level fast path: source bytes in, de-identified bytes and the source's identifiers
out, in one walk over the header (the pixel data is never decoded nor copied more than once).

It implements exactly what :func:`~oncofed.node.deid.leakgate.collect_identifiers`,
:func:`~oncofed.node.deid.deidentify.deidentify` and
:func:`~oncofed.node.deid.deidentify.encode` do (the same profile, the same `_op_for`, the same
`_coarsen`, the same `DeidContext`), for the common case only: a Part 10 file in Explicit or
Implicit VR Little Endian with native pixel data and ASCII text. Anything else (another
transfer syntax, UN or non-ASCII values, ISO 2022 escapes, a value it would have to interpret
in a way the pydicom path does not, a structure it cannot parse) makes :func:`process` return
None and the caller takes the pydicom path. The unit tests check that wherever it answers, its
output bytes, scan chunks and identifiers are identical to the pydicom path's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from oncofed.node.deid.deidentify import (
    CLASS_UID_TAGS,
    DUMMY_TEXT,
    IMPLEMENTATION_VERSION,
    PIXEL_TAGS,
    DeidContext,
    Encoded,
    _coarsen,
    _op_for,
)
from oncofed.node.deid.leakgate import (
    IDENTIFYING,
    META_IDENTIFYING,
    OWN_UIDS,
    Identifiers,
    exempt_value,
)
from oncofed.node.deid.profile import METHOD_CODES, Op

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DICOM_ROOT = "1.2.840.10008."
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
    | {"UR", "UT"}
)
SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})
_STRING_DUMMIES = {
    **{vr: DUMMY_TEXT for vr in ("PN", "LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE")},
    "UR": "urn:oncofed:anonymized",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
}
_VALID_VR = frozenset(
    [
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FD",
        "FL",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
    ]
)
PATIENT_ID, PATIENT_NAME, PATIENT_AGE = 0x00100020, 0x00100010, 0x00101010
BULK = 0x7FE00008
SOP_CLASS, SOP_INSTANCE = 0x00080016, 0x00080018


class _Fallback(Exception):
    """The fast path does not cover this file: take the pydicom path."""


@dataclass
class FastResult:
    encoded: Encoded
    identifiers: Identifiers
    pseudonym: str
    patient_key: str
    date_shift_days: int | None
    transfer_syntax: UID
    _source: tuple[list[tuple[int, str, bytes]], list[tuple[int, str, bytes]], bool]
    _output: list[tuple[int, str, bytes]]

    @property
    def source(self) -> Dataset:
        """The source's top-level elements (raw, converted on access), file meta included."""
        elems, meta, implicit = self._source
        ds = _raw_dataset(elems, implicit, False)
        ds.file_meta = _raw_dataset(meta, False, True)  # type: ignore[assignment]
        return ds

    @property
    def output(self) -> Dataset:
        """The output's top-level elements other than sequences (raw)."""
        return _raw_dataset(self._output, self.transfer_syntax == IMPLICIT_LE, False)


# An element as parsed: tag, VR, value bytes (None for a sequence), items (sequences only).
_Elem = tuple[int, str, bytes | None, list[list["_Elem"]] | None]

_vr_cache: dict[int, str] = {}


def _dict_vr(tag: int) -> str:
    vr = _vr_cache.get(tag)
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
        if " or " in vr:
            vr = "OW" if "OW" in vr else "US"
        _vr_cache[tag] = vr
    return vr


_HEAD = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HHL")


def _u16(data: bytes, pos: int) -> int:
    return data[pos] | data[pos + 1] << 8


def _u32(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")


def _tag(data: bytes, pos: int) -> int:
    return _u16(data, pos) << 16 | _u16(data, pos + 2)


def _parse(
    data: bytes, pos: int, end: int, implicit: bool, until: int | None
) -> tuple[list[_Elem], int]:
    """Elements from `pos` to `end` (or to the item delimiter when `until` is set)."""
    out: list[_Elem] = []
    while pos < end:
        if end - pos < 8:
            raise _Fallback("trailing bytes")
        group, elem, length = _LONG.unpack_from(data, pos)
        tag = group << 16 | elem
        if tag == until:
            if length != 0:
                raise _Fallback("delimiter with a length")
            return out, pos + 8
        if group == 0xFFFE:
            raise _Fallback("stray delimiter")
        if implicit:
            vr = _dict_vr(tag)
            pos += 8
        else:
            _, _, code, length = _HEAD.unpack_from(data, pos)
            vr = code.decode("latin-1")
            if vr not in _VALID_VR:
                raise _Fallback("unknown VR")
            if vr in LONG_VRS:
                length = _u32(data, pos + 8)
                pos += 12
            else:
                pos += 8
        if vr == "UN" and not (tag >> 16) & 1:
            raise _Fallback("UN element")
        if length == UNDEFINED:
            if vr != "SQ":
                raise _Fallback("undefined length outside a sequence")
            items, pos = _items(data, pos, end, implicit)
            out.append((tag, vr, None, items))
            continue
        stop = pos + length
        if stop > end:
            raise _Fallback("truncated element")
        if vr == "SQ":
            items, after = _items(data, pos, stop, implicit, defined=True)
            if after != stop:
                raise _Fallback("sequence length mismatch")
            out.append((tag, vr, None, items))
        else:
            out.append((tag, vr, data[pos:stop], None))  # bulk: sliced once, never decoded
        pos = stop
    if until is not None:
        raise _Fallback("missing delimiter")
    return out, pos


def _items(
    data: bytes, pos: int, end: int, implicit: bool, defined: bool = False
) -> tuple[list[list[_Elem]], int]:
    items: list[list[_Elem]] = []
    while pos < end:
        if end - pos < 8:
            raise _Fallback("truncated sequence")
        tag = _tag(data, pos)
        length = _u32(data, pos + 4)
        pos += 8
        if tag == SEQUENCE_END:
            if defined or length != 0:
                raise _Fallback("unexpected sequence delimiter")
            return items, pos
        if tag != ITEM:
            raise _Fallback("not an item")
        if length == UNDEFINED:
            elems, pos = _parse(data, pos, end, implicit, ITEM_END)
        else:
            if pos + length > end:
                raise _Fallback("truncated item")
            elems, after = _parse(data, pos, pos + length, implicit, None)
            pos = after
        items.append(elems)
    if not defined:
        raise _Fallback("missing sequence delimiter")
    return items, pos


def _text(value: bytes) -> str:
    """The value as pydicom's path sees it for our purposes (ASCII only, else fall back)."""
    if not value.isascii() or b"\x1b" in value:
        raise _Fallback("non-ASCII text")
    return value.decode("ascii")


class _Writer:
    def __init__(self, implicit: bool) -> None:
        self.implicit = implicit

    def header(self, tag: int, vr: str, length: int) -> bytes:
        t = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
        if self.implicit:
            return t + length.to_bytes(4, "little")
        if vr in LONG_VRS:
            return t + vr.encode() + b"\x00\x00" + length.to_bytes(4, "little")
        return t + vr.encode() + length.to_bytes(2, "little")

    def element(self, tag: int, vr: str, value: bytes) -> bytes:
        return self.header(tag, vr, len(value)) + value

    def string(self, tag: int, vr: str, text: str | None) -> bytes:
        if not text:
            return self.header(tag, vr, 0)
        raw = text.encode("ascii")
        if len(raw) & 1:
            raw += b"\x00" if vr == "UI" else b" "
        if not self.implicit and vr not in LONG_VRS and len(raw) > 0xFFFF:
            raise _Fallback("value too long")
        return self.header(tag, vr, len(raw)) + raw

    def sequence(self, tag: int, items: list[bytes]) -> bytes:
        head = self.header(tag, "SQ", UNDEFINED)
        body = b"".join(
            _ITEM_HEAD + item + _ITEM_END_BYTES for item in items
        )  # items written with undefined length, like encode()
        return head + body + _SEQ_END_BYTES


_ITEM_HEAD = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_END_BYTES = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQ_END_BYTES = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


class _Run:
    def __init__(self, ctx: DeidContext, ids: Identifiers, implicit: bool) -> None:
        self.ctx = ctx
        self.ids = ids
        self.w = _Writer(implicit)
        self.shift: int | None = None
        self.top_vrs: dict[int, str] = {}
        self._depth = 0

    # ---- the source's identifying values (leakgate._walk_source)

    def collect(self, elems: list[_Elem]) -> None:
        ids = self.ids
        for tag, vr, value, items in elems:
            if (tag >> 16) & 1:
                continue
            if items is not None:
                for item in items:
                    self.collect(item)
                continue
            known = IDENTIFYING.get(tag)
            if known is None and vr not in ("PN", "UI"):
                continue
            if value is None or tag >= 0x7FE00008:
                continue
            if vr == "UI":
                if tag in CLASS_UID_TAGS or not value:
                    continue
                for uid in _text(value).rstrip(" \x00").split("\\"):
                    uid = uid.strip().rstrip("\x00")
                    if len(uid) >= 8 and not uid.startswith(DICOM_ROOT) and uid not in OWN_UIDS:
                        ids.uids.add(uid)
                continue
            if vr not in TEXT_VRS:
                raise _Fallback("identifying value in a binary VR")
            text = _text(value)
            if vr == "PN":
                for name in text.rstrip("\x00 ").split("\\"):
                    for group in name.split("="):
                        ids.add_value(
                            "name", known[1] if known else f"person name {BaseTag(tag)}", group
                        )
                continue
            if known is not None:
                values = [text] if vr in SINGLE_VALUED else text.split("\\")
                for v in values:
                    ids.add_value(known[0], known[1], v)

    # ---- the transformer (deidentify._clean), writing bytes

    def clean(self, elems: list[_Elem], out: list[tuple[int, bytes]]) -> None:
        ctx, w = self.ctx, self.w
        top = self._depth == 0
        for tag, vr, value, items in elems:
            group = tag >> 16
            if group & 1 or (tag & 0xFFFF) == 0 or group < 0x0008:
                continue
            op = _op_for(tag, vr)
            if top and op is not Op.REMOVE and op is not Op.PATIENT_NAME:
                self.top_vrs[tag] = "SQ" if op is Op.RECURSE or vr == "SQ" else vr
            if op is Op.KEEP or op is Op.CLEAN:
                if value is None:
                    raise _Fallback("kept sequence")
                out.append((tag, w.element(tag, vr, value)))
                continue
            if op is Op.REMOVE:
                continue
            if op is Op.EMPTY:
                if vr == "SQ":
                    out.append((tag, w.sequence(tag, [])))
                else:
                    out.append((tag, w.header(tag, vr, 0)))
                continue
            if op is Op.RECURSE or (op is Op.DUMMY and vr == "SQ"):
                out.append((tag, w.sequence(tag, [self.item(i) for i in items or []])))
                continue
            if value is None:
                raise _Fallback("sequence with a value op")
            if op is Op.UID:
                if tag in CLASS_UID_TAGS:
                    out.append((tag, w.element(tag, vr, value)))
                    continue
                text = _text(value).rstrip("\x00 ")
                if "\\" in text:
                    parts = [ctx.map_uid(u) for u in text.split("\\")]
                    if not all(parts):
                        raise _Fallback("empty UID in a list")
                    out.append((tag, w.string(tag, "UI", "\\".join(parts))))
                else:
                    out.append((tag, w.string(tag, "UI", ctx.map_uid(text.strip()) or None)))
            elif op is Op.DATE:
                text = _text(value).rstrip("\x00 ")
                out.append((tag, w.string(tag, vr, _coarsen(text, vr, self.shift) or None)))
            elif op is Op.PATIENT_ID or op is Op.ACCESSION:
                text = _text(value).rstrip("\x00 ")
                if "\\" in text:
                    raise _Fallback("multi-valued identifier")
                text = text.strip()
                if op is Op.PATIENT_ID:
                    new = ctx.pseudonym(text) if text else None
                else:
                    new = ctx.accession(text) if text else None
                out.append((tag, w.string(tag, vr, new)))
            elif op is Op.PATIENT_NAME:
                pass
            elif op is Op.PROVIDER:
                text = _text(value).rstrip("\x00 ")
                out.append((tag, w.string(tag, vr, ctx.provider_id[:64] if text.strip() else None)))
            elif op is Op.DUMMY:
                if vr in ("DA", "DT"):
                    text = _text(value).rstrip("\x00 ")
                    if "\\" in text:
                        raise _Fallback("multi-valued dummy date")
                    out.append((tag, w.string(tag, vr, _coarsen(text.strip(), vr, self.shift))))
                elif vr == "UI":
                    text = _text(value).rstrip("\x00 ")
                    if "\\" in text:
                        raise _Fallback("multi-valued dummy UID")
                    out.append((tag, w.string(tag, vr, ctx.map_uid(text.strip()) or None)))
                elif vr in _STRING_DUMMIES:
                    out.append((tag, w.string(tag, vr, _STRING_DUMMIES[vr])))
                else:
                    raise _Fallback("binary dummy")
            else:
                raise _Fallback(f"op {op}")

    def item(self, elems: list[_Elem]) -> bytes:
        out: list[tuple[int, bytes]] = []
        self._depth += 1
        try:
            self.clean(elems, out)
        finally:
            self._depth -= 1
        out.sort(key=lambda e: e[0])
        return b"".join(b for _, b in out)


def _value(elems: dict[int, _Elem], tag: int) -> str:
    """The stripped text of a top-level element ('' when absent or empty)."""
    e = elems.get(tag)
    if e is None or e[2] is None:
        return ""
    return _text(e[2]).rstrip("\x00 ").strip()


def _age(top: dict[int, _Elem]) -> str | None:
    import datetime as dt

    birth = _value(top, 0x00100030)
    when = _value(top, 0x00080020) or _value(top, 0x00080021) or _value(top, 0x00080022)
    if "\\" in birth or "\\" in when:
        raise _Fallback("multi-valued date")
    birth = birth[:8]
    if len(birth) != 8 or len(when[:8]) != 8 or not (birth + when[:8]).isdigit():
        return None
    try:
        b = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
        s = dt.date(int(when[:4]), int(when[4:6]), int(when[6:8]))
    except ValueError:
        return None
    years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
    return f"{years:03d}Y" if 0 <= years < 200 else None


_method_cache: dict[tuple[bool, tuple[str, ...]], bytes] = {}


def _codes(w: _Writer) -> bytes:
    key = (w.implicit, ())
    cached = _method_cache.get(key)
    if cached is None:
        items = []
        for value, meaning in METHOD_CODES:
            items.append(
                w.string(0x00080100, "SH", value)
                + w.string(0x00080102, "SH", "DCM")
                + w.string(0x00080104, "LO", meaning)
            )
        cached = _method_cache[key] = w.sequence(0x00120064, items)
    return cached


def _meta(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    w = _Writer(False)
    body = (
        w.element(0x00020001, "OB", b"\x00\x01")
        + w.string(0x00020002, "UI", sop_class)
        + w.string(0x00020003, "UI", sop_instance)
        + w.string(0x00020010, "UI", syntax)
        + w.string(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID)
        + w.string(0x00020013, "SH", IMPLEMENTATION_VERSION)
    )
    return (
        b"\x00" * 128
        + b"DICM"
        + w.element(0x00020000, "UL", len(body).to_bytes(4, "little"))
        + body
    )


def _raw_dataset(elems: list[tuple[int, str, bytes]], implicit: bool, meta: bool) -> Dataset:
    ds: Dataset = FileMetaDataset() if meta else Dataset()
    store = ds._dict
    for tag, vr, value in elems:
        store[BaseTag(tag)] = RawDataElement(
            BaseTag(tag), vr, len(value), value, 0, implicit and not meta, True
        )
    if not meta:
        ds.set_original_encoding(implicit, True)
    return ds


def process(data: bytes, ctx: DeidContext) -> FastResult | None:
    """De-identify, encode and collect identifiers in one walk, or None (use the pydicom
    path) when the file is outside the fast path's scope."""
    try:
        return _process(data, ctx)
    except _Fallback:
        return None
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _process(data: bytes, ctx: DeidContext) -> FastResult:
    if len(data) < 144 or data[128:132] != b"DICM":
        raise _Fallback("no preamble")
    # File meta: explicit VR little endian, group 2.
    pos = 132
    meta: list[_Elem] = []
    while pos + 8 <= len(data) and _u16(data, pos) == 0x0002:
        vr = data[pos + 4 : pos + 6].decode("latin-1")
        if vr not in _VALID_VR or vr == "SQ":
            raise _Fallback("file meta not in explicit VR")
        if vr in LONG_VRS:
            length, start = _u32(data, pos + 8), pos + 12
        else:
            length, start = _u16(data, pos + 6), pos + 8
        if length == UNDEFINED or start + length > len(data):
            raise _Fallback("file meta length")
        meta.append((_tag(data, pos), vr, data[start : start + length], None))
        pos = start + length
    meta_by = {e[0]: e for e in meta}
    syntax = _value(meta_by, 0x00020010)
    if syntax not in (EXPLICIT_LE, IMPLICIT_LE):
        raise _Fallback("transfer syntax")
    implicit = syntax == IMPLICIT_LE
    if pos + 8 > len(data):
        raise _Fallback("no data set")
    looks_explicit = data[pos + 4 : pos + 6].decode("latin-1") in _VALID_VR
    if looks_explicit == implicit:
        raise _Fallback("encoding differs from the declared transfer syntax")
    elems, _ = _parse(data, pos, len(data), implicit, None)
    top = {e[0]: e for e in elems}
    if len(top) != len(elems):
        raise _Fallback("repeated tag")
    if SOP_INSTANCE not in top or SOP_CLASS not in top or 0x00041220 in top:
        raise _Fallback("not an image object")
    charset = _value(top, 0x00080005)
    if "\\" in charset or "2022" in charset or "\\" in _value(top, 0x0020000D):
        raise _Fallback("character set")

    # Identifiers (leakgate.collect_identifiers).
    exempt = []
    for tag in (0x00080070, 0x00081090):
        text = _value(top, tag)
        if "\\" in text:
            raise _Fallback("multi-valued manufacturer")
        if text:
            exempt.append(exempt_value(text))
    ids = Identifiers(exempt=tuple(exempt))
    run = _Run(ctx, ids, implicit)
    run.collect(elems)
    for t, label in META_IDENTIFYING.items():
        e = meta_by.get(t)
        if e is not None:
            text = _text(e[2] or b"")
            if "\\" in text:
                raise _Fallback("multi-valued AE title")
            ids.add_value("phrase", label, text.strip())

    # deidentify()
    source_id, patient_key = "", ""
    for tag, key in ((PATIENT_ID, "PatientID"), (PATIENT_NAME, "PatientName")):
        text = _value(top, tag)
        if "\\" in text:
            raise _Fallback("multi-valued patient identity")
        if text:
            source_id, patient_key = text, key
            break
    if not source_id:
        study = _value(top, 0x0020000D)
        if not study:
            raise _Fallback("no patient key")
        source_id, patient_key = f"study:{study}", "StudyInstanceUID"
    shift = ctx.shift_days(source_id) if ctx.date_mode == "shift" else None
    run.shift = shift
    age = None if _value(top, PATIENT_AGE) else _age(top)
    out: list[tuple[int, bytes]] = []
    run.clean(elems, out)
    w = run.w
    pseudonym = ctx.pseudonym(source_id)
    merged = dict(out)
    if len(merged) != len(out):
        raise _Fallback("repeated tag")
    out_vr = run.top_vrs

    def vr_for(tag: int, default: str) -> str:
        return out_vr.get(tag, default)  # an attribute set on an existing element keeps its VR

    added: dict[int, bytes] = {
        PATIENT_ID: w.string(PATIENT_ID, vr_for(PATIENT_ID, "LO"), pseudonym),
        PATIENT_NAME: w.string(PATIENT_NAME, vr_for(PATIENT_NAME, "PN"), pseudonym),
        0x00120062: w.string(0x00120062, vr_for(0x00120062, "CS"), "YES"),
        0x00120063: w.string(0x00120063, vr_for(0x00120063, "LO"), "\\".join(ctx.method)),
        0x00120064: _codes(w),
        0x00280303: w.string(0x00280303, vr_for(0x00280303, "CS"), "MODIFIED"),
    }
    if age is not None:
        added[PATIENT_AGE] = w.string(PATIENT_AGE, vr_for(PATIENT_AGE, "AS"), age)
    if vr_for(0x00120064, "SQ") != "SQ":
        raise _Fallback("odd VR")
    for tag in added:
        out_vr[tag] = vr_for(tag, _dict_vr(tag))
    merged.update(added)
    order = sorted(merged)
    sop_class_raw = top[SOP_CLASS][2]
    if sop_class_raw is None or SOP_INSTANCE not in merged or out_vr.get(SOP_INSTANCE) != "UI":
        raise _Fallback("no SOP UIDs")
    sop_uid = _text(merged[SOP_INSTANCE][8:]).rstrip("\x00 ")
    sop_class = _text(sop_class_raw).rstrip("\x00 ")
    if not sop_uid or not sop_class:
        raise _Fallback("empty SOP UIDs")
    parts = [_meta(sop_class, sop_uid, syntax) + b"".join(merged[t] for t in order if t < BULK)]
    scan = [parts[0]]
    for tag in order:
        if tag >= BULK:
            parts.append(merged[tag])
            if tag not in PIXEL_TAGS:
                scan.append(merged[tag])
    encoded = Encoded(b"".join(parts), scan)

    # What the callers' checks and index read (small datasets built on demand).
    source = (
        [(t, vr, v) for t, vr, v, _ in elems if v is not None],
        [(t, vr, v) for t, vr, v, _ in meta if v is not None],
        implicit,
    )
    output = []
    for tag in order:
        vr = out_vr[tag]
        if vr == "SQ":
            continue
        b = merged[tag]
        skip = 12 if not implicit and vr in LONG_VRS else 8
        output.append((tag, vr, b[skip:]))
    return FastResult(encoded, ids, pseudonym, patient_key, shift, UID(syntax), source, output)
