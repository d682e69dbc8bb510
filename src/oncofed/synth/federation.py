"""Generate a whole synthetic federation on disk: one folder per provider with its DICOM,
clinical CSV, FHIR and VCF files, plus the `federation.json` manifest.

Patients are generated and written one at a time (VCF batches of at most 1000), so memory
does not grow with `patients`; 100k patients per provider is a matter of disk and time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from oncofed.synth.generate import iter_patients, make_provider
from oncofed.synth.manifest import (
    FORMATS,
    FederationManifest,
    ProviderCounts,
    ProviderManifest,
    SynthError,
)
from oncofed.synth.model import Provider
from oncofed.synth.writers.clinical import ClinicalWriter, write_mapping
from oncofed.synth.writers.dicom import write_patient_images
from oncofed.synth.writers.fhir import write_bundle
from oncofed.synth.writers.vcf import BATCH, VcfBatchWriter


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _prepare(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir} exists and is not a directory; choose another path.")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise SynthError(
                f"{out_dir} is not empty; choose an empty or new directory, or pass --force "
                "to replace a federation generated there before."
            )
        # Only remove what a previous run wrote: the manifest and the provider folders.
        for entry in out_dir.iterdir():
            if entry.name == "federation.json":
                entry.unlink()
            elif entry.is_dir() and (entry / "provider.json").exists():
                shutil.rmtree(entry)
    out_dir.mkdir(parents=True, exist_ok=True)


def generate_federation(
    out_dir: Path,
    providers: int = 3,
    patients: int = 200,
    seed: int = 42,
    *,
    images: bool = True,
    instances: int = 3,
    formats: Iterable[str] = FORMATS,
    force: bool = False,
    progress: bool = True,
    vcf_batch: int = BATCH,
    workers: int = 1,
) -> FederationManifest:
    """Write a federation of `providers` providers with `patients` patients each under
    `out_dir` and return its manifest (also written as `out_dir/federation.json`).

    Same arguments, same bytes: every id, date and pixel derives from `seed`.
    `images=False` skips DICOM (the slowest part); `formats` picks a subset of
    dicom/clinical/fhir/vcf. `workers` > 1 writes that many providers at once, each in its
    own process (the same bytes: a provider depends only on its seed). Raises SynthError
    on bad arguments or a non-empty `out_dir` (unless `force`).
    """
    chosen = tuple(f for f in FORMATS if f in set(formats))
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise SynthError(f"unknown format(s) {sorted(unknown)}; choose from {list(FORMATS)}.")
    if not images:
        chosen = tuple(f for f in chosen if f != "dicom")
    if providers < 1 or patients < 1:
        raise SynthError("--providers and --patients must be at least 1.")
    if instances < 1:
        raise SynthError("--instances must be at least 1.")
    out_dir = Path(out_dir)
    _prepare(out_dir, force)

    arguments = {
        "providers": providers,
        "patients": patients,
        "seed": seed,
        "images": images,
        "instances": instances,
        "formats": list(chosen),
        "vcf_batch": vcf_batch,
    }
    manifests: list[ProviderManifest] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        if workers > 1 and providers > 1:
            manifests = _write_parallel(
                out_dir, providers, patients, seed, instances, chosen, vcf_batch, workers, bar
            )
        for index in range(providers if not manifests else 0):
            provider = make_provider(index)
            task = bar.add_task(provider.id, total=patients)
            counts = _write_provider(
                out_dir / provider.id,
                provider,
                patients,
                seed,
                instances,
                chosen,
                vcf_batch,
                partial(bar.advance, task),
            )
            manifests.append(ProviderManifest.of(provider, counts))
    manifest = FederationManifest(seed=seed, arguments=arguments, providers=manifests)
    _write_json(out_dir / "federation.json", manifest.to_dict())
    return manifest


def _write_parallel(
    out_dir: Path,
    providers: int,
    patients: int,
    seed: int,
    instances: int,
    formats: tuple[str, ...],
    vcf_batch: int,
    workers: int,
    bar: Progress,
) -> list[ProviderManifest]:
    """Providers written by a pool of processes; the bar advances as each one finishes."""
    chosen = [make_provider(index) for index in range(providers)]
    tasks = {p.id: bar.add_task(p.id, total=patients) for p in chosen}
    with ProcessPoolExecutor(max_workers=min(workers, providers)) as pool:
        futures = {
            pool.submit(
                _write_provider,
                out_dir / p.id,
                p,
                patients,
                seed,
                instances,
                formats,
                vcf_batch,
                _nothing,
            ): p
            for p in chosen
        }
        for future in as_completed(futures):
            bar.advance(tasks[futures[future].id], patients)
        return [ProviderManifest.of(p, f.result()) for f, p in futures.items()]


def _nothing() -> None:
    """The progress callback of a provider written in another process."""


def _write_provider(
    root: Path,
    provider: Provider,
    patients: int,
    seed: int,
    instances: int,
    formats: tuple[str, ...],
    vcf_batch: int,
    advance: Callable[[], None],
) -> ProviderCounts:
    root.mkdir(parents=True, exist_ok=True)
    counts = ProviderCounts()
    source = f"oncofed.synth seed={seed} provider={provider.id}"
    with ExitStack() as stack:
        clinical = stack.enter_context(ClinicalWriter(root)) if "clinical" in formats else None
        vcf = (
            stack.enter_context(VcfBatchWriter(root, source, vcf_batch))
            if "vcf" in formats
            else None
        )
        for record in iter_patients(provider.index, patients, seed, instances=instances):
            counts.add(record)
            if "dicom" in formats:
                counts.dicom_files += write_patient_images(root, provider, record, seed)
            if clinical:
                clinical.write(record)
            if "fhir" in formats:
                write_bundle(root, provider, record, seed)
                counts.fhir_files += 1
            if vcf:
                vcf.add(record)
            advance()
    if clinical:
        write_mapping(root)
        counts.csv_rows = dict(clinical.rows)
    if vcf:
        counts.vcf_files = [str(p.relative_to(root)) for p in vcf.files]
        counts.vcf_records = vcf.records
    counts.files = (
        counts.dicom_files + counts.fhir_files + len(counts.vcf_files) + (6 if clinical else 0) + 1
    )  # 5 CSV + mapping.yaml; provider.json
    _write_json(
        root / "provider.json",
        {
            "id": provider.id,
            "name": provider.name,
            "country": provider.country,
            "city": provider.city,
            "address": provider.address,
            "counts": counts.to_dict(),
        },
    )
    return counts
