"""Initial hub schema: accounts, tokens, nodes, enrolment, tasks, nonces, audit log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from oncofed.hub.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(200), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(300)),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("account.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("last_used_at", UTCDateTime()),
    )
    op.create_table(
        "node",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("public_key", sa.String(100)),
        sa.Column("key_id", sa.String(32)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("enrolled_at", UTCDateTime()),
        sa.Column("last_seen_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("info", sa.JSON, nullable=False),
    )
    op.create_table(
        "enrolment_token",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "node_id", sa.String(64), sa.ForeignKey("node.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime()),
    )
    op.create_table(
        "task",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("envelope", sa.JSON, nullable=False),
    )
    op.create_table(
        "task_target",
        sa.Column(
            "task_id", sa.String(32), sa.ForeignKey("task.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("node_id", sa.String(64), sa.ForeignKey("node.id"), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_at", UTCDateTime()),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("result", sa.JSON),
        sa.Column("result_envelope", sa.JSON),
        sa.Column("result_hash", sa.String(64)),
        sa.Column("error", sa.Text),
    )
    op.create_index("task_target_node_status", "task_target", ["node_id", "status"])
    op.create_table(
        "used_nonce",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("seen_at", UTCDateTime(), nullable=False, index=True),
    )
    op.create_table(
        "audit_entry",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(400), nullable=False, server_default=""),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "audit_head",
        "audit_entry",
        "used_nonce",
        "task_target",
        "task",
        "enrolment_token",
        "node",
        "api_token",
        "account",
    ):
        op.drop_table(table)
