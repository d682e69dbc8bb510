"""Node-side verification of access grants (GA4GH ControlledAccessGrants visas).

The node is sovereign: before any record-level Beacon answer or Tier-3 task it verifies each
visa itself, with the hub key it pinned at enrolment (never a key named by the token):
algorithm EdDSA only, signature, expiry, audience (this node's id), visa type, dataset, and
the hub's revocation list. Every refused visa is written to the node's audit log with the
reason and the visa id (never the token).

The revocation list is fetched from the hub every `grant_refresh_seconds` (≤ 30 s) by
`revocation_loop`, verified, and kept in the node's state database so every process of the
node sees it. When the last good refresh is older than `grant_max_stale_seconds` the node
fails closed and grants nothing.

Plug-in points (both return the dataset ids with a verified grant):
- `request_grants(request)` — the Beacon router's `GrantChecker` (HTTP, visas presented in
  `GA4GH-Passport:` or `Authorization: Bearer`);
- `task_grants(ctx, passport)` — the `beacon.query` task's `TaskGrantChecker` (the visas a
  task carries, space separated); `task_grants_for(ctx, passport, requester)` also binds the
  visas to the researcher who sent the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Collection
from datetime import datetime
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import Request

from oncofed.audit import AuditLog
from oncofed.node.context import NodeContext
from oncofed.security.envelope import iso, parse_iso, utcnow
from oncofed.security.visas import (
    VisaError,
    tokens_from_headers,
    verify_revocation_list,
    verify_visa,
)
from oncofed.settings import NodeSettings

log = logging.getLogger("oncofed.node.grants")

metadata = sa.MetaData()
revocations = sa.Table(
    "visa_revocations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("issued_at", sa.String(32), nullable=False),
    sa.Column("fetched_at", sa.String(32), nullable=False),
    sa.Column("revoked", sa.JSON, nullable=False),
)


_PREPARED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


class RevocationState:
    """The node's copy of the hub's revocation list, in its state database."""

    def __init__(self, state: sa.Engine) -> None:
        self.state = state
        # Made once per database: this is built on every visa check (Beacon records, each
        # analysis step, each training round), where `create_all` cost a round of catalogue
        # queries every time.
        if state not in _PREPARED:
            metadata.create_all(state)
            _PREPARED.add(state)

    def load(self) -> tuple[frozenset[str], datetime | None, datetime | None]:
        """(revoked ids, list issued at, fetched at); fetched None before the first fetch."""
        with self.state.connect() as con:
            row = con.execute(sa.select(revocations).where(revocations.c.id == 1)).first()
        if row is None:
            return frozenset(), None, None
        return frozenset(row.revoked), parse_iso(row.issued_at), parse_iso(row.fetched_at)

    def store(self, revoked: frozenset[str], issued_at: datetime) -> list[str]:
        """Keep a newer list; returns the ids that were not revoked before."""
        with self.state.begin() as con:
            row = con.execute(sa.select(revocations).where(revocations.c.id == 1)).first()
            values = {
                "issued_at": iso(issued_at),
                "fetched_at": iso(utcnow()),
                "revoked": sorted(revoked),
            }
            if row is None:
                con.execute(sa.insert(revocations).values(id=1, **values))
                return sorted(revoked)
            if parse_iso(row.issued_at) > issued_at:
                raise VisaError("malformed", "revocation list is older than the one held")
            con.execute(sa.update(revocations).where(revocations.c.id == 1).values(**values))
            return sorted(revoked - set(row.revoked))


async def refresh_once(settings: NodeSettings, state: RevocationState, audit: AuditLog) -> None:
    from oncofed.security.keys import PublicKey

    async with httpx.AsyncClient(timeout=settings.request_timeout_seconds) as client:
        response = await client.get(settings.hub_url.rstrip("/") + "/api/visas/revoked")
        response.raise_for_status()
        token = str(response.json()["token"])
    listed = verify_revocation_list(token, PublicKey.from_b64(settings.hub_public_key))
    added = await asyncio.to_thread(state.store, listed.revoked, listed.issued_at)
    if added:
        await asyncio.to_thread(
            audit.append,
            "hub",
            "visa.revocations",
            "info",
            "",
            f"{len(added)} visa(s) newly revoked by the hub",
            {"revoked": added},
        )


async def revocation_loop(ctx: NodeContext, stop: asyncio.Event) -> None:
    """Background job of the node service: refresh the revocation list until `stop`."""
    state = RevocationState(ctx.state)
    settings = ctx.settings
    while not stop.is_set():
        try:
            await refresh_once(settings, state, ctx.audit)
        except (httpx.HTTPError, VisaError, KeyError, ValueError) as exc:
            log.warning("could not refresh the visa revocation list: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.grant_refresh_seconds)


# -- verification --------------------------------------------------------------------------


def verified_datasets(
    settings: NodeSettings,
    state_engine: sa.Engine,
    audit: AuditLog,
    tokens: Collection[str],
    *,
    subject: str | None = None,
    datasets: Collection[str] | None = None,
    channel: str = "http",
) -> set[str]:
    """The datasets (of this node) that the given visas verifiably grant; each refused visa is
    audited. With no visas presented nothing is granted and nothing is logged."""
    if not tokens:
        return set()
    from oncofed.security.keys import KeyFileError, PublicKey

    try:
        hub_key = PublicKey.from_b64(settings.hub_public_key)
    except KeyFileError:
        audit.append("?", "visa.verify", "deny", "", "node is not enrolled: no hub key pinned")
        return set()
    revoked, _, fetched = RevocationState(state_engine).load()
    age = (utcnow() - fetched).total_seconds() if fetched else None
    if age is None or age > settings.grant_max_stale_seconds:
        reason = (
            "no revocation list from the hub yet"
            if age is None
            else f"revocation list is {age:.0f} s old "
            f"(limit {settings.grant_max_stale_seconds:.0f} s)"
        )
        audit.append("?", "visa.verify", "deny", "", f"grants refused: {reason}", {"via": channel})
        return set()
    granted: set[str] = set()
    for token in tokens:
        try:
            visa = verify_visa(
                token,
                hub_key,
                audience=settings.node_id,
                subject=subject,
                revoked=revoked,
            )
        except VisaError as exc:
            audit.append(
                subject or "?",
                "visa.verify",
                "deny",
                exc.jti,
                str(exc),
                {"reason": exc.reason, "via": channel},
            )
            continue
        if datasets is not None and visa.dataset not in datasets:
            audit.append(
                visa.subject,
                "visa.verify",
                "deny",
                visa.jti,
                f"visa is for dataset {visa.dataset!r}, which this request does not touch",
                {"reason": "dataset", "via": channel},
            )
            continue
        granted.add(visa.dataset)
        audit.append(
            visa.subject,
            "visa.verify",
            "allow",
            visa.jti,
            "",
            {"dataset": visa.dataset, "expires": iso(visa.expires_at), "via": channel},
        )
    return granted


def split_passport(passport: str | None) -> list[str]:
    if not passport:
        return []
    return [t for t in passport.replace(",", " ").split() if t.count(".") == 2][:50]


def request_grants(request: Request) -> set[str]:
    """`GrantChecker` for the node's Beacon router: datasets with a verified visa."""
    ctx: NodeContext = request.app.state.node
    return verified_datasets(
        ctx.settings, ctx.state, ctx.audit, tokens_from_headers(dict(request.headers))
    )


def task_grants(ctx: NodeContext, passport: str | None) -> set[str]:
    """`TaskGrantChecker` for `beacon.query` (and Tier-3) tasks: the visas the task carries."""
    return verified_datasets(
        ctx.settings, ctx.state, ctx.audit, split_passport(passport), channel="task"
    )


def task_grants_for(ctx: NodeContext, passport: str | None, requester: str) -> set[str]:
    """As `task_grants`, and each visa must belong to the researcher who sent the task."""
    return verified_datasets(
        ctx.settings,
        ctx.state,
        ctx.audit,
        split_passport(passport),
        subject=requester,
        channel="task",
    )


def status(ctx: NodeContext) -> dict[str, Any]:
    revoked, issued, fetched = RevocationState(ctx.state).load()
    return {
        "revoked": len(revoked),
        "list_issued_at": iso(issued) if issued else None,
        "fetched_at": iso(fetched) if fetched else None,
    }
