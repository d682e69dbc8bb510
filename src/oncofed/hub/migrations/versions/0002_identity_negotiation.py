"""Identity (OIDC issuer and external log-in) and access negotiation with visa grants.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from oncofed.hub.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _negotiation_fk() -> sa.Column[str]:
    return sa.Column(
        "negotiation_id",
        sa.String(40),
        sa.ForeignKey("negotiation.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    op.create_table(
        "negotiation",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False, index=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("state", sa.String(30), nullable=False, index=True),
        sa.Column("form", sa.JSON, nullable=False),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "negotiation_resource",
        sa.Column("id", sa.Integer, primary_key=True),
        _negotiation_fk(),
        sa.Column("resource_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("node_id", sa.String(64), sa.ForeignKey("node.id"), nullable=False),
        sa.Column("node_name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(60), nullable=False),
        sa.Column("conditions", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("reminded_at", UTCDateTime()),
    )
    op.create_table(
        "negotiation_event",
        sa.Column("id", sa.Integer, primary_key=True),
        _negotiation_fk(),
        sa.Column("resource_row", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("event", sa.String(60), nullable=False),
        sa.Column("from_state", sa.String(60), nullable=False),
        sa.Column("to_state", sa.String(60), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "negotiation_comment",
        sa.Column("id", sa.Integer, primary_key=True),
        _negotiation_fk(),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("node_name", sa.String(200)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "negotiation_attachment",
        sa.Column("id", sa.Integer, primary_key=True),
        _negotiation_fk(),
        sa.Column("filename", sa.String(300), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_by", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "visa_grant",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False, index=True),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("negotiation_id", sa.String(40), nullable=False, index=True),
        sa.Column("claims", sa.JSON, nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("revoked_by", sa.String(200)),
        sa.Column("revoked_reason", sa.Text),
    )
    op.create_table(
        "contact",
        sa.Column("username", sa.String(200), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
    )
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("to_user", sa.String(200), nullable=False),
        sa.Column("to_addr", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime()),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "oidc_client",
        sa.Column("client_id", sa.String(100), primary_key=True),
        sa.Column("secret_hash", sa.String(64)),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("redirect_uris", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "oidc_code",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("redirect_uri", sa.String(1000), nullable=False),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("nonce", sa.String(200)),
        sa.Column("code_challenge", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime()),
    )
    op.create_table(
        "oidc_login",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(200), nullable=False),
        sa.Column("code_verifier", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "external_identity",
        sa.Column("issuer", sa.String(500), primary_key=True),
        sa.Column("subject", sa.String(300), primary_key=True),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("last_login_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "external_identity",
        "oidc_login",
        "oidc_code",
        "oidc_client",
        "mail_outbox",
        "contact",
        "visa_grant",
        "negotiation_attachment",
        "negotiation_comment",
        "negotiation_event",
        "negotiation_resource",
        "negotiation",
    ):
        op.drop_table(table)
