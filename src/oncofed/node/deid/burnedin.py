"""Hold-back rules: images that may carry identifying text in their pixels.

The transformer cleans attributes, not pixels. An image whose pixels may show a name or a
date (a burned-in annotation, a secondary capture, an ultrasound frame, a screenshot, a
photograph, a slide label) is therefore held for a person to review instead of being
published (STANDARDS §6). :func:`hold_reason` says why, or None to publish.
"""

from __future__ import annotations

from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and .7.1 ... .7.4 (multi-frame SC)
ULTRASOUND_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6",  # retired US image
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.6.2",  # enhanced US volume
        "1.2.840.10008.5.1.4.1.1.6.3",  # photoacoustic
        "1.2.840.10008.5.1.4.1.1.3",  # retired US multi-frame
        "1.2.840.10008.5.1.4.1.1.3.1",
    }
)
# Visible light, video, encapsulated documents (PDF/CDA may be anything).
PHOTO_PREFIXES = ("1.2.840.10008.5.1.4.1.1.77.", "1.2.840.10008.5.1.4.1.1.104.")
TEXT_MODALITIES = {
    "US": "ultrasound",
    "IVUS": "ultrasound",
    "XC": "photograph",
    "ES": "endoscopy video or photograph",
    "GM": "photograph",
    "SC": "secondary capture",
    "DOC": "encapsulated document",
}


def hold_reason(ds: Dataset) -> str | None:
    """Why `ds` (source or output) must be reviewed before publication, or None."""
    return hold_reason_of(lambda keyword: element_values(ds, keyword))


def element_values(ds: Dataset, keyword: str) -> list[str] | None:
    """The values of an element of `ds` as text ([] when empty, None when absent)."""
    if keyword not in ds:
        return None
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | MultiValue):
        return [str(v) for v in value]
    return [str(value)]


def hold_reason_of(values: Callable[[str], list[str] | None]) -> str | None:
    """:func:`hold_reason` over any source of values: `values(keyword)` gives an element's
    values as text ([] when empty, None when absent). Ingest's fast path reads them from
    the bytes, without building a pydicom dataset."""

    def one(keyword: str) -> str:
        return "\\".join(values(keyword) or [])

    if any(v.strip().upper() == "YES" for v in values("BurnedInAnnotation") or []):
        return "burned-in annotation (BurnedInAnnotation=YES)"
    sop_class = one("SOPClassUID").strip()
    if sop_class == SECONDARY_CAPTURE or sop_class.startswith(SECONDARY_CAPTURE + "."):
        return "secondary capture (may be a screenshot)"
    if sop_class in ULTRASOUND_CLASSES:
        return "ultrasound (text is usually burned into the frames)"
    if sop_class.startswith(PHOTO_PREFIXES):
        return "photograph, video or encapsulated document"
    modality = one("Modality").strip().upper()
    if modality in TEXT_MODALITIES:
        return f"{TEXT_MODALITIES[modality]} (modality {modality})"
    if values("ConversionType") is not None:
        return "converted image (ConversionType set: scanned film or screenshot)"
    # Every value of ImageType (a single value too, which a set of its characters missed).
    image_type = {v.strip().upper() for v in values("ImageType") or []}
    if image_type & {"SCREEN SAVE", "SCREENSHOT", "LABEL", "OVERVIEW"}:
        return f"image type {'/'.join(sorted(image_type))} (screenshot or label)"
    if any(v.strip().upper() == "YES" for v in values("RecognizableVisualFeatures") or []):
        return "recognizable visual features (RecognizableVisualFeatures=YES)"
    return None
