"""training runs

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("circuit_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("proof_ids", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_training_runs_circuit_id"), "training_runs", ["circuit_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_training_runs_circuit_id"), table_name="training_runs")
    op.drop_table("training_runs")
