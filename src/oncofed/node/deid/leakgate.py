"""The PHI leak gate: no identifying value of the source may survive in the output.

:func:`collect_identifiers` walks the *source* dataset (every depth) and gathers what
identifies the patient, the staff and the site: names (every PN value), IDs, birth date,
addresses, phone numbers, accession numbers, institution and station, and every instance UID.
:func:`check_output` then scans the encoded *output* bytes (file meta and every element at
every depth; pixel data left out) in one regular-expression pass, case-insensitively and with
any separator between the parts of a name, an ID or a date. A hit blocks the file; the caller
quarantines it with the reason :func:`locate` gives (which kind of value, in which element;
never the value itself).

What counts as identifying is a *value*, never a common word: a name is looked for whole, and
each of its parts alone only where the part identifies by itself (:func:`identifying_token`:
long enough, not a word of DICOM's vocabulary, not the value of a kept coded descriptor of the
same file, and, in a name written as an ID, a part with digits). Public archives set
PatientName to an ID such as ``Lung_Dx-A0011`` or ``LIDC-IDRI-0010``; its parts ``Lung`` or
``LIDC`` are no reason to quarantine a series described as "lung+c" or "LIDC-IDRI". An ID is
matched with separators ignored on both sides (``MRN-004-417-22`` is ``MRN00441722``).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.multival import MultiValue
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from oncofed.node.deid.deidentify import CLASS_UID_TAGS, DICOM_ROOT, peek, vr_of
from oncofed.node.deid.words import common_words

OWN_UIDS = frozenset({PYDICOM_IMPLEMENTATION_UID})
# tag -> (kind, label). Kinds: name (tokens and the whole), id (whole, also inside longer
# strings), phrase (whole, with any separators), date.
IDENTIFYING: dict[int, tuple[str, str]] = {
    0x00100020: ("id", "PatientID"),
    0x00101000: ("id", "OtherPatientIDs"),
    0x00080050: ("id", "AccessionNumber"),
    0x00200010: ("id", "StudyID"),
    0x00380010: ("id", "AdmissionID"),
    0x00380060: ("id", "ServiceEpisodeID"),
    0x00101090: ("id", "MedicalRecordLocator"),
    0x00401001: ("id", "RequestedProcedureID"),
    0x00400253: ("id", "PerformedProcedureStepID"),
    0x00400009: ("id", "ScheduledProcedureStepID"),
    0x00402016: ("id", "PlacerOrderNumberImagingServiceRequest"),
    0x00402017: ("id", "FillerOrderNumberImagingServiceRequest"),
    0x00120040: ("id", "ClinicalTrialSubjectID"),
    0x00181000: ("id", "DeviceSerialNumber"),
    0x00100030: ("date", "PatientBirthDate"),
    0x00101040: ("phrase", "PatientAddress"),
    0x00102154: ("phrase", "PatientTelephoneNumbers"),
    0x00102155: ("phrase", "PatientTelecomInformation"),
    0x00102152: ("phrase", "RegionOfResidence"),
    0x00100021: ("phrase", "IssuerOfPatientID"),
    0x00080080: ("phrase", "InstitutionName"),
    0x00080081: ("phrase", "InstitutionAddress"),
    0x00081040: ("phrase", "InstitutionalDepartmentName"),
    0x00080092: ("phrase", "ReferringPhysicianAddress"),
    0x00080094: ("phrase", "ReferringPhysicianTelephoneNumbers"),
    0x00081010: ("phrase", "StationName"),
    0x00401102: ("phrase", "PersonAddress"),
    0x00401103: ("phrase", "PersonTelephoneNumbers"),
    0x00102299: ("phrase", "ResponsibleOrganization"),
}
META_IDENTIFYING = {
    0x00020016: "SourceApplicationEntityTitle",
    0x00020017: "SendingApplicationEntityTitle",
    0x00020018: "ReceivingApplicationEntityTitle",
}
# Words that are placeholders, not identities: a source "named" ANONYMOUS does not make
# every output that says ANONYMIZED a leak.
STOPWORDS = frozenset(
    {
        "ANONYMIZED",
        "ANONYMOUS",
        "ANON",
        "UNKNOWN",
        "NONE",
        "NULL",
        "NAME",
        "PATIENT",
        "TEST",
        "DOCTOR",
        "MRS",
        "MISS",
        "PROF",
        "YES",
        "N/A",
        "NA",
    }
)
MIN_TOKEN = 3
MIN_EMBEDDED_ID = 6
# A part of a name is looked for alone only from this length (letters; with a digit: an ID
# like A0011) and, all digits, from MIN_EMBEDDED_ID.
MIN_NAME_TOKEN = 4
_SPLIT = re.compile(r"[^0-9A-Za-z\u00c0-\uffff]+")
_SEP = r"[^0-9A-Za-z]{0,3}"
# Separators an ID may be written with between any two of its characters. Neither "." nor
# "\\" (UIDs, decimal and multi-valued strings are made of them); what the prefilter deletes
# from the output before it looks for an ID's characters in a row.
_ID_SEPARATORS = b" -_/:#"
_ID_SEP = "[ \\-_/:#]{0,2}"
# Kept coded descriptors: a part of a name that is the value (or a word of the value) of one of
# them in the same file is a word of that file's description, not an identity.
# Free-text descriptors (Study/SeriesDescription, ProtocolName) exempt only their whole value.
DESCRIPTOR_TAGS = {
    0x00080060: False,  # Modality
    0x00180015: False,  # BodyPartExamined
    0x00080070: False,  # Manufacturer
    0x00081090: False,  # ManufacturerModelName
    0x00081030: True,  # StudyDescription
    0x0008103E: True,  # SeriesDescription
    0x00181030: True,  # ProtocolName
}  # tag -> whole value only
TOKEN = "(?#token)"  # marks the fragment of one part of a name (a regex comment)


def identifying_token(part: str) -> bool:
    """Whether one part of a name identifies by itself (see the module's docstring)."""
    upper = part.upper()
    if upper in STOPWORDS:
        return False
    if upper.isdigit():
        return len(upper) >= MIN_EMBEDDED_ID
    if len(upper) < MIN_NAME_TOKEN:
        return False
    return any(c.isdigit() for c in upper) or upper not in common_words()


def descriptor_words(tag: int, value: str) -> list[str]:
    """What a kept descriptor's value exempts (upper case): its words, or its whole value."""
    parts = [p.upper() for p in _SPLIT.split(value) if p]
    if not parts:
        return []
    return ["".join(parts)] if DESCRIPTOR_TAGS[tag] else parts


@dataclass
class Identifiers:
    """Regular-expression fragments (with labels) for the source's identifying values."""

    fragments: dict[str, str] = field(default_factory=dict)  # fragment -> label
    uids: set[str] = field(default_factory=set)
    # Normalised values kept on purpose (Manufacturer): a site named after its scanner's
    # vendor is not identified by the vendor's name.
    exempt: tuple[str, ...] = ()
    # fragment -> a literal every match of it contains once the ID separators are deleted
    # (upper case, UTF-8): a chunk that contains none of them cannot match the pattern, so
    # the pattern is not run on it.
    literals: dict[str, bytes] = field(default_factory=dict)
    # Words of the file's kept descriptors (upper case, UTF-8): a part of a name equal to
    # one of them is not looked for alone.
    descriptors: frozenset[bytes] = frozenset()

    def _add(self, fragment: str, label: str, literal: bytes) -> None:
        if fragment not in self.fragments:
            self.fragments[fragment] = label
            self.literals[fragment] = literal

    def add_value(self, kind: str, label: str, value: str) -> None:
        add = self._add
        for fragment, lab, literal in _fragments_for(
            kind, label, value, self.exempt if kind == "phrase" else ()
        ):
            add(fragment, lab, literal)

    def pattern(self) -> re.Pattern[bytes] | None:
        return _compile(tuple(sorted(self.fragments)))

    def uid_hit(self, chunk: bytes) -> str | None:
        """A source instance UID present in `chunk` as a whole value, or None."""
        for uid in self.uids:
            needle = uid.encode("ascii", "replace")
            start = chunk.find(needle)
            while start >= 0:
                end = start + len(needle)
                before = chunk[start - 1 : start] if start else b""
                after = chunk[end : end + 1]
                if not _UIDCHAR.match(before) and not _UIDCHAR.match(after):
                    return uid
                start = chunk.find(needle, start + 1)
        return None


_UIDCHAR = re.compile(rb"[0-9.]")


# (kind, label, value, exempt) -> what add_value adds. The files of a series repeat the same
# names, IDs and addresses: building their fragments (re.escape, splitting) once per value
# instead of once per file is most of what collecting identifiers costs.
_Fragments = tuple[tuple[str, str, bytes], ...]
_fragment_cache: dict[tuple[str, str, str, tuple[str, ...]], _Fragments] = {}
_FRAGMENT_CACHE_MAX = 100_000


def _fragments_for(kind: str, label: str, value: str, exempt: tuple[str, ...]) -> _Fragments:
    """The (fragment, label, literal) triples for one source value, in the order added."""
    key = (kind, label, value, exempt)
    cached = _fragment_cache.get(key)
    if cached is None:
        cached = tuple(_build_fragments(kind, label, value, exempt))
        if len(_fragment_cache) >= _FRAGMENT_CACHE_MAX:
            _fragment_cache.clear()
        _fragment_cache[key] = cached
    return cached


def _build_fragments(
    kind: str, label: str, value: str, exempt: tuple[str, ...]
) -> list[tuple[str, str, bytes]]:
    out: list[tuple[str, str, bytes]] = []

    def add(fragment: str, literal: str) -> None:
        out.append((fragment, label, literal.encode("utf-8").upper()))

    value = value.strip().rstrip("\x00").strip()
    if not value:
        return out
    parts = [p for p in _SPLIT.split(value) if p]
    if not parts:
        return out
    joined = "".join(parts)
    if len(joined) < MIN_TOKEN or joined.upper() in STOPWORDS:
        return out
    if kind == "phrase" and any(joined.upper() in e for e in exempt):
        return out
    whole = _SEP.join(re.escape(p) for p in parts)
    if kind == "date":
        if len(joined) == 8 and joined.isdigit():
            add(
                rf"(?<![0-9]){joined[:4]}[-/. ]?{joined[4:6]}[-/. ]?{joined[6:]}(?![0-9])",
                joined[:4],
            )
        return out
    longest = max(parts, key=len)
    if kind == "id":
        # Every character in order, any ID separators between them: both sides normalised.
        spaced = _ID_SEP.join(re.escape(c) for c in joined)
        if len(joined) >= MIN_EMBEDDED_ID:
            # Also inside a longer string, but not inside a longer number.
            before = "(?<![0-9])" if joined[0].isdigit() else ""
            after = "(?![0-9])" if joined[-1].isdigit() else ""
            add(f"{before}{spaced}{after}", joined)
        else:
            add(rf"(?<![0-9A-Za-z]){spaced}(?![0-9A-Za-z])", joined)
    elif kind == "name" and len(parts) == 1:
        # A one-word name is a part of a name: "PHANTOM" names no one.
        if joined.upper() not in common_words():
            add(rf"{TOKEN}(?<![0-9A-Za-z]){whole}(?![0-9A-Za-z])", joined)
    else:
        add(rf"(?<![0-9A-Za-z]){whole}(?![0-9A-Za-z])", longest)
    if kind == "name" and len(parts) > 1:
        # A name written as an ID (one word with digits, no component or space separators:
        # LIDC-IDRI-0010) is a collection's words and a number; only its parts with digits
        # identify alone. "Smith John 2" is a person's name and keeps every part.
        id_like = not any(c in value for c in "^ ") and any(c.isdigit() for c in value)
        for part in parts:
            if identifying_token(part) and not (id_like and part.isalpha()):
                add(rf"{TOKEN}(?<![0-9A-Za-z]){re.escape(part)}(?![0-9A-Za-z])", part)
    return out


@lru_cache(maxsize=1024)
def _compile(fragments: tuple[str, ...]) -> re.Pattern[bytes] | None:
    """One pattern per set of identifiers: the files of a patient share it."""
    if not fragments:
        return None
    text = "|".join(f"(?:{a})" for a in fragments)
    return re.compile(text.encode("utf-8"), re.IGNORECASE)


def _values(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    if isinstance(value, list | tuple | MultiValue):
        return [str(v) for v in value]
    return [str(value)]


def _walk_source(ds: Dataset, ids: Identifiers) -> None:
    for tag, raw in ds._dict.items():
        t = int(tag)
        if (t >> 16) & 1:
            continue  # private: removed by the transformer, never in the output
        vr = vr_of(t, raw)
        known = IDENTIFYING.get(t)
        if vr == "SQ":
            for item in ds[tag].value or []:
                _walk_source(item, ids)
            continue
        if known is None and vr not in ("PN", "UI"):
            continue
        try:
            value = peek(ds, t)  # raw stays raw: kept elements are written as read
        except Exception:
            continue
        if vr == "UI":
            if t in CLASS_UID_TAGS:
                continue
            for uid in _values(value):
                uid = uid.strip().rstrip("\x00")
                if len(uid) >= 8 and not uid.startswith(DICOM_ROOT) and uid not in OWN_UIDS:
                    ids.uids.add(uid)
            continue
        if vr == "PN":
            for name in _values(value):
                for group in str(name).split("="):
                    ids.add_value("name", known[1] if known else f"person name {tag}", group)
            continue
        if known is not None:
            for v in _values(value):
                ids.add_value(known[0], known[1], v)


def exempt_value(value: str) -> str:
    """A kept vendor name as :attr:`Identifiers.exempt` holds it."""
    return "".join(p for p in _SPLIT.split(value) if p).upper()


def collect_identifiers(src: Dataset) -> Identifiers:
    """The identifying values of a source dataset, its file meta included."""
    exempt = []
    for keyword in ("Manufacturer", "ManufacturerModelName"):
        try:
            value = str(peek(src, keyword) or "")
        except Exception:
            value = ""
        if value.strip():
            exempt.append(exempt_value(value))
    ids = Identifiers(exempt=tuple(exempt), descriptors=source_descriptors(src))
    _walk_source(src, ids)
    meta = getattr(src, "file_meta", None)
    if meta is not None:
        for t, label in META_IDENTIFYING.items():
            if t in meta:
                ids.add_value("phrase", label, str(meta[t].value or ""))
    return ids


def source_descriptors(src: Dataset) -> frozenset[bytes]:
    """The words of the source's kept descriptors (top level), as Identifiers holds them."""
    words: list[str] = []
    for tag in DESCRIPTOR_TAGS:
        try:
            value = peek(src, tag)
        except Exception:
            continue
        for v in _values(value):
            words.extend(descriptor_words(tag, v))
    return descriptor_set(words)


def descriptor_set(words: list[str]) -> frozenset[bytes]:
    return frozenset(w.encode("utf-8") for w in words)


@dataclass(frozen=True)
class Leak:
    label: str  # what kind of source value (e.g. PatientName)
    where: str  # where in the output (element path or byte offset)

    def __str__(self) -> str:
        return f"{self.label} of the source found in the output at {self.where}"


def check_output(chunks: list[bytes], ids: Identifiers) -> Leak | None:
    """Scan the encoded output (the chunks without pixel data); the first leak or None.

    Each fragment carries a literal that every match of it contains: a fragment whose
    literal is not in the upper-cased chunk cannot match there and is not run. The rest are
    run one by one (each compiled once per process, whatever file it came from) and the
    leftmost match wins, ties to the first in sorted order: the match one alternation of
    all of them would give, without compiling an alternation per set of identifiers.

    The output keeps the source's character set, so a value with accents is looked for
    both as UTF-8 and as ISO 8859-1 bytes (an ISO_IR 100 file writes "Müller" as one byte
    per letter)."""
    fragments = ids.fragments
    literals = ids.literals
    descriptors = ids.descriptors
    skip = [f for f, lit in literals.items() if lit in descriptors and f.startswith(TOKEN)]
    if skip:  # parts of a name that are words of this file's kept descriptors
        literals = {f: lit for f, lit in literals.items() if f not in skip}
        fragments = {f: fragments[f] for f in literals}
    prefilter = len(literals) == len(fragments) and all(literals.values())
    for chunk in chunks:
        if fragments:
            if prefilter:
                upper = chunk.upper().translate(None, _ID_SEPARATORS)
                present = [
                    f
                    for f, literal in literals.items()
                    if literal in upper or (not literal.isascii() and _in(_latin1(literal), upper))
                ]
            else:
                present = list(fragments)
            if present:
                best: re.Match[bytes] | None = None
                for fragment in sorted(present):
                    for pattern in _patterns(fragment):
                        hit = pattern.search(chunk)
                        if hit is not None and (best is None or hit.start() < best.start()):
                            best = hit
                if best is not None:
                    return locate(chunks, ids, best.group(0))
        uid = ids.uid_hit(chunk)
        if uid is not None:
            return locate(chunks, ids, uid.encode("ascii", "replace"))
    return None


@lru_cache(maxsize=65536)
def _patterns(fragment: str) -> tuple[re.Pattern[bytes], ...]:
    """The fragment compiled over UTF-8 bytes, and over ISO 8859-1 bytes where it has
    letters beyond ASCII that ISO 8859-1 can write."""
    compiled = [re.compile(fragment.encode("utf-8"), re.IGNORECASE)]
    if not fragment.isascii():
        with contextlib.suppress(UnicodeEncodeError):
            compiled.append(re.compile(fragment.encode("latin-1"), re.IGNORECASE))
    return tuple(compiled)


def _in(needle: bytes | None, haystack: bytes) -> bool:
    return needle is not None and needle in haystack


@lru_cache(maxsize=65536)
def _latin1(literal: bytes) -> bytes | None:
    """A UTF-8 literal as ISO 8859-1 bytes, or None when it has no such form."""
    try:
        return literal.decode("utf-8").encode("latin-1")
    except UnicodeError:
        return None


def _label_for(ids: Identifiers, found: bytes) -> str:
    for frag, label in ids.fragments.items():
        if any(p.search(found) for p in _patterns(frag)):
            return label
    return "a source UID" if found.decode("latin-1") in ids.uids else "an identifying value"


def locate(chunks: list[bytes], ids: Identifiers, found: bytes) -> Leak:
    """Name which kind of identifier leaked and in which output element (slow path)."""
    label = _label_for(ids, found)
    where = "the encoded file"
    try:
        ds = dcmread(DicomBytesIO(chunks[0]), force=True)
        # The match is bytes of the output: UTF-8 when the name has accents in a UTF-8 file
        # (the fragments are UTF-8), else any single-byte text.
        for needle in dict.fromkeys(
            [found.decode("utf-8", "replace").upper(), found.decode("latin-1").upper()]
        ):
            path = _find(ds.file_meta, needle, "file meta ") or _find(ds, needle, "")
            if path:
                where = path
                break
    except Exception:
        pass
    return Leak(label, where)


def _find(ds: Dataset, needle: str, prefix: str) -> str | None:
    for elem in ds:
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                sub = _find(item, needle, f"{prefix}{elem.keyword or elem.tag}[{i}].")
                if sub:
                    return sub
            continue
        try:
            text = " ".join(_values(elem.value)).upper()
        except Exception:
            continue
        if needle in text:
            # "SeriesDescription (0008,103E)"; a tag without a keyword once: "(0009,1001)"
            return f"{prefix}{elem.keyword} {elem.tag}" if elem.keyword else f"{prefix}{elem.tag}"
    return None
