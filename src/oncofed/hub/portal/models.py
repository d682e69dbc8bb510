"""Saved cohort queries (migration 0004): a researcher's named query and its share link.

A saved query holds the AST only, never a result: counts change as nodes ingest, and a shared
link re-runs the query under the viewer's own search budget at every node.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from oncofed.hub.models import Base, UTCDateTime


class SavedQuery(Base):
    __tablename__ = "saved_query"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(200), index=True)
    name: Mapped[str] = mapped_column(sa.String(300))
    ast: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
