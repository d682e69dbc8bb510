"""Hub answers as Rich tables: shared by the `oncofed` command and `oncofed demo`."""

from __future__ import annotations

import base64
import json
from typing import Any

from rich.markup import escape
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
                    provider["provider"], status, "", "", "", "", _text(provider.get("error"))
                )
                continue
            ages = c.get("age_range") or {}
            table.add_row(
                provider["provider"],
                status,
                _text(c["name"]),
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
            _text(node.get("error")),
        )
    return table


# -- access requests and visas ------------------------------------------------------------

_GOOD = {"APPROVED", "IN_PROGRESS", "CONCLUDED", "RESOURCE_AVAILABLE", "RESOURCE_MADE_AVAILABLE"}
_BAD = {
    "DECLINED",
    "ABANDONED",
    "REPRESENTATIVE_UNREACHABLE",
    "RESOURCE_UNAVAILABLE",
    "RESOURCE_NOT_MADE_AVAILABLE",
}


def _state(state: str) -> str:
    colour = "green" if state in _GOOD else "red" if state in _BAD else "yellow"
    return f"[{colour}]{state}[/]"


def _when(timestamp: str | None) -> str:
    """An ISO timestamp of the hub (UTC) to the second, readable."""
    return (timestamp or "")[:19].replace("T", " ")


def _text(value: Any) -> str:
    """Text the users wrote (titles, notes, comments): shown as is, never as Rich markup."""
    return escape(str(value or ""))


_ONE_LINE = {"id", "request", "at", "updated", "expires"}  # request ids to copy, times


def _table(title: str, *headers: str) -> Table:
    """A table that folds a long state or name onto the next line rather than cut it short;
    ids and times stay on one line while the others can give way."""
    table = Table(title=title)
    for header in headers:
        table.add_column(header, no_wrap=header in _ONE_LINE, overflow="fold")
    return table


def _resource_label(resource: dict[str, Any]) -> str:
    return f"{resource['provider']}/{resource['id']}"


def requests_table(requests: list[dict[str, Any]], title: str = "access requests") -> Table:
    """Access requests with each requested resource's state; a summary row (no
    ``resources``) lists its providers only."""
    table = _table(
        title, "id", "title", "owner", "state", "resources (row provider/dataset state)", "updated"
    )
    for r in requests:
        if "resources" in r:
            resources = "\n".join(
                f"{x['row']} {_text(_resource_label(x))} {_state(x['state'])}"
                for x in r["resources"]
            )
        else:
            resources = ", ".join(r.get("providers", []))
        table.add_row(
            r["id"],
            _text(r["title"]),
            r["owner"],
            _state(r["state"]),
            resources,
            _when(r.get("updated_at")),
        )
    return table


def request_table(view: dict[str, Any]) -> Table:
    """One request's header: state, what may happen next, and its access form."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("request", view["id"])
    table.add_row("title", _text(view["title"]))
    table.add_row("owner", view["owner"])
    table.add_row("state", _state(view["state"]))
    table.add_row("possible next", ", ".join(view.get("allowed_events", [])) or "nothing (final)")
    if view.get("missing"):
        table.add_row("missing", "[red]" + _text(", ".join(view["missing"])) + "[/]")
    form = view.get("form") or {}
    for key, value in form.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        if shown:
            table.add_row(key.replace("_", " "), _text(shown))
    source = view.get("source") or {}
    if source.get("url"):
        table.add_row("handed over from", _text(source["url"]))
    table.add_row("created", _when(view.get("created_at")))
    table.add_row("updated", _when(view.get("updated_at")))
    return table


def request_resources_table(view: dict[str, Any]) -> Table:
    """The requested resources; ``row`` is what resource-level events (DAC decisions) name."""
    table = _table(
        "requested resources", "row", "provider", "dataset", "state", "conditions", "possible next"
    )
    for r in view["resources"]:
        table.add_row(
            str(r["row"]),
            r["provider"],
            _text(r["id"] + (f" ({r['name']})" if r.get("name") else "")),
            _state(r["state"]),
            _text(r.get("conditions")),
            ", ".join(r.get("allowed_events", [])),
        )
    return table


def request_history_table(view: dict[str, Any]) -> Table:
    """Every state change of a request and of its resources, oldest first."""
    rows = {r["row"]: _resource_label(r) for r in view["resources"]}
    table = _table("history", "at", "actor", "event", "resource", "from", "to", "note")
    for e in view.get("history", []):
        row = e.get("resource_row")
        table.add_row(
            _when(e["at"]),
            e["actor"],
            e["event"],
            "" if row is None else _text(rows.get(row, f"row {row}")),
            e["from"],
            _state(e["to"]),
            _text(e.get("note")),
        )
    return table


def request_visas_table(view: dict[str, Any]) -> Table:
    """The visas a request's grants issued, revoked ones included (what a DAC revokes)."""
    table = _table("visas issued", "visa id", "provider", "dataset", "to", "expires", "revoked")
    for v in view.get("visas", []):
        revoked = v.get("revoked_at")
        table.add_row(
            v["jti"],
            v["provider"],
            _text(v["dataset"]),
            v["subject"],
            _when(v["expires_at"])[:16],
            f"{_when(revoked)[:16]}: {_text(v.get('revoked_reason'))}" if revoked else "",
        )
    return table


def attachments_table(attachments: list[dict[str, Any]]) -> Table:
    table = _table("attachments", "id", "file", "bytes", "sha256")
    for a in attachments:
        table.add_row(str(a["id"]), _text(a["filename"]), str(a["size"]), a["sha256"])
    return table


def comments_table(comments: list[dict[str, Any]]) -> Table:
    table = _table("comments", "at", "author", "to", "comment")
    for c in comments:
        table.add_row(
            _when(c["at"]),
            c["author"],
            f"{c['provider']} DAC" if c.get("provider") else "everyone",
            _text(c["body"]),
        )
    return table


def visa_claims_unverified(token: str) -> dict[str, Any]:
    """A visa's claims read without checking its signature: for display only (the nodes
    verify every visa against the hub key they pinned). Empty if it is not a JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return dict(claims) if isinstance(claims, dict) else {}


def visas_table(visas: list[dict[str, Any]]) -> Table:
    """The caller's visas: which dataset at which provider, until when, on what terms."""
    table = _table(
        "your visas (ControlledAccessGrants)",
        "provider",
        "dataset",
        "request",
        "expires",
        "DUO",
        "conditions",
        "visa id",
    )
    for v in visas:
        extra = visa_claims_unverified(str(v.get("visa", ""))).get("oncofed", {})
        table.add_row(
            v.get("provider", ""),
            _text(v["dataset"]),
            v.get("negotiation", ""),
            _when(v.get("expires_at"))[:16],  # to the minute
            ", ".join(extra.get("duo", [])),
            _text(extra.get("conditions")),
            v["jti"],
        )
    return table


def nodes_table(rows: list[dict[str, Any]]) -> Table:
    """The federation's nodes: name, id, status, version and when the hub last heard of each."""
    table = Table("name", "id", "status", "version", "last seen")
    for n in rows:
        table.add_row(
            _text(n["name"]),
            n["id"],
            n["status"],
            n.get("version") or "",
            n.get("last_seen_at") or "never",
        )
    return table


TASK_STATUS_COLOURS = {
    "succeeded": "green",
    "timed_out": "yellow",
    "refused": "red",
    "failed": "red",
}


def task_table(view: dict[str, Any]) -> Table:
    """A task's per-node status and result (or error), the result cut to one line."""
    table = Table("node", "status", "result", title=f"task {view['id']} ({view['kind']})")
    for t in view["targets"]:
        colour = TASK_STATUS_COLOURS.get(t["status"], "white")
        if t["result"] is not None:
            summary = json.dumps(t["result"])
            summary = summary if len(summary) < 120 else summary[:117] + "..."
        else:
            summary = t["error"] or ""
        table.add_row(_text(t["node_name"]), f"[{colour}]{t['status']}[/]", _text(summary))
    return table
