"""Command bodies for `oncofed node ingest images` and `oncofed node pull` (Typer-friendly).

The CLI mounts these; each loads the node's settings, opens its store, builds the
de-identification context from the node's secret and prints a Rich report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.console import Console

from oncofed.node.cas import ContentStore
from oncofed.node.deid import DeidContext
from oncofed.node.ingest.images import IngestReport, Rejection, ingest_images, ingest_sources
from oncofed.node.store import NodeStore
from oncofed.security.pseudonym import load_secret
from oncofed.settings import NodeSettings, load_node_settings


def node_context(settings: NodeSettings) -> DeidContext:
    provider = settings.provider_id or settings.name
    secret = load_secret(settings.resolve(settings.secret_file))
    mode: Literal["month", "shift"] = getattr(settings, "deid_date_mode", "month")
    root = getattr(settings, "deid_uid_root", "2.25.")
    return DeidContext(secret, provider, uid_root=root, date_mode=mode)


def failed(report: IngestReport) -> bool:
    """The command's exit status, the same whether it ran here or in the node service: 1
    when a file was quarantined (a person must act on it); held for review is not a
    failure (it is reported with its reason)."""
    return report.quarantined_total > 0


def print_report(report: IngestReport, console: Console) -> None:
    """The report as the ingest command prints it, here or from the node service's answer:
    the outcome table, each quarantined or held file with its reason, the conflicts."""
    console.print(report.table())
    shown: list[Rejection] = report.rejections[:20]
    for r in shown:
        console.print(f"[yellow]{r.reason}[/] {r.source}: {r.detail}")
    if len(report.rejections) > len(shown):
        console.print(
            f"... and {len(report.rejections) - len(shown)} more: see the quarantine table "
            "(`SELECT * FROM quarantine` in the node store)"
        )
    for warning in report.warnings[:10]:
        console.print(f"[dim]warning[/] {warning}")
    if len(report.warnings) > 10:
        console.print(f"... and {len(report.warnings) - 10} more warnings")
    for conflict in report.conflicts[:20]:
        console.print(f"[yellow]conflict[/] {conflict}")
    if len(report.conflicts) > 20:
        console.print(f"... and {len(report.conflicts) - 20} more patients with conflicts")
    rate = report.seen / report.seconds if report.seconds else 0.0
    console.print(
        f"{report.seen} files, {report.bytes_in / 1e6:.1f} MB in "
        f"{report.seconds:.1f} s ({rate:.0f} files/s)"
    )


def images_command(paths: list[Path], node_dir: Path, progress: bool = True) -> IngestReport:
    """Ingest DICOM folders, files and zip archives into the node at `node_dir`."""
    settings = load_node_settings(node_dir)
    console = Console()
    store = NodeStore(settings.resolve(settings.store_file))
    try:
        report = ingest_images(
            paths,
            store,
            node_context(settings),
            ContentStore(settings.resolve(settings.images_dir)),
            settings.resolve(settings.quarantine_dir),
            progress=progress,
            console=console,
        )
    finally:
        store.close()
    print_report(report, console)
    return report


@dataclass(frozen=True)
class PullRequest:
    """What `oncofed node pull` asks a PACS for (one of dicomweb / dimse)."""

    dicomweb: str | None = None
    dimse: str | None = None
    aet: str = "ONCOFED"
    called_aet: str = "ORTHANC"
    receive_port: int = 0
    patient_id: str | None = None
    study_date: str | None = None
    modality: str | None = None
    study_uid: str | None = None


def pull_into(
    store: NodeStore,
    settings: NodeSettings,
    pull: PullRequest,
    progress: bool = True,
    console: Console | None = None,
) -> IngestReport:
    """Pull studies from a PACS (DICOMweb URL, or DIMSE HOST:PORT) into `store`."""
    from oncofed.node import pacs

    if bool(pull.dicomweb) == bool(pull.dimse):
        raise ValueError("give exactly one of --dicomweb URL or --dimse HOST:PORT")
    query = pacs.StudyQuery(
        patient_id=pull.patient_id,
        study_date=pull.study_date,
        modality=pull.modality,
        study_uid=pull.study_uid,
    )
    if pull.dicomweb:
        client: pacs.PacsClient = pacs.DicomWebClient(pull.dicomweb)
    else:
        assert pull.dimse is not None
        host, _, port = pull.dimse.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--dimse {pull.dimse!r}: expected HOST:PORT, e.g. pacs.local:104")
        client = pacs.DimseClient(
            host,
            int(port),
            aet=pull.aet,
            called_aet=pull.called_aet,
            receive_port=pull.receive_port,
        )
    try:
        studies = client.find_studies(query)
        total = sum(s.instances or 0 for s in studies) or None
        return ingest_sources(
            client.retrieve(studies),
            store,
            node_context(settings),
            ContentStore(settings.resolve(settings.images_dir)),
            settings.resolve(settings.quarantine_dir),
            total=total,
            progress=progress,
            console=console,
            description=f"pulling {len(studies)} studies",
        )
    finally:
        client.close()


def pull_command(node_dir: Path, pull: PullRequest, progress: bool = True) -> IngestReport:
    """`oncofed node pull`: pull from a PACS into the node at `node_dir`, print the report."""
    settings = load_node_settings(node_dir)
    console = Console()
    store = NodeStore(settings.resolve(settings.store_file))
    try:
        report = pull_into(store, settings, pull, progress, console)
    finally:
        store.close()
    print_report(report, console)
    return report
