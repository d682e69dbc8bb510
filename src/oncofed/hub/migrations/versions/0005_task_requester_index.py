"""An index on a requester's tasks by kind and time (the search admission's daily count).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_requester", "task", ["created_by", "kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_task_requester", table_name="task")
