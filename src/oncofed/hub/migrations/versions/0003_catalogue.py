"""The public dataset catalogue (issue 7): each dataset's last published figures and edits.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from oncofed.hub.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalogue_dataset",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("identifier", sa.String(400), nullable=False),
        sa.Column("origin", sa.String(1000), nullable=False, index=True),
        sa.Column(
            "node_id", sa.String(64), sa.ForeignKey("node.id", ondelete="CASCADE"), index=True
        ),
        sa.Column("node_name", sa.String(200), nullable=False),
        sa.Column("dataset_id", sa.String(200), nullable=False),
        sa.Column("published", sa.JSON, nullable=False),
        sa.Column("edits", sa.JSON, nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime()),
        sa.Column("edited_by", sa.String(200)),
        sa.UniqueConstraint("origin", "identifier"),
    )


def downgrade() -> None:
    op.drop_table("catalogue_dataset")
