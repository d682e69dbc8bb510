"""The PHI leak gate: no identifying value of the source may survive in the output.

:func:`collect_identifiers` walks the *source* dataset (every depth) and gathers what
identifies the patient, the staff and the site: names (every PN value), IDs, birth date,
addresses, phone numbers, accession numbers, institution and station, and every instance UID.
:func:`check_output` then scans the encoded *output* bytes (file meta and every element at
every depth; pixel data left out) in one regular-expression pass, case-insensitively and with
any separator between the parts of a name, an ID or a date. A hit blocks the file; the caller
quarantines it with the reason :func:`locate` gives (which kind of value, in which element;
never the value itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.multival import MultiValue
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from oncofed.node.deid.deidentify import CLASS_UID_TAGS, DICOM_ROOT, peek, vr_of

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
_SPLIT = re.compile(r"[^0-9A-Za-z\u00c0-\uffff]+")
_SEP = r"[^0-9A-Za-z]{0,3}"


@dataclass
class Identifiers:
    """Regular-expression fragments (with labels) for the source's identifying values."""

    fragments: dict[str, str] = field(default_factory=dict)  # fragment -> label
    uids: set[str] = field(default_factory=set)
    # Normalised values kept on purpose (Manufacturer): a site named after its scanner's
    # vendor is not identified by the vendor's name.
    exempt: tuple[str, ...] = ()
    # fragment -> a literal every match of it contains (upper case, UTF-8): a chunk that
    # contains none of them cannot match the pattern, so the pattern is not run on it.
    literals: dict[str, bytes] = field(default_factory=dict)

    def _add(self, fragment: str, label: str, literal: str) -> None:
        if fragment not in self.fragments:
            self.fragments[fragment] = label
            self.literals[fragment] = literal.encode("utf-8").upper()

    def add_value(self, kind: str, label: str, value: str) -> None:
        value = value.strip().rstrip("\x00").strip()
        if not value:
            return
        parts = [p for p in _SPLIT.split(value) if p]
        if not parts:
            return
        joined = "".join(parts)
        if len(joined) < MIN_TOKEN or joined.upper() in STOPWORDS:
            return
        if kind == "phrase" and any(joined.upper() in e for e in self.exempt):
            return
        whole = _SEP.join(re.escape(p) for p in parts)
        if kind == "date":
            if len(joined) == 8 and joined.isdigit():
                frag = rf"(?<![0-9]){joined[:4]}[-/. ]?{joined[4:6]}[-/. ]?{joined[6:]}(?![0-9])"
                self._add(frag, label, joined[:4])
            return
        longest = max(parts, key=len)
        if kind == "id" and len(joined) >= MIN_EMBEDDED_ID:
            self._add(whole, label, longest)
        else:
            self._add(rf"(?<![0-9A-Za-z]){whole}(?![0-9A-Za-z])", label, longest)
        if kind == "name":
            for part in parts:
                if len(part) >= MIN_TOKEN and part.upper() not in STOPWORDS:
                    frag = rf"(?<![0-9A-Za-z]){re.escape(part)}(?![0-9A-Za-z])"
                    self._add(frag, label, part)

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
    ids = Identifiers(exempt=tuple(exempt))
    _walk_source(src, ids)
    meta = getattr(src, "file_meta", None)
    if meta is not None:
        for t, label in META_IDENTIFYING.items():
            if t in meta:
                ids.add_value("phrase", label, str(meta[t].value or ""))
    return ids


@dataclass(frozen=True)
class Leak:
    label: str  # what kind of source value (e.g. PatientName)
    where: str  # where in the output (element path or byte offset)

    def __str__(self) -> str:
        return f"{self.label} of the source found in the output at {self.where}"


def check_output(chunks: list[bytes], ids: Identifiers) -> Leak | None:
    """Scan the encoded output (the chunks without pixel data); the first leak or None."""
    pattern = ids.pattern()
    literals = ids.literals if all(ids.literals.get(f) for f in ids.fragments) else None
    for chunk in chunks:
        if pattern is not None:
            if literals is not None:
                # Only the fragments whose literal is in the chunk can match there; in the
                # same order, so the first match is the full pattern's first match.
                upper = chunk.upper()
                present = tuple(sorted(f for f in ids.fragments if literals[f] in upper))
                search = _compile(present)
            else:
                search = pattern
            hit = search.search(chunk) if search is not None else None
            if hit is not None:
                return locate(chunks, ids, hit.group(0))
        uid = ids.uid_hit(chunk)
        if uid is not None:
            return locate(chunks, ids, uid.encode("ascii", "replace"))
    return None


def _label_for(ids: Identifiers, found: bytes) -> str:
    for frag, label in ids.fragments.items():
        if re.fullmatch(frag.encode(), found, re.IGNORECASE) or re.search(
            frag.encode(), found, re.IGNORECASE
        ):
            return label
    return "a source UID" if found.decode("latin-1") in ids.uids else "an identifying value"


def locate(chunks: list[bytes], ids: Identifiers, found: bytes) -> Leak:
    """Name which kind of identifier leaked and in which output element (slow path)."""
    label = _label_for(ids, found)
    where = "the encoded file"
    try:
        ds = dcmread(DicomBytesIO(chunks[0]), force=True)
        needle = found.decode("latin-1").upper()
        path = _find(ds.file_meta, needle, "file meta ") or _find(ds, needle, "")
        if path:
            where = path
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
            return f"{prefix}{elem.keyword or elem.tag} {elem.tag}"
    return None
