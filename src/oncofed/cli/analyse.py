"""`oncofed analyse`: federated statistics at the providers (Tier 3), pooled at the hub.

Each command runs one shipped analysis over the named datasets (NODE:DATASET, repeat), on
the cohort a search would count (`--where` as in `oncofed search`, or `--ast`), and prints
the pooled result as statsmodels / lifelines print theirs; `--csv` and `--json` write it,
`--plot` draws a Kaplan-Meier curve as SVG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from oncofed.cli.common import console, fail, hub_client

analyse_app = typer.Typer(
    help="Federated statistics at the providers: km, glm, cox, crosstab, summary.",
    no_args_is_help=True,
)

Datasets = Annotated[
    list[str],
    typer.Option("--dataset", "-d", help="NODE:DATASET to analyse (repeat); needs a visa"),
]
Where = Annotated[
    list[str] | None,
    typer.Option(help="cohort criterion KEY=VALUE as in `oncofed search` (repeat; AND-ed)"),
]
Ast = Annotated[str | None, typer.Option(help="the cohort as a EUCAIM AST (JSON or @FILE)")]
Partial = Annotated[
    bool, typer.Option("--allow-partial", help="go on without a node that drops out")
]
AsJson = Annotated[bool, typer.Option("--json", help="print the whole run as JSON")]
Csv = Annotated[Path | None, typer.Option("--csv", help="write the result table as CSV")]
Hub = Annotated[str | None, typer.Option(help="hub URL")]
Timeout = Annotated[float, typer.Option(help="seconds each round waits for the nodes")]


def _cohort(ast: str | None) -> dict[str, Any] | None:
    if not ast:
        return None
    text = Path(ast[1:]).read_text(encoding="utf-8") if ast.startswith("@") else ast
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise fail(f"--ast: not JSON ({exc})") from exc
    return dict(data.get("ast", data))


def _run(
    algorithm: str,
    spec: dict[str, Any],
    datasets: list[str],
    where: list[str] | None,
    ast: str | None,
    allow_partial: bool,
    as_json: bool,
    csv: Path | None,
    hub: str | None,
    timeout: float,
    plot: Path | None = None,
) -> None:
    from oncofed.client.analyse import AnalysisFailed
    from oncofed.client.hub import HubError
    from oncofed.client.where import WhereError

    client = hub_client(hub)
    try:
        result = client.analyse.run(
            algorithm,
            spec,
            datasets,
            _cohort(ast),
            allow_partial=allow_partial,
            round_timeout_seconds=timeout,
            where=where or None,
        )
    except AnalysisFailed as exc:
        if as_json:
            console.print_json(json.dumps(exc.run))
        raise fail(f"the {algorithm} analysis failed: {exc}") from exc
    except HubError as exc:
        raise fail(exc.message) from exc
    except WhereError as exc:
        raise fail(f"--where {exc}") from exc
    finally:
        client.close()
    if as_json:
        console.print_json(json.dumps(result.run))
    else:
        console.print(result.summary(), markup=False, highlight=False, soft_wrap=True)
        rounds = result.run["rounds"]
        console.print(
            f"\n{len(rounds)} round(s) over {', '.join(result.run['sites'])} in "
            f"{result.run['seconds']:.2f} s; run {result.run['id']}",
            markup=False,
        )
    if csv is not None:
        csv.write_text(result.to_csv(), encoding="utf-8")
    if plot is not None:
        result.plot(plot)
        console.print(f"plot written to {plot}", markup=False)


@analyse_app.command()
def km(
    dataset: Datasets,
    group_by: Annotated[str | None, typer.Option(help="a categorical variable")] = None,
    bin_days: Annotated[int, typer.Option(help="time bin width in days")] = 30,
    horizon_days: Annotated[int, typer.Option(help="follow-up shown, in days")] = 3650,
    plot: Annotated[Path | None, typer.Option(help="write the curves as SVG")] = None,
    where: Where = None,
    ast: Ast = None,
    allow_partial: Partial = False,
    as_json: AsJson = False,
    csv: Csv = None,
    timeout: Timeout = 30,
    hub: Hub = None,
) -> None:
    """Kaplan-Meier survival per group, pooled over the providers."""
    spec = {"group_by": group_by, "bin_days": bin_days, "horizon_days": horizon_days}
    _run("km", spec, dataset, where, ast, allow_partial, as_json, csv, hub, timeout, plot)


@analyse_app.command()
def glm(
    dataset: Datasets,
    formula: Annotated[str, typer.Option(help='e.g. "vital_status ~ age + stage + sex"')],
    family: Annotated[str, typer.Option(help="binomial, poisson or gaussian")] = "binomial",
    tol: Annotated[float, typer.Option(help="converged when max |step| is below")] = 1e-10,
    max_iter: Annotated[int, typer.Option(help="most Newton rounds")] = 25,
    where: Where = None,
    ast: Ast = None,
    allow_partial: Partial = False,
    as_json: AsJson = False,
    csv: Csv = None,
    timeout: Timeout = 30,
    hub: Hub = None,
) -> None:
    """Generalised linear model by Newton rounds over the providers."""
    spec = {"formula": formula, "family": family, "tol": tol, "max_iter": max_iter}
    _run("glm", spec, dataset, where, ast, allow_partial, as_json, csv, hub, timeout)


@analyse_app.command()
def cox(
    dataset: Datasets,
    formula: Annotated[str, typer.Option(help='e.g. "survival ~ age + stage"')],
    tol: Annotated[float, typer.Option(help="converged when max |step| is below")] = 1e-10,
    max_iter: Annotated[int, typer.Option(help="most Newton rounds")] = 30,
    where: Where = None,
    ast: Ast = None,
    allow_partial: Partial = False,
    as_json: AsJson = False,
    csv: Csv = None,
    timeout: Timeout = 30,
    hub: Hub = None,
) -> None:
    """Cox proportional hazards, stratified by provider (Efron ties)."""
    spec = {"formula": formula, "tol": tol, "max_iter": max_iter}
    _run("cox", spec, dataset, where, ast, allow_partial, as_json, csv, hub, timeout)


@analyse_app.command()
def crosstab(
    row: Annotated[str, typer.Argument(help="a categorical variable")],
    column: Annotated[str, typer.Argument(help="a categorical variable")],
    dataset: Datasets,
    where: Where = None,
    ast: Ast = None,
    allow_partial: Partial = False,
    as_json: AsJson = False,
    csv: Csv = None,
    timeout: Timeout = 30,
    hub: Hub = None,
) -> None:
    """A contingency table (noisy cells, small cells withheld at each node)."""
    spec = {"row": row, "column": column}
    _run("crosstab", spec, dataset, where, ast, allow_partial, as_json, csv, hub, timeout)


@analyse_app.command()
def summary(
    variable: Annotated[str, typer.Argument(help="a numeric variable, e.g. age")],
    dataset: Datasets,
    where: Where = None,
    ast: Ast = None,
    allow_partial: Partial = False,
    as_json: AsJson = False,
    csv: Csv = None,
    timeout: Timeout = 30,
    hub: Hub = None,
) -> None:
    """Count, mean, sd and quantiles (from the pooled, noisy histogram)."""
    spec = {"variable": variable}
    _run("summary", spec, dataset, where, ast, allow_partial, as_json, csv, hub, timeout)


@analyse_app.command()
def variables(hub: Hub = None) -> None:
    """The analysable variables and which analyses may use each."""
    from rich.table import Table

    client = hub_client(hub)
    try:
        data = client.analyse.variables()
    finally:
        client.close()
    table = Table("variable", "kind", "label", "analyses", "levels / bounds")
    for v in data["variables"]:
        extra = ", ".join(v.get("levels", [])) or " .. ".join(f"{b:g}" for b in v.get("bounds", []))
        table.add_row(v["name"], v["kind"], v["label"], ", ".join(v["analyses"]), extra)
    console.print(table)
