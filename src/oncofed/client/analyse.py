"""The researcher's Tier-3 SDK: ``client.analyse.km(...)``, ``.glm(...)``, ``.cox(...)``,
``.crosstab(...)``, ``.summary(...)``, each returning an :class:`AnalysisResult` with the
pooled answer, ``.to_frame()`` (pandas) and, for Kaplan-Meier, ``.plot()`` (SVG)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from oncofed.client.hub import HubClient

ALL = {"operand": "AND", "children": []}


class AnalysisFailed(Exception):
    """The run ended without a result; the message names the node and the reason."""

    def __init__(self, run: dict[str, Any]) -> None:
        super().__init__(run.get("error") or "the analysis failed")
        self.run = run


class AnalysisResult:
    """A finished run: ``result`` is the pooled answer, ``run`` the whole run view (rounds,
    nodes excluded with ``allow_partial``)."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        self.result: dict[str, Any] = run["result"]
        self.kind: str = self.result["analysis"]

    @property
    def partial(self) -> bool:
        return bool(self.run.get("partial"))

    def rows(self) -> list[dict[str, Any]]:
        """The result as flat rows (what ``to_frame`` and the CSV download hold)."""
        from oncofed.analysis.tables import result_rows

        return result_rows(self.result)

    def to_frame(self) -> pd.DataFrame:
        try:
            import pandas as pd
        except ImportError as exc:  # pandas is the researcher's, not a dependency of oncofed
            raise ImportError("to_frame() needs pandas: pip install pandas") from exc
        frame = pd.DataFrame(self.rows())
        if self.kind in ("glm", "cox"):
            frame = frame.set_index("term")
        return frame

    def to_csv(self) -> str:
        from oncofed.analysis.tables import result_csv

        return result_csv(self.result)

    def plot(self, path: str | Path | None = None) -> str:
        """The Kaplan-Meier curves as SVG text, also written to ``path`` when given."""
        if self.kind != "km":
            raise ValueError(f"only Kaplan-Meier results are plotted, not {self.kind}")
        from oncofed.analysis.plot import km_svg

        svg = km_svg(self.result)
        if path is not None:
            Path(path).write_text(svg, encoding="utf-8")
        return svg

    def summary(self) -> str:
        """The result as text, laid out as statsmodels / lifelines print theirs."""
        return summary_text(self.run)

    def __str__(self) -> str:
        return self.summary()

    def _repr_svg_(self) -> str | None:  # Jupyter shows KM curves inline
        return self.plot() if self.kind == "km" else None


class Analyse:
    """``HubClient.analyse``: one method per shipped analysis."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    def run(
        self,
        algorithm: str,
        spec: dict[str, Any],
        datasets: list[str],
        cohort: dict[str, Any] | None = None,
        *,
        allow_partial: bool = False,
        round_timeout_seconds: float = 30,
        wait_seconds: float = 600,
        passport: str | None = None,
        where: str | list[str] | None = None,
    ) -> AnalysisResult:
        """Run one analysis and wait for its pooled result (AnalysisFailed names the node
        that refused or dropped out). ``passport``: visas to present instead of the ones
        the hub holds for you; ``where``: the cohort as search criteria (``"stage=IV"``)."""
        if where is not None:  # criteria as `oncofed search --where` reads them
            from oncofed.client.where import criteria

            cohort = criteria(self.client.vocabulary(), where)
        body = {
            "algorithm": algorithm,
            "spec": spec,
            "datasets": datasets,
            "cohort": cohort or ALL,
            "allow_partial": allow_partial,
            "round_timeout_seconds": round_timeout_seconds,
            "passport": passport,
        }
        deadline = time.monotonic() + wait_seconds
        run = self.client._call(
            "POST", "/api/analyses", params={"wait": min(wait_seconds, 120)}, json=body
        ).json()
        while run["status"] == "running" and time.monotonic() < deadline:
            run = self.client._call("GET", f"/api/analyses/{run['id']}", params={"wait": 30}).json()
        if run["status"] != "succeeded":
            raise AnalysisFailed(run)
        return AnalysisResult(run)

    def km(
        self, datasets: list[str], cohort: dict[str, Any] | None = None, *,
        group_by: str | None = None, bin_days: int = 30, horizon_days: int = 3650, **kw: Any,
    ) -> AnalysisResult:  # fmt: skip
        spec = {"group_by": group_by, "bin_days": bin_days, "horizon_days": horizon_days}
        return self.run("km", spec, datasets, cohort, **kw)

    def glm(
        self, formula: str, datasets: list[str], cohort: dict[str, Any] | None = None, *,
        family: str = "binomial", tol: float = 1e-10, max_iter: int = 25, **kw: Any,
    ) -> AnalysisResult:  # fmt: skip
        spec = {"formula": formula, "family": family, "tol": tol, "max_iter": max_iter}
        return self.run("glm", spec, datasets, cohort, **kw)

    def cox(
        self, formula: str, datasets: list[str], cohort: dict[str, Any] | None = None, *,
        tol: float = 1e-10, max_iter: int = 30, **kw: Any,
    ) -> AnalysisResult:  # fmt: skip
        spec = {"formula": formula, "tol": tol, "max_iter": max_iter}
        return self.run("cox", spec, datasets, cohort, **kw)

    def crosstab(
        self, row: str, column: str, datasets: list[str], cohort: dict[str, Any] | None = None,
        **kw: Any,
    ) -> AnalysisResult:  # fmt: skip
        return self.run("crosstab", {"row": row, "column": column}, datasets, cohort, **kw)

    def summary(
        self, variable: str, datasets: list[str], cohort: dict[str, Any] | None = None,
        **kw: Any,
    ) -> AnalysisResult:  # fmt: skip
        return self.run("summary", {"variable": variable}, datasets, cohort, **kw)

    def variables(self) -> dict[str, Any]:
        return dict(self.client._call("GET", "/api/analyses/variables").json())


def _coefficients(rows: list[dict[str, Any]], exp: bool = False) -> list[str]:
    head = (
        f"{'':<20}{'coef':>11}" + (f"{'exp(coef)':>11}" if exp else "")
        + f"{'std err':>11}{'z':>9}{'P>|z|':>9}{'[0.025':>11}{'0.975]':>11}"
    )  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['term'][:20]:<20}{r['coef']:>11.4f}"
            + (f"{r['exp_coef']:>11.4f}" if exp else "")
            + f"{r['std_err']:>11.4f}{r['z']:>9.3f}{r['p']:>9.3f}"
            f"{r['ci_low']:>11.4f}{r['ci_high']:>11.4f}"
        )
    return lines


def summary_text(run: dict[str, Any]) -> str:
    r = run["result"]
    kind = r["analysis"]
    rule = "=" * 92
    lines: list[str] = []
    if kind == "glm":
        lines += [
            "Generalized Linear Model Regression Results (federated, pooled)".center(92),
            rule,
            f"Formula:        {r['formula']:<30}No. Observations: {r['n']:>10}",
            f"Model Family:   {r['family']:<30}Df Residuals:     {r['df_resid']:>10}",
            f"Link Function:  {r['link']:<30}Scale:            {r['scale']:>10.4g}",
            f"Method:         {'IRLS (Newton)':<30}Deviance:         {r['deviance']:>10.4f}",
            f"No. Iterations: {r['iterations']:<30}Converged:        {r['converged']!s:>10}",
            rule,
            *_coefficients(r["coefficients"]),
            rule,
        ]
    elif kind == "cox":
        lines += [
            "Cox proportional hazards, stratified by node (federated, pooled)".center(92),
            rule,
            f"Formula:        {r['formula']:<30}No. Observations: {r['n']:>10}",
            f"Ties:           {r['ties']:<30}Events:           {r['events']:>10}",
            f"Log-likelihood: {r['log_likelihood']:<30.4f}No. Iterations:   {r['iterations']:>10}",
            rule,
            *_coefficients(r["coefficients"], exp=True),
            rule,
        ]
    elif kind == "km":
        lines.append(f"Kaplan-Meier, {r['bin_days']}-day bins (federated, pooled)")
        for level, curve in r["groups"].items():
            median = curve["median"]
            lines += [
                "",
                f"{r['group_by'] or 'all'} = {level}: n={curve['n']} events={curve['events']} "
                f"median={median if median is not None else 'not reached'} days",
                f"{'time':>12}{'at risk':>9}{'events':>8}{'censored':>10}{'survival':>10}"
                f"{'95% CI':>18}",
            ]
            for row in curve["table"]:
                lines.append(
                    f"{row['start']:>5}-{row['end']:<6}{row['at_risk']:>9}{row['events']:>8}"
                    f"{row['censored']:>10}{row['survival']:>10.4f}"
                    f"{row['ci_low']:>9.4f}-{row['ci_high']:<8.4f}"
                )
    elif kind == "crosstab":
        width = max(8, *(len(c) + 2 for c in r["column_levels"]))
        lines.append(f"{r['row']} x {r['column']} (federated; noisy, small cells withheld)")
        lines.append(f"{'':<14}" + "".join(f"{c:>{width}}" for c in r["column_levels"]))
        for i, level in enumerate(r["row_levels"]):
            cells = "".join(
                f"{str(v) + ('*' if r['withheld_at_nodes'][i][j] else ''):>{width}}"
                for j, v in enumerate(r["counts"][i])
            )
            lines.append(f"{level:<14}{cells}")
        lines.append("* withheld at one or more nodes (below the threshold): a lower bound")
    else:
        q = r["quantiles"]
        lines += [
            f"{r['variable']} (federated; noisy, quantiles from the pooled histogram)",
            f"count {r['n']}   mean {r['mean']:.4g}   sd {r['sd']:.4g}",
            "   ".join(f"q{k}: {v:.4g}" if v is not None else f"q{k}: -" for k, v in q.items()),
        ]
    if run.get("excluded"):
        lines.append("")
        for e in run["excluded"]:
            lines.append(f"PARTIAL: without {e['node']} from round {e['round']}: {e['reason']}")
    return "\n".join(lines)
