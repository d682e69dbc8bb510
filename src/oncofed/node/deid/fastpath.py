"""The byte-level fast path: source bytes in, de-identified bytes and the source's identifiers
out, in one walk over the header (the pixel data is never decoded nor copied more than once).

It implements exactly what :func:`~oncofed.node.deid.leakgate.collect_identifiers`,
:func:`~oncofed.node.deid.deidentify.deidentify` and
:func:`~oncofed.node.deid.deidentify.encode` do (the same profile, the same `_op_for`, the same
`_coarsen`, the same `DeidContext`), for the common case only: a Part 10 file in Explicit or
Implicit VR Little Endian with native pixel data and text in ASCII, ISO 8859-1 (ISO_IR 100)
or UTF-8 (ISO_IR 192). Anything else (another transfer syntax, UN values, other character
sets beyond ASCII, ISO 2022 escapes, a value it would have to interpret in a way the pydicom
path does not, a structure it cannot parse) makes :func:`process` return None and the caller
takes the pydicom path. The unit tests check that wherever it answers, its output bytes, scan
chunks and identifiers are identical to the pydicom path's.

Why it is fast (a CT series repeats almost all of its header from file to file):

- elements are parsed to offsets, not values; an element kept as is goes out as one slice
  of the source (header included), the pixel data as a view copied once into the output;
- what each (tag, VR) gets is decided once per process (:func:`_plan`);
- what an element or a whole sequence that is not kept as is becomes, and what it adds to
  the leak gate's identifiers, depends only on its bytes and on the context, the encoding,
  the patient's date shift and the kept vendor names: it is worked out once and looked up
  after (a cache in the :class:`DeidContext`, bounded), and the items of a defined-length
  sequence are parsed only when its bytes are new.
"""

from __future__ import annotations

import datetime as dt
import struct
from bisect import bisect_left
from collections.abc import Iterator
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
    DESCRIPTOR_TAGS,
    IDENTIFYING,
    META_IDENTIFYING,
    OWN_UIDS,
    Identifiers,
    _fragments_for,
    descriptor_set,
    descriptor_words,
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


# VR bytes as they appear in an explicit VR header -> the VR.
_VR_BY_CODE = {vr.encode("ascii"): vr for vr in _VALID_VR}
_VR_BYTES = {vr: vr.encode("ascii") for vr in _VALID_VR}
_SHORT_VR_BY_CODE = {code: vr for code, vr in _VR_BY_CODE.items() if vr not in LONG_VRS}
_PREAMBLE = b"\x00" * 128 + b"DICM"


class _Fallback(Exception):
    """The fast path does not cover this file: take the pydicom path."""


# An element as parsed: tag, VR, where its header starts, where its value starts, where it
# ends, and its items (sequences only, else None). Offsets instead of value bytes: most
# elements are written out as the very bytes they were read from (one slice of the source,
# header included) and are never decoded.
_Elem = tuple[int, str, int, int, int, list[list["_Elem"]] | None]


@dataclass
class FastResult:
    encoded: Encoded
    identifiers: Identifiers
    pseudonym: str
    patient_key: str
    date_shift_days: int | None
    transfer_syntax: UID
    _data: bytes
    _elems: list[_Elem]
    _meta: list[_Elem]
    _top: dict[int, _Elem]
    _meta_by: dict[int, _Elem]
    _implicit: bool
    _merged: dict[int, bytes | memoryview]
    _order: list[int]
    _out_vr: dict[int, str]

    @property
    def source(self) -> Dataset:
        """The source's top-level elements (raw, converted on access), file meta included."""
        data = self._data
        elems = [(t, vr, data[v:e]) for t, vr, _, v, e, items in self._elems if items is None]
        meta = [(t, vr, data[v:e]) for t, vr, _, v, e, _ in self._meta]
        ds = _raw_dataset(elems, self._implicit, False)
        ds.file_meta = _raw_dataset(meta, False, True)  # type: ignore[assignment]
        return ds

    def source_element(self, tag: int) -> tuple[str, bytes] | None:
        """A top-level element of the source (file meta included) as (VR, value bytes);
        ("SQ", b"") for a sequence, None when absent. For the few values ingest reads,
        without building a pydicom dataset."""
        found = (self._meta_by if tag >> 16 == 0x0002 else self._top).get(tag)
        if found is None:
            return None
        if found[5] is not None:
            return "SQ", b""
        return found[1], self._data[found[3] : found[4]]

    def source_length(self, tag: int) -> int | None:
        """The value length of a top-level source element (no copy); None when absent or a
        sequence."""
        found = (self._meta_by if tag >> 16 == 0x0002 else self._top).get(tag)
        return None if found is None or found[5] is not None else found[4] - found[3]

    def output_element(self, tag: int) -> tuple[str, bytes] | None:
        """A top-level element of the output as (VR, value bytes); ("SQ", b"") for a
        sequence, None when absent."""
        vr = self._out_vr.get(tag)
        part = self._merged.get(tag)
        if vr is None or part is None:
            return None
        if vr == "SQ":
            return "SQ", b""
        skip = 12 if not self._implicit and vr in LONG_VRS else 8
        return vr, bytes(part[skip:])

    @property
    def output(self) -> Dataset:
        """The output's top-level elements other than sequences (raw)."""
        output = []
        for tag in self._order:
            vr = self._out_vr[tag]
            if vr == "SQ":
                continue
            skip = 12 if not self._implicit and vr in LONG_VRS else 8
            output.append((tag, vr, bytes(self._merged[tag][skip:])))
        return _raw_dataset(output, self._implicit, False)


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
_U32 = struct.Struct("<L")
_IMPLICIT_HEAD = struct.Struct("<HHL")
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2sxxL")


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
    append = out.append
    head = _HEAD.unpack_from
    u32 = _U32.unpack_from
    short_vrs = _SHORT_VR_BY_CODE
    while pos < end:
        if end - pos < 8:
            raise _Fallback("trailing bytes")
        group, elem, code, short = head(data, pos)
        if not implicit and group != 0xFFFE:
            # The common case first: an explicit VR with a 2-byte length (never a sequence,
            # UN or an undefined length).
            vr = short_vrs.get(code)
            if vr is not None:
                stop = pos + 8 + short
                if stop > end:
                    raise _Fallback("truncated element")
                append((group << 16 | elem, vr, pos, pos + 8, stop, None))
                pos = stop
                continue
        tag = group << 16 | elem
        if group == 0xFFFE:
            if tag == until:
                if u32(data, pos + 4)[0] != 0:
                    raise _Fallback("delimiter with a length")
                return out, pos + 8
            raise _Fallback("stray delimiter")
        start = pos
        if implicit:
            vr = _vr_cache.get(tag) or _dict_vr(tag)
            length = u32(data, pos + 4)[0]
            pos += 8
        else:
            vr = _VR_BY_CODE.get(code)
            if vr is None:
                raise _Fallback("unknown VR")
            if vr in LONG_VRS:
                if short:
                    raise _Fallback("reserved bytes set")  # not written back as read
                if end - pos < 12:
                    raise _Fallback("truncated header")
                length = u32(data, pos + 8)[0]
                pos += 12
            else:
                length = short
                pos += 8
        if vr == "UN" and not group & 1:
            raise _Fallback("UN element")
        if length == UNDEFINED:
            if vr != "SQ":
                raise _Fallback("undefined length outside a sequence")
            items, after = _items(data, pos, end, implicit)
            append((tag, vr, start, pos, after, items))
            pos = after
            continue
        stop = pos + length
        if stop > end:
            raise _Fallback("truncated element")
        if vr == "SQ":
            # Its extent is known: its items are parsed when (and only if) its bytes have
            # not been seen before (see _Run.clean).
            append((tag, vr, start, pos, stop, _DEFERRED))
        else:
            append((tag, vr, start, pos, stop, None))  # bulk: never sliced here
        pos = stop
    if until is not None:
        raise _Fallback("missing delimiter")
    return out, pos


class _Deferred(list[list[_Elem]]):
    """The items of a defined-length sequence, not parsed yet: read them through
    :meth:`_Run.items_of`. Iterating this placeholder is a bug, and fails loudly instead of
    skipping the sequence's identifiers."""

    def __iter__(self) -> Iterator[list[_Elem]]:
        raise RuntimeError("deferred sequence items read without _Run.items_of")

    def __len__(self) -> int:
        raise RuntimeError("deferred sequence items read without _Run.items_of")

    def __bool__(self) -> bool:
        raise RuntimeError("deferred sequence items read without _Run.items_of")


_DEFERRED: list[list[_Elem]] = _Deferred()


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


def _text(value: bytes, encoding: str = "ascii") -> str:
    """The value as pydicom's path decodes it: ASCII as is; otherwise with the file's
    character set where it is one the fast path covers (see :data:`_ENCODINGS`), strictly
    (pydicom would replace invalid bytes: fall back instead)."""
    if value.isascii():
        if b"\x1b" in value:
            raise _Fallback("escape sequence")
        return value.decode("ascii")
    if encoding == "ascii":
        raise _Fallback("non-ASCII text")
    return value.decode(encoding)


# Specific Character Set -> how pydicom decodes the text of such a file (pydicom.charset:
# no value and ISO_IR 6 read as ISO 8859-1). Single-byte Latin-1 and UTF-8 only: in them a
# backslash byte is always the value delimiter, so values split the same before and after
# decoding. Files in other character sets take the fast path only where their text is ASCII.
_ENCODINGS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}


class _Writer:
    def __init__(self, implicit: bool) -> None:
        self.implicit = implicit

    def header(self, tag: int, vr: str, length: int) -> bytes:
        if self.implicit:
            return _IMPLICIT_HEAD.pack(tag >> 16, tag & 0xFFFF, length)
        if vr in LONG_VRS:
            return _EXPLICIT_LONG.pack(tag >> 16, tag & 0xFFFF, _VR_BYTES[vr], length)
        return _EXPLICIT_SHORT.pack(tag >> 16, tag & 0xFFFF, _VR_BYTES[vr], length)

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
_Out = list[tuple[int, bytes | memoryview]]


# What the walk does with an element, decided once per (tag, VR) from the profile:
_SKIP = 0  # nothing: private, group length, command group, or removed and not identifying
_KEEP = 1  # the source's bytes, as read, and nothing to collect
_VALUE = 2  # anything else that is not a sequence: worked out once per distinct value
_SEQ = 3  # a sequence: recursed into (or only searched for identifiers)
# (VR, kind, op or None where only identifiers are collected, the VR the element has at the
# top level of the output or None, its IDENTIFYING entry, whether it is identifying)
_Plan = tuple[str, int, Op | None, str | None, tuple[str, str] | None, bool]
_plans: dict[int, _Plan] = {}
_plans_by_vr: dict[tuple[int, str], _Plan] = {}


def _plan(tag: int, vr: str) -> _Plan:
    plan = _plans_by_vr.get((tag, vr))
    if plan is None:
        plan = _plans_by_vr[(tag, vr)] = _make_plan(tag, vr)
        _plans.setdefault(tag, plan)
    return plan


def _make_plan(tag: int, vr: str) -> _Plan:
    group = tag >> 16
    if group & 1:
        return (vr, _SKIP, None, None, None, False)
    known = IDENTIFYING.get(tag)
    structural = (tag & 0xFFFF) == 0 or group < 0x0008
    op = None if structural else _op_for(tag, vr)
    top_vr = None
    if op is not None and op is not Op.REMOVE and op is not Op.PATIENT_NAME:
        top_vr = "SQ" if op is Op.RECURSE or vr == "SQ" else vr
    if vr == "SQ":
        return (vr, _SEQ, op, top_vr, known, False)
    identifying = (
        tag < BULK
        and (known is not None or vr in ("PN", "UI"))
        and not (vr == "UI" and tag in CLASS_UID_TAGS)
    )
    if not identifying:
        if op is None or op is Op.REMOVE:
            return (vr, _SKIP, op, None, known, False)
        if op is Op.KEEP or op is Op.CLEAN or (op is Op.UID and tag in CLASS_UID_TAGS):
            return (vr, _KEEP, op, top_vr, known, False)
    return (vr, _VALUE, op, top_vr, known, identifying)


# (de-identified bytes or None, fragments to add, source UIDs found)
_Entry = tuple[bytes | None, tuple[tuple[str, str, bytes], ...], tuple[str, ...]]
_ELEMENT_CACHE_MAX = 20_000
_SEQUENCE_CACHE_BYTES = 64 * 1024  # larger sequences are worked out every time
_CACHES_MAX = 64


class _Run:
    """One file's walk: it collects the source's identifying values
    (leakgate.collect_identifiers) and writes the de-identified elements
    (deidentify._clean, then encode) in the same pass over the parsed elements.

    What an element that is neither kept as read nor a sequence becomes depends only on its
    bytes (tag, VR and value), the context, the date shift and the kept vendor names; the
    files of a series repeat most of them, so each distinct one is worked out once and
    looked up after (in the context, per encoding, shift and vendor names)."""

    def __init__(
        self,
        data: bytes,
        ctx: DeidContext,
        ids: Identifiers,
        implicit: bool,
        shift: int | None,
        encoding: str,
    ) -> None:
        self.data = data
        self.implicit = implicit
        self.encoding = encoding
        self.view = memoryview(data)
        self.ctx = ctx
        self.ids = ids
        self.w = _Writer(implicit)
        self.shift = shift
        self.top_vrs: dict[int, str] = {}
        caches = ctx._fast
        key = (implicit, shift, ids.exempt, encoding)
        found = caches.get(key)
        if found is None:
            if len(caches) >= _CACHES_MAX:
                caches.clear()
            found = caches[key] = ({}, {})
        self.cache: dict[bytes, _Entry] = found[0]
        self.collected: dict[bytes, _Entry] = found[1]

    # ---- the source's identifying values (leakgate._walk_source)

    def identifiers_of(
        self, tag: int, vr: str, known: tuple[str, str] | None, value: bytes
    ) -> tuple[list[tuple[str, str, bytes]], list[str]]:
        """What leakgate._walk_source adds for one element: fragments and UIDs."""
        frags: list[tuple[str, str, bytes]] = []
        uids: list[str] = []
        if vr == "UI":
            if tag in CLASS_UID_TAGS or not value:
                return frags, uids
            for uid in _text(value, self.encoding).rstrip(" \x00").split("\\"):
                uid = uid.strip().rstrip("\x00")
                if len(uid) >= 8 and not uid.startswith(DICOM_ROOT) and uid not in OWN_UIDS:
                    uids.append(uid)
            return frags, uids
        if vr not in TEXT_VRS:
            raise _Fallback("identifying value in a binary VR")
        text = _text(value, self.encoding)
        if vr == "PN":
            label = known[1] if known else f"person name {BaseTag(tag)}"
            for name in text.rstrip("\x00 ").split("\\"):
                for group in name.split("="):
                    frags.extend(_fragments_for("name", label, group, ()))
            return frags, uids
        if known is not None:
            kind, label = known
            exempt = self.ids.exempt if kind == "phrase" else ()
            values = [text] if vr in SINGLE_VALUED else text.split("\\")
            for v in values:
                frags.extend(_fragments_for(kind, label, v, exempt))
        return frags, uids

    def add(self, entry: _Entry) -> None:
        ids = self.ids
        fragments, literals = ids.fragments, ids.literals
        for fragment, label, literal in entry[1]:
            if fragment not in fragments:
                fragments[fragment] = label
                literals[fragment] = literal
        if entry[2]:
            ids.uids.update(entry[2])

    def collect(self, elems: list[_Elem]) -> None:
        """Identifying values only: the items of a sequence the profile drops or empties."""
        data, collected = self.data, self.collected
        for tag, vr, hpos, vpos, stop, items in elems:
            if (tag >> 16) & 1:
                continue
            if items is not None:
                self.collect_items(self.items_of(vpos, stop, items))
                continue
            if tag < BULK:
                known = IDENTIFYING.get(tag)
                if known is not None or vr == "PN" or vr == "UI":
                    raw = data[hpos:stop]
                    entry = collected.get(raw)
                    if entry is None:
                        frags, uids = self.identifiers_of(tag, vr, known, data[vpos:stop])
                        entry = (None, tuple(frags), tuple(uids))
                        if len(collected) >= _ELEMENT_CACHE_MAX:
                            collected.clear()
                        collected[raw] = entry
                    self.add(entry)

    def collect_items(self, items: list[list[_Elem]]) -> None:
        for item in items:
            self.collect(item)

    def items_of(self, start: int, stop: int, items: list[list[_Elem]]) -> list[list[_Elem]]:
        """A sequence's items, parsed now where the parse deferred them."""
        if items is not _DEFERRED:
            return items
        parsed, after = _items(self.data, start, stop, self.implicit, defined=True)
        if after != stop:
            raise _Fallback("sequence length mismatch")
        return parsed

    # ---- the transformer (deidentify._clean), writing bytes

    def clean(self, elems: list[_Elem], out: _Out, top: bool) -> None:
        data, view, cache, plans = self.data, self.view, self.cache, _plans
        top_vrs = self.top_vrs
        fragments, literals, uids = self.ids.fragments, self.ids.literals, self.ids.uids
        for tag, vr, hpos, vpos, stop, items in elems:
            plan = plans.get(tag)
            if plan is None or plan[0] != vr:
                plan = _plan(tag, vr)
            kind = plan[1]
            if kind == _KEEP:
                # Written as read: the header and value bytes of the source are exactly what
                # the writer would produce for them (same transfer syntax, reserved bytes 0);
                # large values (the pixel data) as a view, copied once into the output.
                out.append((tag, view[hpos:stop] if stop - hpos > 1024 else data[hpos:stop]))
                if top:
                    top_vrs[tag] = vr
            elif kind == _VALUE:
                raw = data[hpos:stop]
                entry = cache.get(raw)
                if entry is None:
                    entry = self.value(tag, vr, plan, raw, vpos - hpos)
                    if len(cache) >= _ELEMENT_CACHE_MAX:
                        cache.clear()
                    cache[raw] = entry
                if entry[0] is not None:
                    out.append((tag, entry[0]))
                for fragment, label, literal in entry[1]:
                    if fragment not in fragments:
                        fragments[fragment] = label
                        literals[fragment] = literal
                if entry[2]:
                    uids.update(entry[2])
                if top and plan[3] is not None:
                    top_vrs[tag] = plan[3]
            elif kind == _SEQ:
                # A whole sequence is worked out once per distinct bytes too (a series
                # repeats most of them), its items parsed only then.
                raw = data[hpos:stop]
                entry = cache.get(raw)
                if entry is None:
                    entry = self.sequence_entry(
                        tag, plan, vpos, stop, items if items is not None else []
                    )
                    if stop - hpos <= _SEQUENCE_CACHE_BYTES:
                        if len(cache) >= _ELEMENT_CACHE_MAX:
                            cache.clear()
                        cache[raw] = entry
                if entry[0] is not None:
                    out.append((tag, entry[0]))
                for fragment, label, literal in entry[1]:
                    if fragment not in fragments:
                        fragments[fragment] = label
                        literals[fragment] = literal
                if entry[2]:
                    uids.update(entry[2])
                if top and plan[3] is not None:
                    top_vrs[tag] = plan[3]

    def sequence_entry(
        self, tag: int, plan: _Plan, start: int, stop: int, items: list[list[_Elem]]
    ) -> _Entry:
        """What a sequence becomes and what it adds to the identifiers, in the order the
        walk would add them (collected apart, then added in that order by the caller)."""
        ids = self.ids
        self.ids = Identifiers(exempt=ids.exempt)
        out: _Out = []
        try:
            self.sequence(tag, plan, self.items_of(start, stop, items), out)
            found = self.ids
        finally:
            self.ids = ids
        frags = tuple((f, label, found.literals[f]) for f, label in found.fragments.items())
        new = b"".join(b for _, b in out) if out else None
        return (new, frags, tuple(found.uids))

    def sequence(self, tag: int, plan: _Plan, items: list[list[_Elem]], out: _Out) -> None:
        op = plan[2]
        if op is None:
            self.collect_items(items)
            return
        if op is Op.KEEP or op is Op.CLEAN:
            raise _Fallback("kept sequence")
        if op is Op.REMOVE:
            self.collect_items(items)
        elif op is Op.EMPTY:
            self.collect_items(items)
            out.append((tag, self.w.sequence(tag, [])))
        elif op is Op.RECURSE or op is Op.DUMMY:
            out.append((tag, self.w.sequence(tag, [self.item(i) for i in items])))
        else:
            raise _Fallback("sequence with a value op")

    def value(self, tag: int, vr: str, plan: _Plan, raw: bytes, offset: int) -> _Entry:
        """What one element that is not a sequence becomes, and what it adds to the
        identifiers (the result is cached by the caller)."""
        frags: list[tuple[str, str, bytes]] = []
        uids: list[str] = []
        if plan[5]:
            frags, uids = self.identifiers_of(tag, vr, plan[4], raw[offset:])
        op = plan[2]
        new = None if op is None else self.transform(tag, vr, op, raw, raw[offset:])
        return (new, tuple(frags), tuple(uids))

    def transform(self, tag: int, vr: str, op: Op, raw: bytes, value: bytes) -> bytes | None:
        ctx, w = self.ctx, self.w
        if op is Op.KEEP or op is Op.CLEAN:
            return raw
        if op is Op.REMOVE or op is Op.PATIENT_NAME:
            return None  # PatientName: set once at the top level
        if op is Op.EMPTY:
            return w.header(tag, vr, 0)
        if op is Op.RECURSE:
            return w.sequence(tag, [])
        if op is Op.UID:
            if tag in CLASS_UID_TAGS:
                return raw
            text = _text(value, self.encoding).rstrip("\x00 ")
            if "\\" in text:
                parts = [ctx.map_uid(u) for u in text.split("\\")]
                if not all(parts):
                    raise _Fallback("empty UID in a list")
                return w.string(tag, "UI", "\\".join(parts))
            return w.string(tag, "UI", ctx.map_uid(text.strip()) or None)
        if op is Op.DATE:
            text = _text(value, self.encoding).rstrip("\x00 ")
            return w.string(tag, vr, _coarsen(text, vr, self.shift) or None)
        if op is Op.PATIENT_ID or op is Op.ACCESSION:
            text = _text(value, self.encoding).rstrip("\x00 ")
            if "\\" in text:
                raise _Fallback("multi-valued identifier")
            text = text.strip()
            if op is Op.PATIENT_ID:
                new = ctx.pseudonym(text) if text else None
            else:
                new = ctx.accession(text) if text else None
            return w.string(tag, vr, new)
        if op is Op.PROVIDER:
            text = _text(value, self.encoding).rstrip("\x00 ")
            return w.string(tag, vr, ctx.provider_id[:64] if text.strip() else None)
        if op is Op.DUMMY:
            if vr in ("DA", "DT"):
                text = _text(value, self.encoding).rstrip("\x00 ")
                if "\\" in text:
                    raise _Fallback("multi-valued dummy date")
                return w.string(tag, vr, _coarsen(text.strip(), vr, self.shift))
            if vr == "UI":
                text = _text(value, self.encoding).rstrip("\x00 ")
                if "\\" in text:
                    raise _Fallback("multi-valued dummy UID")
                return w.string(tag, vr, ctx.map_uid(text.strip()) or None)
            if vr in _STRING_DUMMIES:
                return w.string(tag, vr, _STRING_DUMMIES[vr])
            raise _Fallback("binary dummy")
        raise _Fallback(f"op {op}")

    def item(self, elems: list[_Elem]) -> bytes:
        out: _Out = []
        self.clean(elems, out, False)
        out.sort(key=_first)
        return b"".join(b for _, b in out)


def _first(pair: tuple[int, bytes | memoryview]) -> int:
    return pair[0]


def _value(data: bytes, elems: dict[int, _Elem], tag: int, encoding: str = "ascii") -> str:
    """The stripped text of a top-level element ('' when absent or empty)."""
    e = elems.get(tag)
    if e is None or e[5] is not None:
        return ""
    return _text(data[e[3] : e[4]], encoding).rstrip("\x00 ").strip()


def _age(data: bytes, top: dict[int, _Elem], encoding: str) -> str | None:
    birth = _value(data, top, 0x00100030, encoding)
    when = (
        _value(data, top, 0x00080020, encoding)
        or _value(data, top, 0x00080021, encoding)
        or _value(data, top, 0x00080022, encoding)
    )
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


# (tag, default VR) of the elements added to every output; the order _added relies on.
_ADDED_VRS = (
    (PATIENT_ID, "LO"),
    (PATIENT_NAME, "PN"),
    (PATIENT_AGE, "AS"),
    (0x00120062, "CS"),
    (0x00120063, "LO"),
    (0x00120064, "SQ"),
    (0x00280303, "CS"),
)
_added_cache: dict[tuple[object, ...], tuple[dict[int, bytes], dict[int, str]]] = {}


def _added(
    w: _Writer, ctx: DeidContext, pseudonym: str, age: str | None, vrs: tuple[str, ...]
) -> tuple[dict[int, bytes], dict[int, str]]:
    """The added elements' bytes and their VRs (an attribute set on an existing element
    keeps that element's VR)."""
    pid, pname, page, removed, method, _, modified = vrs
    added: dict[int, bytes] = {
        PATIENT_ID: w.string(PATIENT_ID, pid, pseudonym),
        PATIENT_NAME: w.string(PATIENT_NAME, pname, pseudonym),
        0x00120062: w.string(0x00120062, removed, "YES"),
        0x00120063: w.string(0x00120063, method, "\\".join(ctx.method)),
        0x00120064: _codes(w),
        0x00280303: w.string(0x00280303, modified, "MODIFIED"),
    }
    if age is not None:
        added[PATIENT_AGE] = w.string(PATIENT_AGE, page, age)
    return added, {tag: vr for (tag, _), vr in zip(_ADDED_VRS, vrs, strict=True) if tag in added}


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


# (SOP class, transfer syntax) -> the file meta elements before and after the SOP instance
# UID: only that one changes from file to file.
_meta_cache: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_META_WRITER = _Writer(False)


def _meta(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    w = _META_WRITER
    parts = _meta_cache.get((sop_class, syntax))
    if parts is None:
        before = w.element(0x00020001, "OB", b"\x00\x01") + w.string(0x00020002, "UI", sop_class)
        after = (
            w.string(0x00020010, "UI", syntax)
            + w.string(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID)
            + w.string(0x00020013, "SH", IMPLEMENTATION_VERSION)
        )
        if len(_meta_cache) > 1024:
            _meta_cache.clear()
        parts = _meta_cache[(sop_class, syntax)] = (before, after)
    before, after = parts
    instance = w.string(0x00020003, "UI", sop_instance)
    length = len(before) + len(instance) + len(after)
    return (
        _PREAMBLE
        + w.element(0x00020000, "UL", length.to_bytes(4, "little"))
        + before
        + instance
        + after
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


_SYNTAXES = {EXPLICIT_LE: UID(EXPLICIT_LE), IMPLICIT_LE: UID(IMPLICIT_LE)}


def process(data: bytes, ctx: DeidContext) -> FastResult | None:
    """De-identify, encode and collect identifiers in one walk, or None (use the pydicom
    path) when the file is outside the fast path's scope."""
    try:
        return _process(data, ctx)
    except _Fallback:
        return None
    except (ValueError, IndexError, UnicodeDecodeError, OverflowError, struct.error):
        return None


def _process(data: bytes, ctx: DeidContext) -> FastResult:
    if len(data) < 144 or data[128:132] != b"DICM":
        raise _Fallback("no preamble")
    # File meta: explicit VR little endian, group 2.
    pos = 132
    size = len(data)
    meta: list[_Elem] = []
    while pos + 8 <= size:
        group, elem, code, length = _HEAD.unpack_from(data, pos)
        if group != 0x0002:
            break
        vr = _VR_BY_CODE.get(code)
        if vr is None or vr == "SQ":
            raise _Fallback("file meta not in explicit VR")
        if vr in LONG_VRS:
            if pos + 12 > size:
                raise _Fallback("file meta length")
            length, start = _U32.unpack_from(data, pos + 8)[0], pos + 12
        else:
            start = pos + 8
        if length == UNDEFINED or start + length > size:
            raise _Fallback("file meta length")
        meta.append((0x00020000 | elem, vr, pos, start, start + length, None))
        pos = start + length
    meta_by = {e[0]: e for e in meta}
    syntax = _value(data, meta_by, 0x00020010)
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
    charset = _value(data, top, 0x00080005)
    if "\\" in charset or "2022" in charset or "\\" in _value(data, top, 0x0020000D):
        raise _Fallback("character set")
    encoding = _ENCODINGS.get(charset, "ascii")  # another character set: ASCII text only

    # Identifiers (leakgate.collect_identifiers): the kept vendor names first, the values
    # themselves during the walk below.
    exempt = []
    for tag in (0x00080070, 0x00081090):
        text = _value(data, top, tag, encoding)
        if "\\" in text:
            raise _Fallback("multi-valued manufacturer")
        if text:
            exempt.append(exempt_value(text))
    words: list[str] = []
    for tag in DESCRIPTOR_TAGS:
        for v in _value(data, top, tag, encoding).split("\\"):
            words.extend(descriptor_words(tag, v))
    ids = Identifiers(exempt=tuple(exempt), descriptors=descriptor_set(words))

    # deidentify(): the patient key, the date shift and the age come from the top level
    # before the walk, which needs them.
    source_id, patient_key = "", ""
    for tag, key in ((PATIENT_ID, "PatientID"), (PATIENT_NAME, "PatientName")):
        text = _value(data, top, tag, encoding)
        if "\\" in text:
            raise _Fallback("multi-valued patient identity")
        if text:
            source_id, patient_key = text, key
            break
    if not source_id:
        study = _value(data, top, 0x0020000D, encoding)
        if not study:
            raise _Fallback("no patient key")
        source_id, patient_key = f"study:{study}", "StudyInstanceUID"
    shift = ctx.shift_days(source_id) if ctx.date_mode == "shift" else None
    run = _Run(data, ctx, ids, implicit, shift, encoding)
    age = None if _value(data, top, PATIENT_AGE, encoding) else _age(data, top, encoding)
    out: _Out = []
    run.clean(elems, out, True)
    for t, label in META_IDENTIFYING.items():
        e = meta_by.get(t)
        if e is not None:
            text = _text(data[e[3] : e[4]])
            if "\\" in text:
                raise _Fallback("multi-valued AE title")
            ids.add_value("phrase", label, text.strip())
    w = run.w
    pseudonym = ctx.pseudonym(source_id)
    merged = dict(out)
    if len(merged) != len(out):
        raise _Fallback("repeated tag")
    out_vr = run.top_vrs

    # The elements every output gets (STANDARDS §6), each with the VR of the source's
    # element where it had one; the same for every file of a patient, so built once.
    vrs = tuple(out_vr.get(tag, default) for tag, default in _ADDED_VRS)
    if vrs[5] != "SQ":
        raise _Fallback("odd VR")
    added_key = (w.implicit, pseudonym, age, vrs, ctx.date_mode)
    found = _added_cache.get(added_key)
    if found is None:
        found = _added(w, ctx, pseudonym, age, vrs)
        if len(_added_cache) >= 4096:
            _added_cache.clear()
        _added_cache[added_key] = found
    added, added_vrs = found
    out_vr.update(added_vrs)
    merged.update(added)
    order = sorted(merged)
    sop_class_elem = top[SOP_CLASS]
    if (
        sop_class_elem[5] is not None
        or SOP_INSTANCE not in merged
        or out_vr.get(SOP_INSTANCE) != "UI"
    ):
        raise _Fallback("no SOP UIDs")
    sop_uid = _text(bytes(merged[SOP_INSTANCE][8:])).rstrip("\x00 ")
    sop_class = _text(data[sop_class_elem[3] : sop_class_elem[4]]).rstrip("\x00 ")
    if not sop_uid or not sop_class:
        raise _Fallback("empty SOP UIDs")
    first_bulk = bisect_left(order, BULK)
    header = b"".join([_meta(sop_class, sop_uid, syntax), *[merged[t] for t in order[:first_bulk]]])
    parts: list[bytes | memoryview] = [header]
    scan = [header]
    for tag in order[first_bulk:]:
        part = merged[tag]
        parts.append(part)
        if tag not in PIXEL_TAGS:
            scan.append(bytes(part))
    encoded = Encoded(b"".join(parts), scan)
    return FastResult(
        encoded,
        ids,
        pseudonym,
        patient_key,
        shift,
        _SYNTAXES[syntax],
        data,
        elems,
        meta,
        top,
        meta_by,
        implicit,
        merged,
        order,
        out_vr,
    )
