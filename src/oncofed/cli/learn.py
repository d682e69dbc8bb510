"""`oncofed learn`: federated training and external validation of imaging models (Tier 3).

`learn train` starts a run at the hub and follows it with a progress bar and a per-round
table (loss and AUC on each site's own validation split); `learn validate` validates a
model (a run's, or a file) at each site; `learn runs`, `learn show`, `learn download`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oncofed.cli.common import console, fail, hub_client, hub_errors

learn_app = typer.Typer(help="Train and validate imaging AI models across the nodes (Tier 3).")

Datasets = Annotated[
    str, typer.Option(help="NODE:DATASET[,NODE:DATASET...] (e.g. de-berlin:de-berlin-oncology)")
]
Hub = Annotated[str | None, typer.Option(help="hub URL (default: the one you logged in to)")]


def _split(datasets: str) -> list[str]:
    items = [d.strip() for d in datasets.split(",") if d.strip()]
    for item in items:
        if ":" not in item:
            raise fail(f"--datasets {item!r}: write NODE:DATASET")
    return items


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if value < 0 else f"{value:.3f}"
    return str(value)


def rounds_table(view: dict[str, Any]) -> Table:
    table = Table(title=f"run {view['id']} ({view['status']})")
    for column in ("round", "site", "train loss", "val loss", "val AUC", "status"):
        table.add_column(column)
    for entry in view["rounds"]:
        for site, m in sorted(entry["nodes"].items()):
            train, evaluate = m.get("train") or {}, m.get("evaluate") or {}
            status = m.get("evaluate_status") or m.get("train_status") or ""
            error = m.get("train_error") or m.get("evaluate_error")
            table.add_row(
                str(entry["round"]),
                site,
                _fmt(train.get("train-loss")),
                _fmt(evaluate.get("eval-loss")),
                _fmt(evaluate.get("eval-auc")),
                f"{status}: {error}" if error else status,
            )
    return table


@learn_app.command("train")
def train(
    datasets: Datasets,
    model: Annotated[str, typer.Option(help="catalogue model")] = "small-cnn-2d",
    task: Annotated[str, typer.Option(help="what the model predicts, in words")] = "",
    label: Annotated[str, typer.Option(help="the label variable")] = "oncofed:lesion",
    modality: Annotated[str, typer.Option(help="images used: CT, MR, PT or MG")] = "CT",
    rounds: Annotated[int, typer.Option(min=1, max=200)] = 3,
    strategy: Annotated[str, typer.Option(help="fedavg or fedprox")] = "fedavg",
    local_epochs: Annotated[int, typer.Option(min=1)] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float | None, typer.Option(help="default: the recipe's")] = None,
    min_sites: Annotated[int | None, typer.Option(help="default: every site")] = None,
    round_timeout: Annotated[float, typer.Option(help="seconds a round waits")] = 600,
    seed: int = 0,
    wait: Annotated[bool, typer.Option(help="follow the run until it ends")] = True,
    hub: Hub = None,
) -> None:
    """Train a catalogue model across the sites; per-round metrics per site as it goes."""
    spec: dict[str, Any] = {
        "datasets": _split(datasets),
        "model": model,
        "task": task,
        "label": label,
        "modality": modality,
        "rounds": rounds,
        "strategy": strategy,
        "local_epochs": local_epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "min_sites": min_sites,
        "round_timeout": round_timeout,
        "seed": seed,
    }
    client = hub_client(hub)
    with hub_errors("starting the run"):
        view = client.learning_train(**spec)
    console.print(f"run [bold]{view['id']}[/] started on {', '.join(view['sites'])}")
    if not wait:
        return
    with (
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} rounds"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
        hub_errors("following the run"),
    ):
        bar = progress.add_task("training", total=rounds)
        printed: set[int] = set()

        def update(current: dict[str, Any]) -> None:
            for entry in current["rounds"]:
                nodes = entry["nodes"].values()
                done = all("evaluate_status" in n or n.get("train_error") for n in nodes)
                if done and entry["round"] not in printed:
                    printed.add(entry["round"])
                    aucs = [
                        f"{site} {_fmt((m.get('evaluate') or {}).get('eval-auc'))}"
                        for site, m in sorted(entry["nodes"].items())
                    ]
                    progress.console.print(f"round {entry['round']}: AUC " + ", ".join(aucs))
            progress.update(bar, completed=len(printed))

        view = client.learning_wait(view["id"], on_update=update)
    _print_run(view)
    if view["status"] != "succeeded":
        raise typer.Exit(1)


def _print_run(view: dict[str, Any]) -> None:
    if view["kind"] == "train":
        console.print(rounds_table(view))
    else:
        console.print(validation_table(view))
    if view.get("model_sha256"):
        console.print(f"model: sha256 {view['model_sha256']} (oncofed learn download {view['id']})")
    if view.get("error"):
        console.print(f"[red]{view['status']}[/]: {view['error']}")


def validation_table(view: dict[str, Any]) -> Table:
    table = Table(title=f"validation {view['id']} ({view['status']})")
    for column in ("site", "n", "AUC", "sensitivity", "specificity", "TP/FN/TN/FP", "note"):
        table.add_column(column)
    result = view.get("result") or {}
    for site, node in sorted((result.get("nodes") or {}).items()):
        report = node.get("report") or {}
        cells = report.get("confusion") or {}
        table.add_row(
            site,
            _fmt(report.get("n")),
            _fmt(report.get("auc")),
            _fmt(report.get("sensitivity")),
            _fmt(report.get("specificity")),
            "/".join(
                f"<{report.get('min_count')}" if cells.get(k) is None else str(cells[k])
                for k in ("tp", "fn", "tn", "fp")
            )
            if cells
            else "-",
            node.get("error") or "",
        )
    pooled = result.get("pooled")
    if pooled:
        cells = pooled["confusion"]
        table.add_row(
            "pooled",
            _fmt(pooled["n"]),
            _fmt(pooled["auc_weighted_mean"]) + " (mean)",
            _fmt(pooled["sensitivity"]),
            _fmt(pooled["specificity"]),
            "/".join("-" if cells[k] is None else str(cells[k]) for k in ("tp", "fn", "tn", "fp")),
            "",
        )
    return table


@learn_app.command("validate")
def validate(
    datasets: Datasets,
    model: Annotated[str, typer.Option(help="a training run id, or a model file (.pt)")],
    label: Annotated[str, typer.Option(help="the label variable")] = "oncofed:lesion",
    modality: Annotated[str, typer.Option(help="images used")] = "CT",
    threshold: Annotated[float, typer.Option(help="for sensitivity/specificity")] = 0.5,
    hub: Hub = None,
) -> None:
    """External validation of a model at each site: AUC, sensitivity/specificity,
    calibration, per site and pooled, under each site's disclosure control."""
    client = hub_client(hub)
    spec: dict[str, Any] = {
        "datasets": _split(datasets),
        "label": label,
        "modality": modality,
        "threshold": threshold,
    }
    path = Path(model)
    with hub_errors("starting the validation"):
        if path.is_file():
            spec["model_sha256"] = client.learning_upload_model(path)
        else:
            spec["run"] = model
        view = client.learning_validate(**spec)
        with console.status("validating at the sites ..."):
            view = client.learning_wait(view["id"])
    _print_run(view)
    if view["status"] != "succeeded":
        raise typer.Exit(1)


@learn_app.command("runs")
def runs(hub: Hub = None) -> None:
    """Your training and validation runs."""
    client = hub_client(hub)
    with hub_errors():
        items = client.learning_runs()
    table = Table(title="learning runs")
    table.add_column("id", no_wrap=True, min_width=32)  # whole: it is what `show` takes
    for column in ("kind", "status", "sites", "model", "created"):
        table.add_column(column, overflow="fold")
    for r in items:
        table.add_row(
            r["id"],
            r["kind"],
            r["status"],
            ", ".join(r["sites"]),
            str(r["spec"].get("model", r["spec"].get("model_sha256", ""))[:24]),
            r["created_at"],
        )
    console.print(table)


@learn_app.command("show")
def show(
    run_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="the run as JSON")] = False,
    hub: Hub = None,
) -> None:
    """A run: per-round metrics per site, or validation reports; model and provenance."""
    client = hub_client(hub)
    with hub_errors():
        view = client.learning_run(run_id)
    if as_json:
        typer.echo(json.dumps(view, indent=2))  # plain, for scripts (no wrapping, no colour)
        return
    _print_run(view)
    if view.get("provenance"):
        console.print_json(json.dumps(view["provenance"]))


@learn_app.command("download")
def download(
    run_id: str,
    out: Annotated[Path | None, typer.Option(help="file to write (default RUN.pt)")] = None,
    hub: Hub = None,
) -> None:
    """Save a finished run's model (a torch archive of tensors: load it with
    `torch.load(path, weights_only=True)`)."""
    client = hub_client(hub)
    dest = out or Path(f"{run_id}.pt")
    with hub_errors():
        client.learning_download(run_id, dest)
    console.print(f"model written to {dest}")
