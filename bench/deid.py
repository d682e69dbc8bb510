"""De-identification throughput: oncofed vs dicognito vs dicom-anonymizer vs a plain copy.

    python bench/deid.py [--files 2000] [--size 256] [--fsync]

Writes a synthetic CT corpus with planted PHI (small CT slices, pydicom; the same files for
every tool), then de-identifies it with each tool in the same run, one after the other, each
reading the source files and writing one output file per input into a flat folder.
What each row does per file (like for like: read, de-identify, write):

- ``copy``: read the bytes, write them (temporary file + rename, fsync when asked): the I/O
  floor.
- ``oncofed``: read the bytes; the byte-level fast path (parse, collect the source's
  identifiers, de-identify and encode in one walk; the pydicom path for files outside its
  scope); the PHI leak gate over the encoded header (on: a file it blocks fails the run);
  write the output like the copy. It does more than the peers (the leak gate) and nothing
  less; it runs on one core like them.
- ``dicognito``: ``dcmread``, ``Anonymizer.anonymize``, ``save_as``.
- ``dicom-anonymizer``: ``anonymize_dicom_file`` (read, anonymize, write).
- ``oncofed-ingest`` (information, not in the targets): what ingest adds per file on top of
  ``oncofed``: sha256 of the source (the ledger key), sha256 of the output and an atomic
  write into the content-addressed folder (two directory levels).

Targets (recorded in the JSON): oncofed >= 3x dicognito's files/s and copy <= 3x oncofed's.
Results go to bench/results/deid.json.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from oncofed.node.cas import ContentStore
from oncofed.node.deid import DeidContext, check_output, collect_identifiers, deidentify
from oncofed.node.deid.deidentify import encode
from oncofed.node.deid.fastpath import process

RESULTS = Path(__file__).parent / "results" / "deid.json"


def make_corpus(root: Path, files: int, size: int) -> list[Path]:
    rng = np.random.default_rng(7)
    paths = []
    per_series = 100
    for n in range(files):
        if n % per_series == 0:
            patient = n // (per_series * 2)
            study, series, frame = generate_uid(), generate_uid(), generate_uid()
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.Manufacturer, ds.BodyPartExamined = "CT", "SIEMENS", "CHEST"
        ds.ManufacturerModelName = "SOMATOM Force"
        ds.PatientName = f"Testperson{patient}^Anna^Maria"
        ds.PatientID = f"MRN{1000000 + patient}"
        ds.PatientBirthDate = "19580214"
        ds.PatientSex, ds.PatientAge = "F", "063Y"
        ds.PatientAddress = f"{patient} Rue de la Loi, Brussels"
        ds.PatientTelephoneNumbers = "+32 2 555 01 23"
        ds.AccessionNumber = f"ACC{500000 + n // per_series}"
        ds.InstitutionName = "Hopital Universitaire Saint-Pierre"
        ds.ReferringPhysicianName = "Martens^Els"
        ds.OperatorsName = "Peeters^Jan"
        ds.StationName = "CT01BXL"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20220517"
        ds.StudyTime = ds.SeriesTime = "093000"
        ds.StudyDescription, ds.SeriesDescription = "CT THORAX", "AXIAL 1.0 B30f"
        ds.ImageComments = "contrast given"
        ds.SliceThickness, ds.KVP, ds.InstanceNumber = "1.0", "120", n % per_series + 1
        ds.ImagePositionPatient = [0, 0, float(n % per_series)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        req = Dataset()
        req.RequestingPhysician = "Martens^Els"
        req.AccessionNumber = ds.AccessionNumber
        ds.RequestAttributesSequence = Sequence([req])
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = generate_uid()
        ds.ReferencedImageSequence = Sequence([ref])
        ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
        ds.add_new(0x00291010, "OB", b"\x00" * 2048)
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ds.PixelData = rng.integers(0, 4096, (size, size), dtype=np.uint16).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = root / f"{n // per_series:03d}" / f"{n % per_series:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _write(path: Path, data: bytes, fsync: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_copy(files: list[Path], out: Path, fsync: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        _write(out / f"{i}.dcm", f.read_bytes(), fsync)


_fast_files = 0


def _deidentify(data: bytes, ctx: DeidContext) -> bytes:
    """oncofed's per-file de-identification with the leak gate on; the output bytes."""
    global _fast_files
    fast = process(data, ctx)
    if fast is not None:
        _fast_files += 1
        ids, encoded = fast.identifiers, fast.encoded
    else:
        ds = dcmread(io.BytesIO(data), force=True)
        ids = collect_identifiers(ds)
        encoded = encode(deidentify(ds, ctx))
    if check_output(encoded.scan, ids) is not None:
        raise SystemExit("oncofed's leak gate blocked a file of the benchmark corpus")
    return encoded.data


def _ctx() -> DeidContext:
    return DeidContext(b"bench-secret-0123456789abcdef!!", "bench")


def run_oncofed(files: list[Path], out: Path, fsync: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ctx = _ctx()
    for i, f in enumerate(files):
        _write(out / f"{i}.dcm", _deidentify(f.read_bytes(), ctx), fsync)


def run_oncofed_ingest(files: list[Path], out: Path, fsync: bool) -> None:
    ctx = _ctx()
    cas = ContentStore(out, fsync=fsync)
    for f in files:
        data = f.read_bytes()
        hashlib.sha256(data).hexdigest()  # the ledger key
        encoded = _deidentify(data, ctx)
        cas.put(encoded, hashlib.sha256(encoded).hexdigest())


def run_dicognito(files: list[Path], out: Path, fsync: bool) -> None:
    from dicognito.anonymizer import Anonymizer

    out.mkdir(parents=True, exist_ok=True)
    anonymizer = Anonymizer()
    for i, f in enumerate(files):
        ds = dcmread(f)
        anonymizer.anonymize(ds)
        ds.save_as(out / f"{i}.dcm")


def run_dicom_anonymizer(files: list[Path], out: Path, fsync: bool) -> None:
    from dicomanonymizer import anonymize_dicom_file

    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        anonymize_dicom_file(str(f), str(out / f"{i}.dcm"))


def measure(
    name: str,
    fn: Callable[[list[Path], Path, bool], None],
    files: list[Path],
    work: Path,
    fsync: bool,
    total_bytes: int,
) -> dict[str, float | str]:
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    fn(files, out, fsync)
    seconds = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    result: dict[str, float | str] = {
        "tool": name,
        "seconds": round(seconds, 3),
        "files_per_s": round(len(files) / seconds, 1),
        "mb_per_s": round(total_bytes / 1e6 / seconds, 1),
    }
    print(f"{name:18s} {result['files_per_s']:>8} files/s {result['mb_per_s']:>8} MB/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256, help="rows and columns of each slice")
    parser.add_argument("--fsync", action="store_true", help="fsync every output file")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="oncofed-bench-deid-"))
    try:
        files = make_corpus(work / "corpus", args.files, args.size)
        total = sum(f.stat().st_size for f in files)
        print(f"{len(files)} CT files, {total / 1e6:.1f} MB, in {work}")
        for f in files:  # warm the page cache so every tool reads from memory
            f.read_bytes()
        results = [
            measure("copy", run_copy, files, work, args.fsync, total),
            measure("oncofed", run_oncofed, files, work, args.fsync, total),
            measure("dicognito", run_dicognito, files, work, args.fsync, total),
            measure("dicom-anonymizer", run_dicom_anonymizer, files, work, args.fsync, total),
            measure("oncofed-ingest", run_oncofed_ingest, files, work, args.fsync, total),
        ]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    by = {r["tool"]: float(r["files_per_s"]) for r in results}
    summary = {
        "files": len(files),
        "bytes": total,
        "slice": f"{args.size}x{args.size} uint16",
        "fsync": args.fsync,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}",
        "results": results,
        "oncofed_fast_path_share": round(_fast_files / (2 * len(files)), 3),
        "oncofed_vs_dicognito": round(by["oncofed"] / by["dicognito"], 2),
        "copy_vs_oncofed": round(by["copy"] / by["oncofed"], 2),
        "targets": {
            "oncofed_vs_dicognito_min": 3.0,
            "copy_vs_oncofed_max": 3.0,
            "oncofed_vs_dicognito_met": by["oncofed"] / by["dicognito"] >= 3.0,
            "copy_vs_oncofed_met": by["copy"] / by["oncofed"] <= 3.0,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        json.dumps({k: summary[k] for k in ("oncofed_vs_dicognito", "copy_vs_oncofed", "targets")})
    )


if __name__ == "__main__":
    main()
