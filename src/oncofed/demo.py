"""`oncofed demo`: a hub and nodes on loopback with synthetic data, the federation at work."""

from __future__ import annotations

import json
import os
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
from rich.markup import escape
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


# The demo's example searches, printed as ready-to-paste commands and run once at start-up.
# They are chosen so that every provider releases a count at the demo's size (150 patients
# each: about 20-40 lung cancer patients with CT per provider, against a minimum of 10); a
# rarer combination such as lung cancer + CT + KRAS matches 2-7 patients per provider at this
# size, which the nodes rightly withhold ("may match, fewer than 10").
EXAMPLES: list[tuple[str, list[str]]] = [
    ("CT imaging", ["modality=CT"]),
    ("lung cancer with CT imaging", ["diagnosis=lung cancer", "modality=CT"]),
    ("women with breast cancer", ["diagnosis=breast cancer", "sex=female"]),
]
DEMO_PATIENTS = 150
# Where the demo keeps what a rerun needs to reuse it: the generated passwords (the hub
# stores only their hashes). Written last, so its presence means the demo was complete.
STATE_FILE = "demo.json"


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


def allow_analyses(node_dir: Path) -> None:
    """The demo's nodes opt in to Tier 3 (a real node's policy.toml allows none by default)."""
    from oncofed.analysis import ANALYSES
    from oncofed.analysis.wire import STEP_KIND
    from oncofed.node.policy import load_policy, write_policy
    from oncofed.settings import load_node_settings

    settings = load_node_settings(node_dir)
    path = settings.resolve(settings.policy_file)
    policy = load_policy(path)
    policy.allowed_tasks = sorted({*policy.allowed_tasks, STEP_KIND})
    policy.allowed_algorithms = sorted(ANALYSES)
    write_policy(path, policy)


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


def _reuse(directory: Path, console: Console) -> tuple[LocalFederation, dict[str, Any]] | None:
    """The federation a previous `oncofed demo --dir` left complete, with its passwords."""
    state_file = directory / STATE_FILE
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    fed = LocalFederation.reopen(directory.resolve())
    fed.admin_password = state["admin_password"]
    return fed, state


def _save_state(directory: Path, state: dict[str, Any]) -> None:
    path = directory / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.chmod(0o600)  # the demo's passwords: readable by their owner only
    tmp.replace(path)


def _build(
    fed: LocalFederation, nodes: int, patients: int, console: Console
) -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, str]]]:
    """Generate the providers' data, start the hub, enrol and load the nodes. Returns the
    demo's accounts, and the catalogue titles and countries its data holders would give
    (a node publishes only its dataset ids)."""
    synthetic = fed.base / "synthetic"
    console.print(f"generating {nodes} synthetic providers x {patients} patients ...")
    manifest = generate_federation(
        synthetic,
        providers=nodes,
        patients=patients,
        seed=42,
        images=True,
        instances=1,  # one image per CT/MR/PET series: the searches count series, not slices
        formats=("dicom", "clinical", "vcf"),  # what the demo loads (FHIR: `oncofed synth`)
        force=True,  # a half-made earlier run is replaced
        progress=True,
        workers=os.cpu_count() or 1,
    )
    with console.status("starting the hub ..."):
        fed.init_hub("oncofed demo federation")
        fed.start_hub()
    console.print(f"[green]hub[/] running at {fed.hub.url}")
    data: dict[str, Path] = {}
    for provider in manifest.providers:
        with console.status(f"creating and enrolling node {provider.id} ..."):
            fed.add_node(provider.id, start=False)
            allow_analyses(fed.nodes[provider.id].directory)
            if learning_demo.available(patients) is None:
                learning_demo.allow_learning(fed.nodes[provider.id].directory)
        data[provider.id] = synthetic / provider.path
    load_data(fed, data, console)
    return demo_users(fed, list(data)), {
        f"{p.id}:{p.id}-oncology": {"title": f"{p.name}: oncology cohort", "country": p.country}
        for p in manifest.providers
    }


def _oncofed() -> str:
    """The `oncofed` command to print: the one beside this Python (the demo's venv), so that
    the printed commands work as pasted, without activating the venv first."""
    beside = Path(sys.executable).parent / "oncofed"
    return str(beside) if beside.exists() else "oncofed"


def run_demo(
    directory: Path,
    nodes: int,
    patients: int,
    once: bool,
    fresh: bool,
    console: Console,
) -> int:
    """Start (or, unless `fresh`, restart) the demo federation in `directory`."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / "hub").exists() and not (directory / "synthetic").exists():
            console.print(
                f"[red]{directory} exists and is not a demo directory; choose another --dir[/]"
            )
            return 2
        if fresh or not (directory / STATE_FILE).exists():
            # Fresh, or an earlier start that did not finish: begin again from nothing.
            shutil.rmtree(directory)
    began = time.perf_counter()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fed: LocalFederation | None = None
    descriptions: dict[str, dict[str, str]] = {}
    try:
        reused = None if fresh else _reuse(directory, console)
        if reused is not None:
            fed, state = reused
            console.print(
                f"reusing the demo in {directory} (its data, accounts, saved queries and "
                "requests); `--fresh` starts from nothing"
            )
            with console.status("starting the hub ..."):
                fed.start_hub()
            people = {k: (v[0], v[1]) for k, v in state["users"].items()}
        else:
            fed = LocalFederation(directory.resolve())
            people, descriptions = _build(fed, nodes, patients, console)
        for name in fed.nodes:
            with console.status(f"starting node {name} ..."):
                fed.start_node(name)
            console.print(
                f"[green]node {name}[/] running and connected to the hub "
                f"(local API {fed.nodes[name].url})"
            )
        client = fed.admin()
        with console.status("publishing the nodes' datasets in the catalogue ..."):
            client.refresh_catalogue()
            if reused is None:
                for key, fields in descriptions.items():
                    client.edit_dataset(key, **fields)
            listed = client.catalogue()
        titles = escape("; ".join(str(d.get("title")) for d in listed.get("results", [])))
        console.print(
            f"[green]catalogue[/]: {listed.get('total', 0)} datasets published "
            f"({fed.hub.url}/api/catalogue/datasets, DCAT at {fed.hub.url}/fdp): {titles}",
            markup=True,
            highlight=False,
        )
        if reused is None:
            _save_state(
                directory,
                {
                    "admin_password": fed.admin_password,
                    "users": {k: list(v) for k, v in people.items()},
                },
            )
        with console.status("asking every node for node.info over the task channel ..."):
            started = time.perf_counter()
            view = client.run("node.info", wait_time=30)
            elapsed = time.perf_counter() - started
        _print_info(console, view, elapsed)
        for title, where in EXAMPLES:
            with console.status(f"counting patients: {title} ..."):
                result = client.search(where=where, timeout_seconds=30)
            console.print(search_table(result, title=f"federated search, {title}"))
        console.print(
            "  each node's counts are noised, rounded to 5 and withheld below 10 "
            "(its policy.toml); the total is a range where any was withheld"
        )
        with console.status("asking the Beacon network for variants in KRAS ..."):
            beacon = client.beacon("g_variants", geneId="KRAS", requestedGranularity="count")
        console.print(beacon_table(beacon, "Beacon v2 network, variants in KRAS"))
        if reused is None:  # a restarted demo keeps its runs: `oncofed learn runs`
            no_learning = learning_demo.available(patients)
            if no_learning is None:
                learning_demo.grant_and_train(
                    fed.hub.url, people, fed.admin_password, list(fed.nodes), console
                )
            else:
                console.print(f"[yellow]federated training skipped[/]: {no_learning}")
        _print_welcome(console, fed, people, directory)
        console.print(f"ready in {time.perf_counter() - began:.0f} s")
        if once:
            return 0 if view["complete"] else 1
        console.print("[bold]running; press Ctrl-C to stop (a rerun reuses this demo)[/]")
        while not stop.is_set():
            stop.wait(1)
            if not fed.hub.running:
                console.print("[red]the hub stopped; see its log[/]")
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]the demo could not start: {exc}[/]", markup=True)
        console.print(
            f"logs are in {directory / 'logs'}; `--fresh` starts a new demo (new ports, "
            "new passwords)"
        )
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if fed is not None:
            with console.status("stopping ..."):
                fed.stop()


def _print_welcome(
    console: Console, fed: LocalFederation, people: dict[str, tuple[str, str]], directory: Path
) -> None:
    """Where to go and how to log in, as commands that can be pasted as printed."""
    exe = _oncofed()
    console.print()
    console.print(f"portal:        [bold]{fed.hub.url}/[/]   (API docs: {fed.hub.url}/docs)")
    console.print(f"admin login:   admin / [bold]{fed.admin_password}[/] (generated for this demo)")
    for username, (password, what) in people.items():
        console.print(f"{what + ':':<15}{username} / [bold]{password}[/]")
    console.print("CLI (in another terminal; each command works as printed):", soft_wrap=True)
    researcher = people.get("researcher", ("", ""))[0]
    lines = [f"{exe} login --hub {fed.hub.url} --username researcher   # password above"]
    if researcher:
        lines[0] = f"{exe} login --hub {fed.hub.url} --username researcher --password {researcher}"
    for title, where in EXAMPLES:
        args = " ".join(f'--where "{w}"' for w in where)
        lines.append(f"{exe} search {args}   # {title}")
    lines.append(f"{exe} search --vocabulary   # every key and value to search on")
    lines.append(f"{exe} beacon g_variants --gene KRAS")
    for line in lines:
        console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
    console.print(f"logs:          {directory / 'logs'}")


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
