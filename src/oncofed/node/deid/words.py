"""Words that identify no one: the leak gate does not look for them alone in the output.

A person's name is matched in the output as a whole value, and each of its parts alone only
where the part is itself identifying. Public archives name patients after the collection
(``Lung_Dx-A0011``, ``QIN-BREAST-01-0001``): the part ``Lung`` or ``BREAST`` is a word of the
domain, and the series descriptions that the profile keeps ("lung+c", "PThead_lung") are
full of such words. Matching them quarantined a third of one public collection.

The word list is DICOM's own vocabulary, as pydicom ships it: every word of the keywords of
the data dictionary (``BodyPartExamined``, ``ContrastBolusAgent`` ...) and of the concepts of
the context groups that name what an imaging header describes: anatomic regions and their
modifiers, modalities, anatomy imaged (CID 4 alone has ``Lung``, ``Head``,
``AbdomenAndPelvis``), and a few descriptor words of scanners that DICOM does not spell out.
Not the other context groups: anatomic structures and findings carry eponyms (``Meyer``'s
loop), and a surname must stay identifying. The cost is that a surname which is also such a
word is found only as part of the whole name, never alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Descriptor words of scanners and archives that are not DICOM keywords or concepts.
EXTRA_WORDS = frozenset(
    {
        "SCOUT",
        "RECON",
        "TOPOGRAM",
        "SURVIEW",
        "SCANOGRAM",
        "PILOT",
        "TRACKER",
        "BOLUS",
        "THIN",
        "THICK",
        "ARTERIAL",
        "VENOUS",
        "DELAYED",
        "NATIVE",
        "PLAIN",
        "AXIAL",
        "CORONAL",
        "SAGITTAL",
        "SERIES",
        "STUDY",
        "IMAGE",
        "IMAGES",
        "SCAN",
        "EXAM",
        "RESEARCH",
        "TRIAL",
        "COLLECTION",
        "CONTROL",
        "CASE",
        "SUBJECT",
        "BASELINE",
        "FOLLOWUP",
        "PRETREATMENT",
        "TUMOR",
        "TUMOUR",
        "LESION",
        "NODULE",
        "CANCER",
        "METASTASIS",
        "POSTTREATMENT",
    }
)
# CID 2 Anatomic Modifier, 4 Anatomic Region, 29 Acquisition Modality, 33 Modality,
# 4030 CT, MR and PET Anatomy Imaged, 4031 Common Anatomic Region, 7151 Segmentation
# Property Types, 7157 Device Segmentation Types.
CONTEXT_GROUPS = (2, 4, 29, 33, 4030, 4031, 7151, 7157)
_WORD = re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])")


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """DICOM's vocabulary in upper case (built once per process, about half a second)."""
    from pydicom.datadict import DicomDictionary
    from pydicom.sr._cid_dict import cid_concepts

    words: set[str] = set(EXTRA_WORDS)
    for cid in CONTEXT_GROUPS:
        for keywords in cid_concepts[cid].values():
            for keyword in keywords:
                words.update(w.upper() for w in _WORD.findall(keyword))
    for entry in DicomDictionary.values():
        words.update(w.upper() for w in _WORD.findall(entry[4]))
    return frozenset(words)
