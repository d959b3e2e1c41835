"""jobs spawned by a parent job (fan-out / fan-in), federated training runs

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_jobs_parent_id", ["parent_id"])
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("clients", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("clients")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_parent_id")
        batch.drop_column("parent_id")
