"""Headers as public imaging archives write them: the corpus for the leak gate's false alarms.

Public cancer collections are de-identified already and name each patient after the
collection: PatientName is the PatientID (``Lung_Dx-A0011``, ``QIN-BREAST-01-0001``,
``LIDC-IDRI-0001``), and the kept descriptors are full of the collection's words ("lung+c",
"PThead_lung", "BREAST", "Prostate T2 AX"). The naming schemes, descriptors, modalities and
vendors below are those of such collections; nothing in these headers identifies anyone, so
every file the leak gate blocks is a false alarm. Used by the unit tests and
``bench/deid.py``; small pixel data (the gate never reads it).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

# (collection, PatientID for patient n, body part, study descriptions, series descriptions)
COLLECTIONS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Lung-PET-CT-Dx",
        "Lung_Dx-A{n:04d}",
        "LUNG",
        ("lung", "Chest", "PET-CT LUNG"),
        ("lung+c", "PThead_lung", "LUNG", "5mm lung", "WB 3D MAC", "PET WB"),
    ),
    (
        "QIN-BREAST",
        "QIN-BREAST-01-{n:04d}",
        "BREAST",
        ("MRI BREAST BILATERAL", "BREAST", "PET/CT breast"),
        ("Breast Dyn", "ax dwi", "BREAST", "t1_fl3d_tra_dynaVIEWS", "QIN BREAST PET"),
    ),
    (
        "LIDC-IDRI",
        "LIDC-IDRI-{n:04d}",
        "CHEST",
        ("Chest", "CT CHEST W/O CONTRAST", "LIDC-IDRI"),
        ("CHEST 1.25mm", "Recon 2: CT CHEST", "LIDC-IDRI", "lung"),
    ),
    (
        "Prostate-MRI-US-Biopsy",
        "Prostate-MRI-US-Biopsy-{n:04d}",
        "PROSTATE",
        ("MRI PROSTATE W WO CONTRAST", "Prostate"),
        ("t2_spc_rst_axial obl_Prostate", "Prostate T2 AX", "ADC", "dwi prostate"),
    ),
    (
        "HNSCC",
        "HNSCC-01-{n:04d}",
        "HEADNECK",
        ("CT SOFT TISSUE NECK W CONTRAST", "PET HEAD NECK"),
        ("HEAD NECK 2.5", "PThead_neck", "Soft Tissue Neck", "HNSCC"),
    ),
    (
        "Pancreas-CT",
        "PANCREAS_{n:04d}",
        "PANCREAS",
        ("Pancreas", "CT ABDOMEN PELVIS W CONTRAST"),
        ("Pancreas venous", "PANCREAS", "Abd/Pelvis 3mm"),
    ),
    (
        "NSCLC-Radiomics",
        "LUNG1-{n:03d}",
        "LUNG",
        ("NSCLC-Radiomics", "CT THORAX"),
        ("lung", "NSCLC Radiomics", "Thorax 3.0 B31f"),
    ),
)
MODALITIES = (
    ("CT", CTImageStorage),
    ("MR", MRImageStorage),
    ("PT", PositronEmissionTomographyImageStorage),
)
VENDORS = (
    ("SIEMENS", "Biograph 40"),
    ("GE MEDICAL SYSTEMS", "Discovery STE"),
    ("Philips", "Ingenuity TF PET/CT"),
    ("TOSHIBA", "Aquilion"),
)


def archive_headers(patients: int, files_per_patient: int = 3, seed: int = 11) -> Iterator[Dataset]:
    """`patients` patients spread over the collections, each with `files_per_patient` files
    (one series each), every header as the archive publishes it."""
    rng = random.Random(seed)
    pixels = np.zeros((8, 8), dtype=np.uint16).tobytes()
    for p in range(patients):
        _collection, pattern, body_part, studies, series = COLLECTIONS[p % len(COLLECTIONS)]
        patient_id = pattern.format(n=p + 1)
        study_uid = generate_uid()
        study_description = rng.choice(studies)
        for f in range(files_per_patient):
            modality, sop_class = rng.choice(MODALITIES)
            manufacturer, model = rng.choice(VENDORS)
            ds = Dataset()
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.SOPClassUID = sop_class
            ds.SOPInstanceUID = generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
            ds.FrameOfReferenceUID = generate_uid()
            ds.PatientName = patient_id
            ds.PatientID = patient_id
            ds.PatientSex = rng.choice(("F", "M", "O", ""))
            ds.PatientAge = f"{rng.randint(35, 85):03d}Y"
            ds.PatientIdentityRemoved = "YES"
            ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = modality, manufacturer, model
            ds.BodyPartExamined = body_part
            ds.StudyDescription = study_description
            ds.SeriesDescription = rng.choice(series)
            ds.StudyDate = ds.SeriesDate = f"20{rng.randint(0, 19):02d}0{rng.randint(1, 9)}01"
            ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "", f + 1, 1
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.PixelData = pixels
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            yield ds
