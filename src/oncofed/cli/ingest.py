"""`oncofed node ingest ...`: load local data into the node's store.

Each importer runs in this process, or, when the running node service holds the store,
is handed to that service through its local admin API and followed until its report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from oncofed.cli.common import DEFAULT_NODE_DIR, NodeDir, console, err, fail, node_settings

ingest_app = typer.Typer(help="Load local data into the node's store.", no_args_is_help=True)


def _after_ingest(directory: Path) -> None:
    """Ask the hub to refresh this node's catalogue entry (best effort)."""
    from oncofed.node.publish import request_refresh
    from oncofed.security.keys import SigningKey

    settings = node_settings(directory)
    if settings.enrolled and not request_refresh(
        settings, SigningKey.load(settings.resolve(settings.key_file))
    ):
        err.print(
            "[yellow]note:[/] the hub could not be told to refresh the catalogue now; "
            "its schedule will catch up"
        )


def _ingest_inputs(directory: Path, paths: list[Path]) -> None:
    """Refuse before any work: a node directory that is not one, or inputs that are not there."""
    node_settings(directory)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise fail(f"no such file or folder: {', '.join(missing)}")


@ingest_app.command("images")
def ingest_images(
    paths: Annotated[list[Path], typer.Argument(help="DICOM folders, files or zip archives")],
    directory: NodeDir = DEFAULT_NODE_DIR,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """De-identify DICOM files, store them and index them (idempotent, resumable)."""
    from oncofed.node.ingest.commands import failed, images_command
    from oncofed.node.store import StoreBusyError

    _ingest_inputs(directory, paths)
    try:
        report = images_command(paths, directory, progress=progress)
    except StoreBusyError as exc:
        report = through_service(directory, {"kind": "images", "paths": paths}, exc)
    else:
        _after_ingest(directory)
    if failed(report):  # the same status whether the node service ran it or not
        raise typer.Exit(1)


def through_service(directory: Path, job: dict[str, Any], busy: Exception) -> Any:
    """The store is held by the running node: hand the ingest to it and wait for its report.

    Uses the node's local admin API (loopback, `keys/admin.token`); without a running
    service that answers, the original "store is busy" error stands.
    """
    from dataclasses import asdict

    import httpx

    from oncofed.node.ingest.commands import print_report
    from oncofed.node.ingest.images import IngestReport
    from oncofed.node.ingest.jobs import IngestJob, admin_token, report_from_json

    settings = node_settings(directory)
    token = admin_token(settings)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{host}:{settings.port}/api/admin/ingest"
    body = IngestJob.model_validate(
        {
            **{k: v for k, v in job.items() if v is not None and k != "pull"},
            **({"pull": asdict(job["pull"])} if "pull" in job else {}),
            "paths": [p if p == "-" else str(Path(p).resolve()) for p in job["paths"]],
            **{
                k: str(Path(job[k]).resolve())
                for k in ("mapping", "sample_map")
                if job.get(k) is not None
            },
        }
    ).model_dump(mode="json")
    if token is None:
        raise fail(str(busy))
    headers = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(timeout=30, headers=headers) as client:
            r = client.post(base, json=body)
            if r.status_code != 202:
                raise fail(f"the running node refused the ingest: {r.status_code} {r.text[:300]}")
            state = r.json()
            err.print(f"the node service holds the store: it runs this ingest (job {state['id']})")
            with console.status("the running node is ingesting ...") as status:
                while state["state"] in ("queued", "running"):
                    time.sleep(0.5)
                    state = client.get(f"{base}/{state['id']}").json()
                    status.update(f"the running node is ingesting ... {state['seconds']:.0f} s")
    except httpx.HTTPError as exc:
        raise fail(f"{busy} (and the node service at {base} did not answer: {exc})") from exc
    if state["state"] != "done":
        raise fail(f"the ingest failed in the node service: {state.get('error')}")
    report = report_from_json(state["report"])
    if isinstance(report, IngestReport):
        print_report(report, console)  # as the command prints it without the service
    else:
        console.print(report.table())
    return report


def _import_report(directory: Path, run: Callable[[], Any], job: dict[str, Any]) -> None:
    """Run a clinical/genomic importer (through the running node when it holds the store);
    exit 1 when any file was rejected."""
    from oncofed.node.ingest.common import RecordError
    from oncofed.node.store import StoreBusyError

    try:
        report = run()
    except RecordError as exc:
        raise fail(str(exc)) from exc
    except StoreBusyError as exc:
        report = through_service(directory, job, exc)
    else:
        if report.ingested:
            _after_ingest(directory)
    if report.rejected:
        for outcome in report.rejected[:20]:
            err.print(f"[red]rejected[/] {outcome.detail}")
        raise typer.Exit(1)


Dataset = Annotated[
    str | None,
    typer.Option("--dataset", help="dataset (collection) id; default <provider>-clinical/-genomic"),
]
AccessLevel = Annotated[
    str | None,
    typer.Option(
        "--access-level", help="public | registered | controlled (Beacon granularity cap)"
    ),
]


@ingest_app.command("clinical")
def ingest_clinical(
    paths: Annotated[list[Path], typer.Argument(help="CSV files or the folder holding them")],
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="mapping YAML (default: mapping.yaml beside the CSVs)"),
    ] = None,
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    access_level: AccessLevel = None,
) -> None:
    """Import clinical CSV exports through a declarative mapping (one transaction per file)."""
    from oncofed.node.ingest.clinical_csv import clinical_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: clinical_command(paths, mapping, directory, dataset, access_level),
        {"kind": "clinical", "paths": paths, "mapping": mapping, "dataset": dataset,
         "access_level": access_level},
    )  # fmt: skip


@ingest_app.command("fhir")
def ingest_fhir(
    paths: Annotated[
        list[Path], typer.Argument(help="FHIR R4 (mCODE) JSON bundles, resources or folders")
    ],
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    access_level: AccessLevel = None,
) -> None:
    """Import FHIR R4 mCODE bundles (Patient, Condition, Observation, Procedure, Medication*)."""
    from oncofed.node.ingest.fhir import fhir_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: fhir_command(paths, directory, dataset, access_level),
        {"kind": "fhir", "paths": paths, "dataset": dataset, "access_level": access_level},
    )


@ingest_app.command("omop")
def ingest_omop(
    paths: Annotated[list[Path], typer.Argument(help="folders of OMOP CDM tables (CSV/TSV)")],
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    access_level: AccessLevel = None,
) -> None:
    """Import OMOP CDM exports (one all-or-nothing unit per folder)."""
    from oncofed.node.ingest.omop import omop_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: omop_command(paths, directory, dataset, access_level),
        {"kind": "omop", "paths": paths, "dataset": dataset, "access_level": access_level},
    )


@ingest_app.command("vcf")
def ingest_vcf(
    paths: Annotated[list[Path], typer.Argument(help="VCF / VCF.gz files or folders")],
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    sample_pattern: Annotated[
        str | None,
        typer.Option(
            "--sample-pattern", help="regex with a 'patient' group (default strips -T1/-N1)"
        ),
    ] = None,
    sample_map: Annotated[
        Path | None, typer.Option("--sample-map", help="two-column CSV: sample,patient")
    ] = None,
    assembly: Annotated[
        str | None, typer.Option("--assembly", help="GRCh38 | GRCh37 when the header does not say")
    ] = None,
    access_level: AccessLevel = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Import variant calls; samples become pseudonymised biosamples of their patients."""
    from oncofed.node.ingest.vcf import vcf_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: vcf_command(
            paths, directory, dataset, sample_pattern, sample_map, assembly, access_level, progress
        ),
        {"kind": "vcf", "paths": paths, "dataset": dataset, "sample_pattern": sample_pattern,
         "sample_map": sample_map, "assembly": assembly, "access_level": access_level},
    )  # fmt: skip
