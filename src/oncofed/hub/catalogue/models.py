"""The hub's catalogue table: each dataset's last published figures and its holder's edits.

Created by migration 0003. A row is either a dataset of one of this hub's nodes (``origin``
empty, refreshed over the task channel) or one harvested from another FAIR Data Point
(``origin`` is that catalogue's IRI, replaced on each harvest).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from oncofed.hub.models import Base


class CatalogueDataset(Base):
    __tablename__ = "catalogue_dataset"
    __table_args__ = (sa.UniqueConstraint("origin", "identifier"),)

    key: Mapped[str] = mapped_column(sa.String(400), primary_key=True)
    identifier: Mapped[str] = mapped_column(sa.String(400))
    origin: Mapped[str] = mapped_column(sa.String(1000), default="", index=True)
    node_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("node.id", ondelete="CASCADE"), index=True
    )
    node_name: Mapped[str] = mapped_column(sa.String(200), default="")
    dataset_id: Mapped[str] = mapped_column(sa.String(200), default="")
    # What the node published (name, description, access_level, tier, figures ...), or for
    # a harvested dataset the whole harvested record.
    published: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The data holder's edits of descriptive fields (see schema.Descriptive).
    edits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    issued_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    refreshed_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    edited_by: Mapped[str | None] = mapped_column(sa.String(200))
