"""Alembic environment: the engine comes from the caller (oncofed.hub.db.upgrade)."""

from alembic import context

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, render_as_batch=True)
    context.run_migrations()
