"""Saved and shared cohort queries of the portal (issue 7).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from oncofed.hub.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_query",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False, index=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("ast", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("saved_query")
