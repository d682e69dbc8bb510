"""A pooled result as flat rows and CSV: what the SDK's ``to_frame``/``to_csv``, the CLI's
``--csv`` and the portal's download share."""

from __future__ import annotations

import csv
import io
from typing import Any


def result_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    kind = result["analysis"]
    if kind in ("glm", "cox"):
        return [dict(row) for row in result["coefficients"]]
    if kind == "km":
        return [
            {"group": level, **row}
            for level, curve in result["groups"].items()
            for row in curve["table"]
        ]
    if kind == "crosstab":
        return [
            {
                result["row"]: rl,
                result["column"]: cl,
                "count": result["counts"][i][j],
                "withheld_at_nodes": result["withheld_at_nodes"][i][j],
            }
            for i, rl in enumerate(result["row_levels"])
            for j, cl in enumerate(result["column_levels"])
        ]
    h = result["histogram"]
    return [
        {"from": h["edges"][i], "to": h["edges"][i + 1], "count": c,
         "withheld_at_nodes": h["withheld_at_nodes"][i]}
        for i, c in enumerate(h["counts"])
    ]  # fmt: skip


def result_csv(result: dict[str, Any]) -> str:
    rows = result_rows(result)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
