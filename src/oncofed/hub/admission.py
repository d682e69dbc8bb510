"""The one way a researcher's request becomes a task: validate, bound, limit, create.

Every route that makes a task (``/api/search``, ``/api/tasks``, the Beacon network, the
portal) goes through :func:`admit_task`, so none is a way around a check another applies:
``POST /api/tasks`` with kind ``search.count`` once skipped the AST check and the
per-minute limit of ``/api/search``, and the hub's Beacon forwarded request fields it does
not know (a 10 MB request became a 10 MB task sent to every node).

- the body is validated against its kind's model (unknown fields refused) and, for a
  search, its AST against the vocabulary (then stored in canonical form);
- the signed body is at most ``MAX_TASK_BODY_BYTES``;
- search-tier kinds (each costs every node a query) count against the researcher's
  per-minute and daily search limits (:class:`oncofed.hub.search.SearchAdmission`);
- every refusal is written to the audit log with its reason.
"""

from __future__ import annotations

import json
from typing import Any

from oncofed.hub.context import HubContext
from oncofed.hub.search import SEARCH_KIND, SearchRefused
from oncofed.protocol import TaskBodyError, validate_body
from oncofed.query.ast import to_json
from oncofed.query.validate import QueryValidationError, parse_query

MAX_TASK_BODY_BYTES = 64 * 1024
"""A task body as the nodes receive it; a search AST or Beacon request is a few KiB."""
SEARCH_TIER = frozenset({SEARCH_KIND, "beacon.query"})
"""Kinds every node answers from its data: limited per researcher like a search."""


def admit_task(
    ctx: HubContext,
    username: str,
    kind: str,
    body: Any,
    nodes: list[str] | None,
    ttl_seconds: int,
) -> tuple[str, list[str]]:
    """Create the task if it may be; returns its id and the nodes it went to.

    Raises TaskBodyError (422), QueryValidationError (422), SearchRefused (429) or the
    channel's ChannelError; each refusal is audited. Blocking: call from a worker thread.
    """
    action = "search" if kind == SEARCH_KIND else "task.create"
    try:
        checked = validate_body(kind, body)
        if kind == SEARCH_KIND:
            raw = checked["ast"]
            checked = {"ast": to_json(parse_query(raw.get("ast", raw) if _wrapped(raw) else raw))}
        size = len(json.dumps(checked, separators=(",", ":")))
        if size > MAX_TASK_BODY_BYTES:
            raise TaskBodyError(
                f"the {kind} task body is {size} bytes, more than the {MAX_TASK_BODY_BYTES} "
                "this hub sends to nodes; narrow the request"
            )
        if kind in SEARCH_TIER:
            ctx.search_admission.admit(ctx.sessions, username)
    except (TaskBodyError, QueryValidationError, SearchRefused) as exc:
        reason = exc.message if isinstance(exc, SearchRefused) else str(exc)
        target = "" if kind == SEARCH_KIND else kind
        ctx.audit.append(username, action, "deny", target, reason[:2000])
        raise
    return ctx.channel.create(kind, checked, nodes, ttl_seconds, username)


def _wrapped(raw: dict[str, Any]) -> bool:
    """The EUCAIM transport envelope ``{"ast": <Operation>, "id": ...}`` around an AST."""
    return isinstance(raw.get("ast"), dict)
