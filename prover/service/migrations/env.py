"""Alembic environment: runs on the connection that ``prover.service.db.migrate`` passes."""

from alembic import context

from prover.service.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
