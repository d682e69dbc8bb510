"""`oncofed demo`: a hub and nodes on loopback with synthetic data, the federation at work."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from oncofed.local import LocalFederation

PROVIDERS = [
    "de-berlin",
    "fr-lyon",
    "es-valencia",
    "it-milano",
    "nl-amsterdam",
    "pt-porto",
    "se-uppsala",
    "pl-warszawa",
    "gr-athina",
    "at-wien",
]


def run_demo(
    directory: Path, nodes: int, patients: int, once: bool, fresh: bool, console: Console
) -> int:
    if fresh and directory.exists():
        if not (directory / "hub").exists() and any(directory.iterdir()):
            console.print(
                f"[red]{directory} exists and is not a demo directory; choose another --dir[/]"
            )
            return 2
        shutil.rmtree(directory)
    fed = LocalFederation(directory.resolve())
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with console.status("starting the hub ..."):
            fed.init_hub("oncofed demo federation")
            fed.start_hub()
        console.print(f"[green]hub[/] running at {fed.hub.url}")
        for name in PROVIDERS[:nodes]:
            with console.status(f"starting node {name} ..."):
                fed.add_node(name)
            console.print(
                f"[green]node {name}[/] enrolled and connected (local API {fed.nodes[name].url})"
            )
        with console.status("asking every node for node.info over the task channel ..."):
            client = fed.admin()
            started = time.perf_counter()
            view = client.run("node.info", wait_time=30)
            elapsed = time.perf_counter() - started
        _print_info(console, view, elapsed)
        console.print()
        console.print(f"portal / API:  {fed.hub.url}/docs")
        console.print(
            f"admin login:   admin / [bold]{fed.admin_password}[/] (generated for this demo)"
        )
        console.print(f"CLI:           oncofed login --hub {fed.hub.url} --username admin")
        console.print(f"logs:          {directory / 'logs'}")
        if once:
            return 0 if view["complete"] else 1
        console.print("[bold]running; press Ctrl-C to stop[/]")
        while not stop.is_set():
            stop.wait(1)
            if not fed.hub.running:
                console.print("[red]the hub stopped; see its log[/]")
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        with console.status("stopping ..."):
            fed.stop()


def _print_info(console: Console, view: dict[str, Any], elapsed: float) -> None:
    table = Table(
        "node",
        "status",
        "version",
        "datasets",
        "allowed tasks",
        title=f"node.info from {len(view['targets'])} nodes in {elapsed * 1000:.0f} ms",
    )
    for t in view["targets"]:
        result = t["result"] or {}
        datasets = (
            ", ".join(
                f"{d['name']} ({_count(d['patients'], d.get('patients_below'))})"
                for d in result.get("datasets", [])
            )
            or "-"
        )
        table.add_row(
            t["node_name"],
            t["status"],
            result.get("version", ""),
            datasets,
            ", ".join(result.get("policy", {}).get("allowed_tasks", [])),
        )
    console.print(table)


def _count(value: int | None, below: int | None) -> str:
    return str(value) if value is not None else f"<{below}"
