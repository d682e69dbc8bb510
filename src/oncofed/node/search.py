"""The node's answer to a federated search (Tier 2): validate, admit, count, disclose.

Used by the task handler (hub fan-out over the task channel) and by the EUCAIM mediator
endpoint (:mod:`oncofed.node.mediator`). Everything that leaves is disclosure-controlled
under the node's own policy, and every call, answered or refused, yields a
:class:`~oncofed.privacy.DisclosureDecision` for the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from oncofed.node.store import NodeStore
from oncofed.privacy.decision import DisclosureDecision
from oncofed.privacy.disclose import disclose, meaning
from oncofed.privacy.errors import DisclosureRefused
from oncofed.privacy.ledger import PrivacyLedger, Write
from oncofed.privacy.policy import DisclosurePolicy
from oncofed.query.ast import Operation, query_hash, to_json
from oncofed.query.response import MediatorResponse
from oncofed.query.validate import QueryValidationError, parse_query

AuditSink = Callable[[DisclosureDecision], None]


def answer_search(
    store: NodeStore,
    ast: dict[str, Any] | Operation,
    requester: str,
    policy: DisclosurePolicy,
    state_engine: Engine,
    node_id: str,
    *,
    audit: AuditSink | None = None,
    ledger: PrivacyLedger | None = None,
    clock: Callable[[], float] = time.time,
    defer: list[Write] | None = None,
) -> MediatorResponse:
    """Answer one search with disclosure-controlled counts per dataset.

    Raises :class:`~oncofed.query.QueryValidationError` for a malformed query,
    :class:`~oncofed.privacy.RateLimited` or :class:`~oncofed.privacy.BudgetExhausted`
    (with ``resets_at``) when the researcher may not ask now. ``audit`` receives the
    decision record in every case; pass a long-lived ``ledger`` to skip re-checking the
    state tables on each call. ``defer``: the budget's rows go there as writes for the
    caller's transaction instead of a transaction of their own (see ``PrivacyLedger.admit``).
    """
    ledger = ledger or PrivacyLedger(state_engine, clock=clock)

    def record(decision: str, reason: str, **fields: Any) -> None:
        if audit is not None:
            audit(
                DisclosureDecision(
                    at=dt.datetime.fromtimestamp(clock(), dt.UTC),
                    node_id=node_id,
                    requester=requester,
                    decision=decision,
                    reason=reason,
                    **fields,
                )
            )

    try:
        op = parse_query(ast)
    except QueryValidationError as exc:
        raw = ast.model_dump(mode="json") if isinstance(ast, Operation) else ast
        record(
            "refused",
            "invalid_query",
            detail=str(exc)[:2000],
            query=raw
            if isinstance(raw, dict) and len(json.dumps(raw, default=str)) < 20000
            else None,
        )
        raise
    qhash = query_hash(op)
    canonical = to_json(op)
    # Counted before admission: the charge is keyed on what the query selects, not on how
    # it is written, so a rewriting of a query answered today is free (its noise is the
    # cached draw). The exact counts go nowhere unless the request is admitted.
    try:
        counts = store.search_counts(op, policy.max_studies_per_subject)
    except Exception as exc:
        record("refused", "error", detail=f"{type(exc).__name__}: {exc}"[:2000],
               query_hash=qhash, query=canonical)  # fmt: skip
        raise
    try:
        admission = ledger.admit(requester, meaning(counts, qhash), policy, defer)
    except DisclosureRefused as exc:
        record("refused", exc.reason, detail=str(exc), query_hash=qhash, query=canonical)
        raise
    try:
        response, summary = disclose(counts, policy, ledger, node_id, qhash)
    except Exception as exc:
        record(
            "refused",
            "error",
            detail=f"{type(exc).__name__}: {exc}"[:2000],
            query_hash=qhash,
            query=canonical,
            epsilon_charged=admission.epsilon_charged,
        )
        raise
    record(
        "answered",
        "answered",
        query_hash=qhash,
        query=canonical,
        epsilon_charged=admission.epsilon_charged,
        budget_spent=admission.spent,
        budget_remaining=admission.remaining,
        datasets=summary.datasets,
        counts_released=summary.released,
        counts_withheld=summary.withheld,
    )
    return response
