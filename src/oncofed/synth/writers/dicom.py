"""DICOM files as a hospital PACS export holds them: real SOP classes, full file meta, and
the patient's identifiers planted everywhere a real file carries them.

The PHI is deliberate: names, MRN, birth date, address and phone at the top level, inside
sequences (depth 1 and 2), in free-text comments and in a private block, so the node's
de-identification (STANDARDS §6) has something to remove and its tests something to catch.
Secondary captures with burned-in annotation and ultrasound images are written too: those
are the objects de-identification must hold back.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from oncofed.synth.ids import dicom_uid, digits
from oncofed.synth.lesion import Scanner, scanner_of
from oncofed.synth.model import ImagingSeries, ImagingStudy, Lesion, PatientRecord, Provider

PRIVATE_CREATOR = "ACME HOSPITAL 1.0"
PRIVATE_GROUP = 0x0011
IMPLEMENTATION_CLASS_UID = dicom_uid("oncofed-synth", "implementation-class")
IMPLEMENTATION_VERSION = "ONCOFED_SYNTH_1"
SOFTWARE_VERSIONS = {
    "SIEMENS": "syngo CT VA40A",
    "GE MEDICAL SYSTEMS": "gmp_vct.42",
    "Philips": "5.7.1",
    "TOSHIBA": "V10.8",
}
HAS_HIGHDICOM = importlib.util.find_spec("highdicom") is not None


def study_dir(root: Path, record: PatientRecord, study: ImagingStudy) -> Path:
    """`dicom/<MRN>/study-<n>`: the folder of one study."""
    return root / "dicom" / record.patient.mrn / f"study-{study.number}"


def write_patient_images(root: Path, provider: Provider, record: PatientRecord, seed: int) -> int:
    """Write every study of the patient; return the number of files written.

    Segmentations need highdicom; without it they are skipped (and not counted).
    """
    count = 0
    for study in record.studies:
        written: dict[int, list[Dataset]] = {}
        for series in study.series:
            folder = study_dir(root, record, study) / f"series-{series.number}"
            if series.kind == "segmentation":
                source = written.get(series.referenced_series_number or 0)
                if not HAS_HIGHDICOM or not source:
                    continue
                seg = _segmentation(record, study, series, source)
                folder.mkdir(parents=True, exist_ok=True)
                seg.save_as(folder / "1.dcm", enforce_file_format=True)
                count += 1
                continue
            folder.mkdir(parents=True, exist_ok=True)
            datasets = []
            for number in range(1, series.num_instances + 1):
                ds = build_instance(provider, record, study, series, number, seed)
                ds.save_as(folder / f"{number}.dcm", enforce_file_format=True)
                datasets.append(ds)
                count += 1
            written[series.number] = datasets
    return count


def _da(date: dt.date) -> str:
    return date.strftime("%Y%m%d")


def _person_name(record: PatientRecord) -> str:
    p = record.patient
    return f"{p.family_name}^{p.given_name}"


def build_instance(
    provider: Provider,
    record: PatientRecord,
    study: ImagingStudy,
    series: ImagingSeries,
    number: int,
    seed: int,
) -> Dataset:
    """One image object, with its file meta, ready for `save_as`."""
    p, d = record.patient, record.diagnosis
    sop_uid = dicom_uid(seed, provider.id, p.mrn, study.number, series.number, number)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(series.sop_class_uid)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION

    ds.SpecificCharacterSet = "ISO_IR 192"
    image_type = (
        ["DERIVED", "SECONDARY"]
        if series.kind == "secondary_capture"
        else ["ORIGINAL", "PRIMARY", "AXIAL" if series.modality in ("CT", "PT") else "OTHER"]
    )
    ds.ImageType = image_type
    ds.SOPClassUID = series.sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = _da(study.date)
    ds.InstanceCreationTime = study.time
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _da(study.date)
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study.time
    ds.AccessionNumber = study.accession_number
    ds.Modality = series.modality
    ds.Manufacturer = series.manufacturer
    ds.InstitutionName = provider.name
    ds.InstitutionAddress = provider.address
    ds.ReferringPhysicianName = study.referring_physician
    ds.StationName = f"{series.modality}{series.number:02d}-{provider.mrn_prefix}"
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = study.performing_physician
    ds.NameOfPhysiciansReadingStudy = study.referring_physician
    ds.OperatorsName = study.operator
    ds.ManufacturerModelName = series.model_name

    # Patient module: the PHI a real export carries.
    ds.PatientName = _person_name(record)
    ds.PatientID = p.mrn
    ds.IssuerOfPatientID = provider.name
    ds.PatientBirthDate = _da(p.birth_date)
    ds.PatientSex = "M" if p.sex == "male" else "F"
    ds.OtherPatientIDs = p.other_id
    other = Dataset()
    other.PatientID = p.other_id
    other.IssuerOfPatientID = f"National health register {provider.country}"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    age_years = (study.date - p.birth_date).days // 365
    ds.PatientAge = f"{max(age_years, 0):03d}Y"
    ds.PatientAddress = f"{p.address}, {p.postcode} {p.city}"
    ds.PatientTelephoneNumbers = p.phone
    ds.AdditionalPatientHistory = f"Known {d.label.lower()}, stage {d.stage_group}"

    ds.BodyPartExamined = series.body_part
    ds.DeviceSerialNumber = f"SN{digits(6, provider.id, series.model_name)}"
    ds.SoftwareVersions = SOFTWARE_VERSIONS.get(series.manufacturer, "1.0")
    ds.ProtocolName = study.description
    ds.PatientPosition = "FFS" if series.modality in ("CT", "PT") else "HFS"

    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = series.uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = series.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = number
    ds.FrameOfReferenceUID = series.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageComments = f"Pt {p.family_name}, {p.given_name} (MRN {p.mrn}) - compare with prior exam"

    # Depth 1 and 2 sequences, as RIS/PACS integrations leave them.
    request = Dataset()
    request.RequestedProcedureID = study.accession_number
    request.ScheduledProcedureStepID = f"SPS{study.study_id}"
    request.RequestedProcedureDescription = f"{study.description} for {_person_name(record)}"
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = provider.name
    request.IssuerOfAccessionNumberSequence = Sequence([issuer])
    ds.RequestAttributesSequence = Sequence([request])

    referenced = Dataset()
    referenced.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"  # Detached Patient Mgmt
    referenced.ReferencedSOPInstanceUID = dicom_uid(seed, provider.id, p.mrn, "patient")
    nested = Dataset()
    nested.PatientName = _person_name(record)
    nested.PatientID = p.mrn
    nested.PatientBirthDate = _da(p.birth_date)
    nested.IssuerOfPatientID = provider.name
    referenced.OtherPatientIDsSequence = Sequence([nested])
    ds.ReferencedPatientSequence = Sequence([referenced])

    referring = Dataset()
    referring.InstitutionName = provider.name
    referring.InstitutionAddress = provider.address
    referring.PersonTelephoneNumbers = f"{provider.phone_prefix} 4500"
    ds.ReferringPhysicianIdentificationSequence = Sequence([referring])

    # A vendor's private block carrying name and MRN, as RIS bridges do.
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "PN", _person_name(record))
    block.add_new(0x02, "LO", p.mrn)
    block.add_new(0x03, "DA", _da(p.birth_date))

    _modality_specific(ds, series, number)
    _pixels(ds, series, seed, number, study.uid, record.lesion, scanner_of(provider))
    return ds


def _modality_specific(ds: Dataset, series: ImagingSeries, number: int) -> None:
    z = -float(number) * (series.slice_thickness or 1.0)
    if series.modality in ("CT", "MR", "PT"):
        ds.SliceThickness = series.slice_thickness
        ds.ImagePositionPatient = [-160.0, -160.0, z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceLocation = z
        ds.PixelSpacing = [10.0, 10.0] if series.rows == 32 else [20.0, 20.0]
    if series.modality == "CT":
        ds.KVP = 120
        ds.XRayTubeCurrent = 200
        ds.ConvolutionKernel = "B30f"
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.ContrastBolusAgent = "Iomeprol 350"
    elif series.modality == "MR":
        ds.ScanningSequence = "EP" if "DWI" in series.description else "SE"
        ds.SequenceVariant = "SK"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 4000.0
        ds.EchoTime = 90.0
        ds.EchoTrainLength = 16
        ds.MagneticFieldStrength = 3.0
        ds.ImagingFrequency = 123.2
        ds.ImagedNucleus = "1H"
    elif series.modality == "PT":
        ds.SeriesType = ["STATIC", "IMAGE"]
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.DecayCorrection = "START"
        ds.CorrectedImage = ["ATTN", "DECY", "SCAT"]
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.FrameReferenceTime = 0.0
        ds.ImageIndex = number
        radio = Dataset()
        psma = "PSMA" in series.description
        radio.Radiopharmaceutical = "Ga-68 PSMA-11" if psma else "Fluorodeoxyglucose F^18^"
        radio.RadionuclideTotalDose = 250000000.0
        radio.RadionuclideHalfLife = 4062.6 if psma else 6586.2
        ds.RadiopharmaceuticalInformationSequence = Sequence([radio])
    elif series.modality == "MG":
        view, laterality = series.description.split()[1], series.description.split()[0]
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageLaterality = laterality
        ds.ViewPosition = view
        ds.KVP = 28
        ds.ImagerPixelSpacing = [0.1, 0.1]
        ds.PixelSpacing = [0.1, 0.1]
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = -1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "US"
        ds.BurnedInAnnotation = "NO"
    elif series.modality == "OT":
        ds.ConversionType = "WSD"
    if series.kind in ("secondary_capture", "ultrasound"):
        ds.BurnedInAnnotation = "YES"
    elif series.modality != "MG":
        ds.BurnedInAnnotation = "NO"


_PHANTOMS: dict[int, np.ndarray[Any, np.dtype[np.float64]]] = {}


def _grid(size: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    y, x = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    return x, y


def _phantom(size: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A body-shaped ellipse in [0, 0.5]; cached per matrix size."""
    if size not in _PHANTOMS:
        x, y = _grid(size)
        _PHANTOMS[size] = ((x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1).astype(float) * 0.5
    return _PHANTOMS[size]


def lesion_mask(size: int, lesion: Lesion) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Where the patient's lesion lies in a `size` x `size` image (all False when absent)."""
    x, y = _grid(size)
    if not lesion.present:
        return np.zeros((size, size), dtype=bool)
    inside: np.ndarray[Any, np.dtype[np.bool_]] = (
        ((x - lesion.x) / lesion.radius_x) ** 2 + ((y - lesion.y) / lesion.radius_y) ** 2
    ) <= 1
    return inside


def _pixels(
    ds: Dataset,
    series: ImagingSeries,
    seed: int,
    number: int,
    study_uid: str,
    lesion: Lesion,
    scanner: Scanner,
) -> None:
    """Body phantom, the patient's lesion (if any) and the provider's scanner noise and gain."""
    rng = np.random.default_rng(
        int(dicom_uid(seed, study_uid, series.number, number, "pixels")[5:]) % 2**63
    )
    base = _phantom(series.rows) + lesion_mask(series.rows, lesion) * lesion.contrast
    eight_bit = series.modality in ("US", "OT")
    top = 255 if eight_bit else 4095
    noise = rng.normal(0.0, scanner.noise_sd, base.shape)
    values = np.clip((base * scanner.gain + noise) * top, 0, top)
    if series.burned_in_annotation:
        values[1:4, 1 : series.columns - 1] = top  # a "text" bar burned into the pixels
    ds.Rows = series.rows
    ds.Columns = series.columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    if eight_bit:
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelData = values.astype(np.uint8).tobytes()
    else:
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelData = values.astype("<u2").tobytes()


def _segmentation(
    record: PatientRecord, study: ImagingStudy, series: ImagingSeries, source: list[Dataset]
) -> Dataset:
    """A binary DICOM-SEG of the patient's lesion (empty when there is none), referencing its
    source CT series."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mask = np.stack([lesion_mask(s.Rows, record.lesion) for s in source]).astype(np.uint8)
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Tumour",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=series.uid,
        series_number=series.number,
        sop_instance_uid=dicom_uid(series.uid, "seg", 1),
        instance_number=1,
        manufacturer="oncofed synthetic annotation",
        manufacturer_model_name="synth-seg",
        software_versions="1.0",
        device_serial_number="SEG0001",
        content_description="Tumour",
        content_creator_name=study.referring_physician,
        omit_empty_frames=False,
    )
    # highdicom stamps wall-clock time and random UIDs; pin them to the seed.
    for keyword in ("InstanceCreationDate", "ContentDate"):
        setattr(seg, keyword, _da(study.date))
    for keyword in ("InstanceCreationTime", "ContentTime"):
        setattr(seg, keyword, study.time)
    seg.SeriesDescription = series.description
    seg.BodyPartExamined = source[0].BodyPartExamined
    seg.PatientAge = source[0].PatientAge
    dim_uid = dicom_uid(series.uid, "dimension-organization")
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = dim_uid
    for item in seg.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = dim_uid
    for item in seg.get("ContributingEquipmentSequence", []):
        item.ContributionDateTime = _da(study.date) + study.time
    seg.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    seg.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return seg
