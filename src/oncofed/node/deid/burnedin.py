"""Hold-back rules: images that may carry identifying text in their pixels.

The transformer cleans attributes, not pixels. An image whose pixels may show a name or a
date (a burned-in annotation, a secondary capture, an ultrasound frame, a screenshot, a
photograph, a slide label) is therefore held for a person to review instead of being
published (STANDARDS §6). :func:`hold_reason` says why, or None to publish.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

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
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "burned-in annotation (BurnedInAnnotation=YES)"
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class == SECONDARY_CAPTURE or sop_class.startswith(SECONDARY_CAPTURE + "."):
        return "secondary capture (may be a screenshot)"
    if sop_class in ULTRASOUND_CLASSES:
        return "ultrasound (text is usually burned into the frames)"
    if sop_class.startswith(PHOTO_PREFIXES):
        return "photograph, video or encapsulated document"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in TEXT_MODALITIES:
        return f"{TEXT_MODALITIES[modality]} (modality {modality})"
    if "ConversionType" in ds:
        return "converted image (ConversionType set: scanned film or screenshot)"
    image_type = {str(v).upper() for v in (ds.get("ImageType") or [])}
    if image_type & {"SCREEN SAVE", "SCREENSHOT", "LABEL", "OVERVIEW"}:
        return f"image type {'/'.join(sorted(image_type))} (screenshot or label)"
    if "RecognizableVisualFeatures" in ds and str(ds.RecognizableVisualFeatures) == "YES":
        return "recognizable visual features (RecognizableVisualFeatures=YES)"
    return None
