"""`oncofed demo`: a hub and nodes on loopback with synthetic data, the federation at work."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from oncofed.client.render import beacon_table, released, search_table
from oncofed.hub.admin import add_user, open_hub
from oncofed.learning import demo as learning_demo
from oncofed.local import LocalFederation
from oncofed.synth import generate_federation

# Steps that load data into each node, as far as the landed capabilities allow: the node
# directory, the provider's synthetic folder -> the `oncofed` command to run.
LOADERS: list[tuple[str, Callable[[Path, Path], list[str] | None]]] = [
    # Clinical records first: they create the patients in one dataset per provider, which
    # the images and variants of the same (pseudonymised) patients then join.
    (
        "clinical records",
        lambda node, data: [
            "node",
            "ingest",
            "clinical",
            str(data / "clinical"),
            "--dir",
            str(node),
            "--dataset",
            f"{data.name}-oncology",
        ],
    ),
    (
        "images",
        lambda node, data: [
            "node",
            "ingest",
            "images",
            str(data / "dicom"),
            "--dir",
            str(node),
            "--no-progress",
        ],
    ),
    (
        "variants",
        lambda node, data: [
            "node",
            "ingest",
            "vcf",
            str(data / "variants"),
            "--dir",
            str(node),
            "--dataset",
            f"{data.name}-oncology",
            "--no-progress",
        ],
    ),
]


# The sample search: patients with a CT series (EUCAIM's modality key and RadLex code).
SAMPLE_SEARCH: dict[str, Any] = {
    "operand": "AND",
    "children": [{"key": "RID10311", "type": "EQUALS", "value": "RID10321"}],
}


def load_data(fed: LocalFederation, data: dict[str, Path], console: Console) -> None:
    """Run every loader for every node, two nodes at a time (one per core)."""
    for label, build in LOADERS:
        with console.status(f"loading {label} into {len(data)} nodes ..."):
            jobs = []
            for name, folder in data.items():
                args = build(fed.nodes[name].directory, folder)
                if args is None:
                    continue
                log = fed.base / "logs" / f"load-{label}-{name}.log"
                jobs.append((name, log, [sys.executable, "-m", "oncofed", *args]))
            for batch in range(0, len(jobs), 2):
                running = []
                for name, log, cmd in jobs[batch : batch + 2]:
                    with log.open("wb") as out:
                        running.append(
                            (name, log, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))
                        )
                for name, log, proc in running:
                    if proc.wait() != 0:
                        raise RuntimeError(f"loading {label} into {name} failed; see {log}")
        console.print(
            f"[green]{label}[/] loaded into {len(jobs)} nodes (reports in {fed.base / 'logs'})"
        )


def demo_users(fed: LocalFederation, nodes: list[str]) -> dict[str, tuple[str, str]]:
    """A researcher, a DAC member of every node and a data holder, to try the portal with."""
    _, engine = open_hub(fed.hub.directory)
    people = {
        "researcher": (["researcher"], "researcher"),
        "dac": ([f"dac:{n}" for n in nodes], "DAC member"),
        "holder": ([f"data_holder:{n}" for n in nodes], "data holder"),
    }
    try:
        return {
            name: (add_user(engine, name, roles), what) for name, (roles, what) in people.items()
        }
    finally:
        engine.dispose()


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
        synthetic = fed.base / "synthetic"
        console.print(f"generating {nodes} synthetic providers x {patients} patients ...")
        manifest = generate_federation(
            synthetic,
            providers=nodes,
            patients=patients,
            seed=42,
            images=True,
            instances=2,
            progress=True,
        )
        with console.status("starting the hub ..."):
            fed.init_hub("oncofed demo federation")
            fed.start_hub()
        console.print(f"[green]hub[/] running at {fed.hub.url}")
        data: dict[str, Path] = {}
        for provider in manifest.providers:
            with console.status(f"creating and enrolling node {provider.id} ..."):
                fed.add_node(provider.id, start=False)
            data[provider.id] = synthetic / provider.path
        load_data(fed, data, console)
        no_learning = learning_demo.available(patients)
        if no_learning is None:
            for name in data:
                learning_demo.allow_learning(fed.nodes[name].directory)
        for name in data:
            with console.status(f"starting node {name} ..."):
                fed.start_node(name)
            console.print(
                f"[green]node {name}[/] running and connected to the hub "
                f"(local API {fed.nodes[name].url})"
            )
        client = fed.admin()
        with console.status("publishing the nodes' datasets in the catalogue ..."):
            client.refresh_catalogue()
            listed = client.catalogue()
        console.print(
            f"[green]catalogue[/]: {listed.get('total', 0)} datasets published "
            f"({fed.hub.url}/api/catalogue/datasets, DCAT at {fed.hub.url}/fdp)"
        )
        with console.status("asking every node for node.info over the task channel ..."):
            started = time.perf_counter()
            view = client.run("node.info", wait_time=30)
            elapsed = time.perf_counter() - started
        _print_info(console, view, elapsed)
        with console.status("counting patients with CT imaging across the nodes ..."):
            result = client.search(SAMPLE_SEARCH, timeout_seconds=30)
        console.print(search_table(result, title="federated search, CT imaging"))
        console.print(
            "  each node's counts are noised, rounded to 5 and withheld below 10 "
            "(its policy.toml); the total is a range where any was withheld"
        )
        with console.status("asking the Beacon network for variants in KRAS ..."):
            beacon = client.beacon("g_variants", geneId="KRAS", requestedGranularity="count")
        console.print(beacon_table(beacon, "Beacon v2 network, variants in KRAS"))
        people = demo_users(fed, list(data))
        if no_learning is None:
            learning_demo.grant_and_train(
                fed.hub.url, people, fed.admin_password, list(data), console
            )
        else:
            console.print(f"[yellow]federated training skipped[/]: {no_learning}")
        console.print()
        console.print(f"portal:        [bold]{fed.hub.url}/[/]   (API docs: {fed.hub.url}/docs)")
        console.print(
            f"admin login:   admin / [bold]{fed.admin_password}[/] (generated for this demo)"
        )
        for username, (password, what) in people.items():
            console.print(f"{what + ':':<15}{username} / [bold]{password}[/]")
        console.print(f"CLI:           oncofed login --hub {fed.hub.url} --username admin")
        console.print("               oncofed search --where RID10311=RID10321   (CT imaging)")
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
    table = Table(title=f"node.info from {len(view['targets'])} nodes in {elapsed * 1000:.0f} ms")
    for column in ("node", "status", "version", "datasets", "allowed tasks"):
        table.add_column(column, overflow="fold")
    for t in view["targets"]:
        result = t["result"] or {}
        datasets = (
            ", ".join(
                f"{d['name']} ({released(d['patients'], d.get('patients_below'))})"
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
