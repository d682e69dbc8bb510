"""The `learning_run` table (migration 0006): one training or validation run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from oncofed.hub.models import Base, UTCDateTime

# queued -> running -> succeeded | failed; a run the hub was running when it stopped ends
# as `interrupted` at the next start (never presented as a model).
FINAL = frozenset({"succeeded", "failed", "interrupted"})


class LearningRun(Base):
    __tablename__ = "learning_run"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))  # train | validate
    owner: Mapped[str] = mapped_column(sa.String(200), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    sites: Mapped[list[str]] = mapped_column(sa.JSON)
    # Per round: {"round": r, "nodes": {name: {"train": metrics, "evaluate": metrics,
    # "status": ...}}, "aggregate": {...}}
    rounds: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    model_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    provenance: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
