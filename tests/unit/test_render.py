"""The tables the CLI and the demo print: withheld counts stay withheld, statuses show."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from oncofed.client.render import beacon_table, search_table


def text(table: Table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_search_table_shows_withheld_counts_as_below_k_and_a_range() -> None:
    result: dict[str, Any] = {
        "id": "t1",
        "total": {"subjects": {"min": 35, "max": 44, "exact": False}},
        "providers": [
            {
                "provider": "de-berlin",
                "status": "succeeded",
                "collections": [
                    {
                        "name": "Berlin [lung] cohort",
                        "subjects_count": 35,
                        "studies_count": None,
                        "studies_count_below": 10,
                        "modalities": ["CT"],
                        "age_range": {"min": 50, "max": 70},
                    },
                    {
                        "name": "Berlin small",
                        "subjects_count": None,
                        "subjects_count_below": 10,
                        "studies_count": None,
                        "studies_count_below": 10,
                    },
                ],
            },
            {"provider": "it-milano", "status": "timed_out", "error": "no result in time"},
        ],
    }
    out = text(search_table(result))
    assert "35-44 patients (some counts withheld)" in out
    berlin_small = next(line for line in out.splitlines() if "Berlin small" in line)
    assert berlin_small.count("<10") == 2
    milano = next(line for line in out.splitlines() if "it-milano" in line)
    assert "timed_out" in milano and "no result in time" in milano
    assert "50-70" in out
    assert "Berlin [lung] cohort" in out  # a node's dataset name is text, not Rich markup


def test_beacon_table_keeps_each_nodes_status_and_the_granularity() -> None:
    response = {
        "meta": {"returnedGranularity": "boolean"},
        "responseSummary": {"exists": True},
        "info": {
            "nodes": [
                {"node": "n1", "status": "succeeded", "exists": True},
                {"node": "n2", "status": "refused", "error": "policy: no beacon.query"},
            ]
        },
    }
    out = text(beacon_table(response, "KRAS"))
    assert "KRAS: exists yes (boolean answers" in out
    assert "policy: no beacon.query" in next(line for line in out.splitlines() if "n2" in line)
