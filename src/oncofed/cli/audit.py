"""`oncofed audit ...`: verify and export the hash-chained audit logs of a hub or a node
(on its host, from its directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from oncofed.cli.common import console, err, fail, node_settings, open_hub

audit_app = typer.Typer(
    help="Verify and export the tamper-evident audit logs.", no_args_is_help=True
)


def _audit_log(hub_dir: Path | None, node_dir: Path | None) -> Any:
    from oncofed.audit import AuditLog

    if (hub_dir is None) == (node_dir is None):
        raise fail("name one log: --hub-dir DIR or --node-dir DIR")
    if hub_dir is not None:
        _, engine = open_hub(hub_dir)
        return AuditLog(engine)
    from oncofed.node.state import state_engine

    settings = node_settings(node_dir)  # type: ignore[arg-type]
    return AuditLog(state_engine(settings.resolve(settings.state_file)))


@audit_app.command("verify")
def audit_verify(
    hub_dir: Annotated[Path | None, typer.Option(help="verify this hub's log")] = None,
    node_dir: Annotated[Path | None, typer.Option(help="verify this node's log")] = None,
) -> None:
    """Check the hash chain: report every edited, inserted or deleted entry."""
    log = _audit_log(hub_dir, node_dir)
    problems = log.verify()
    count = sum(1 for _ in log.entries())
    if problems:
        for p in problems:
            err.print(f"[red]entry {p.seq}[/]: {p.problem}")
        raise fail(f"audit log is NOT intact: {len(problems)} problem(s) in {count} entries", 2)
    console.print(f"[green]audit log intact[/]: {count} entries, chain verified")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Argument(help="JSON Lines file to write")],
    hub_dir: Annotated[Path | None, typer.Option()] = None,
    node_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Write the audit log as JSON Lines for an auditor."""
    count = _audit_log(hub_dir, node_dir).export(out)
    console.print(f"{count} entries written to {out}")
