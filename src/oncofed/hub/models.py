"""Hub database models. The hub stores accounts, nodes, tasks and aggregate results only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(200), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(300))
    roles: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"roles": [...]}
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(default=False)


class ApiToken(Base):
    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    scopes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"scopes": [...]}
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Node(Base):
    __tablename__ = "node"
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    public_key: Mapped[str | None] = mapped_column(sa.String(100))
    key_id: Mapped[str | None] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(
        sa.String(20), default="invited"
    )  # invited|enrolled|revoked
    version: Mapped[str] = mapped_column(sa.String(50), default="")
    created_at: Mapped[datetime]
    enrolled_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)


class EnrolmentToken(Base):
    __tablename__ = "enrolment_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[str] = mapped_column(sa.ForeignKey("node.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Task(Base):
    __tablename__ = "task"
    # A requester's tasks by kind and time: the search admission counts the day's searches
    # on every search, which without it scanned every task the hub ever ran.
    __table_args__ = (sa.Index("ix_task_requester", "created_by", "kind", "created_at"),)
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(100))
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    envelope: Mapped[dict[str, Any]]  # the hub-signed message as the nodes receive it


class TaskTarget(Base):
    __tablename__ = "task_target"
    __table_args__ = (sa.Index("task_target_node_status", "node_id", "status"),)
    task_id: Mapped[str] = mapped_column(
        sa.ForeignKey("task.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(sa.ForeignKey("node.id"), primary_key=True)
    # pending | claimed | succeeded | failed | timed_out | refused
    status: Mapped[str] = mapped_column(sa.String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    result_envelope: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    result_hash: Mapped[str | None] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)


class UsedNonce(Base):
    """Nonces of signed node requests within the clock-skew window (replay protection)."""

    __tablename__ = "used_nonce"
    node_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


FINAL_STATUSES = frozenset({"succeeded", "failed", "timed_out", "refused"})
