"""Contingency tables of two categorical (or binary) variables, pooled over nodes.

A node releases every cell with cached Laplace noise (the search counts' treatment) and
withholds cells below the threshold (DataSHIELD's ``nfilter.tab``); the hub sums what was
released and says, per cell, at how many nodes it was withheld, so a pooled cell is a lower
bound where any node withheld it. Margins are sums of the released, noisy cells: no exact
margin leaks the withheld cells back. One histogram, each patient in one cell: one budget
unit. Peers: DataSHIELD ``ds.table`` (``tableDS``), vantage6 ``v6-crosstab-py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from oncofed.analysis.base import Outcome, Registered, Spec
from oncofed.analysis.disclosure import (
    AnalysisRules,
    Noise,
    check_cohort,
    check_tabulated_levels,
    noisy,
)
from oncofed.analysis.km import _group_codes, group_levels
from oncofed.analysis.variables import Frame, variable


class CrosstabSpec(Spec):
    row: str = Field(description="a categorical or binary variable")
    column: str = Field(description="a categorical or binary variable")

    @field_validator("row", "column")
    @classmethod
    def _tabulable(cls, value: str) -> str:
        if variable(value, "crosstab").kind not in ("categorical", "binary"):
            raise ValueError(f"{value!r} is not categorical")
        return value


def start(spec: CrosstabSpec) -> dict[str, Any]:
    return {}


def local(
    spec: CrosstabSpec, frame: Frame, state: dict[str, Any], rules: AnalysisRules, noise: Noise
) -> dict[str, Any]:
    rows, cols = group_levels(spec.row), group_levels(spec.column)
    r, c = _group_codes(frame, spec.row), _group_codes(frame, spec.column)
    keep = (r >= 0) & (c >= 0)
    n = int(keep.sum())
    check_cohort(n, rules, 0)
    for name, levels in ((spec.row, rows), (spec.column, cols)):
        check_tabulated_levels(name, len(levels), n, rules)
    counts = np.bincount(r[keep] * len(cols) + c[keep], minlength=len(rows) * len(cols))
    draws = noise([(f"{i}", 1.0) for i in range(len(counts))]) if rules.noise else None
    cells: list[int | None] = [
        noisy(int(k), draws[f"{i}"] if draws else 0, rules.min_cell) for i, k in enumerate(counts)
    ]
    return {"cells": cells}


def combine(spec: CrosstabSpec, partials: list[dict[str, Any]], state: dict[str, Any]) -> Outcome:
    rows, cols = group_levels(spec.row), group_levels(spec.column)
    total = np.zeros(len(rows) * len(cols), dtype=np.int64)
    withheld = np.zeros_like(total)
    for p in partials:
        for i, v in enumerate(p["cells"]):
            if v is None:
                withheld[i] += 1
            else:
                total[i] += v
    table = total.reshape(len(rows), len(cols))
    held = withheld.reshape(len(rows), len(cols))
    return Outcome(
        True,
        result={
            "analysis": "crosstab",
            "row": spec.row,
            "column": spec.column,
            "row_levels": rows,
            "column_levels": cols,
            "counts": table.tolist(),
            "withheld_at_nodes": held.tolist(),
            "row_totals": table.sum(axis=1).tolist(),
            "column_totals": table.sum(axis=0).tolist(),
            "total": int(table.sum()),
        },
    )


ANALYSIS = Registered(
    name="crosstab",
    version=1,
    iterative=False,
    epsilon_units=1,
    Spec=CrosstabSpec,
    start=start,
    local=local,
    combine=combine,
)
