"""Hub answers as Rich tables: shared by the `oncofed` command and `oncofed demo`."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def released(value: int | None, below: int | None) -> str:
    """A disclosure-controlled count as shown: the number, or "<k" where it was withheld."""
    return str(value) if value is not None else f"<{below}"


def search_table(result: dict[str, Any], title: str | None = None) -> Table:
    """One row per provider and dataset of a federated search, with each node's status."""
    total = result["total"]["subjects"]
    patients = (
        f"{total['min']} patients"
        if total["exact"]
        else f"{total['min']}-{total['max']} patients (some counts withheld)"
    )
    table = Table(
        "provider",
        "status",
        "dataset",
        "patients",
        "studies",
        "modalities",
        "age range",
        title=f"{title or 'search ' + result['id']}: {patients}",
    )
    for provider in result["providers"]:
        colour = {"succeeded": "green", "timed_out": "yellow"}.get(provider["status"], "red")
        status = f"[{colour}]{provider['status']}[/]"
        for c in provider.get("collections") or [None]:
            if c is None:
                table.add_row(
                    provider["provider"], status, "", "", "", "", provider.get("error", "")
                )
                continue
            ages = c.get("age_range") or {}
            table.add_row(
                provider["provider"],
                status,
                c["name"],
                released(c["subjects_count"], c.get("subjects_count_below")),
                released(c["studies_count"], c.get("studies_count_below")),
                ", ".join(c.get("modalities", [])),
                f"{ages['min']}-{ages['max']}" if ages else "",
            )
    return table


def beacon_table(response: dict[str, Any], title: str) -> Table:
    """A Beacon network answer: whether it exists overall, then each node's part."""
    summary = response.get("responseSummary", {})
    found = "yes" if summary.get("exists") else "no"
    count = summary.get("numTotalResults")
    granularity = response.get("meta", {}).get("returnedGranularity", "boolean")
    heading = (
        f"{title}: exists {found}"
        + (f", {count} in all" if count is not None else "")
        + f" ({granularity} answers: what the caller's grants allow)"
    )
    table = Table("node", "status", "exists", "count", "note", title=heading)
    for node in response.get("info", {}).get("nodes", []):
        colour = "green" if node.get("status") == "succeeded" else "red"
        exists = node.get("exists")
        table.add_row(
            str(node.get("node", "")),
            f"[{colour}]{node.get('status', '')}[/]",
            "" if exists is None else ("yes" if exists else "no"),
            "" if node.get("numTotalResults") is None else str(node["numTotalResults"]),
            str(node.get("error", "")),
        )
    return table
