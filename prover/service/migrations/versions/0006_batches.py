"""dynamic batching: a key's requests for one batch circuit gathered into one proof

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("circuit_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=100), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index("ix_batches_circuit_id", "batches", ["circuit_id"])
    op.create_index("ix_batches_owner", "batches", ["owner"])
    op.create_table(
        "batch_items",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("proof_id", sa.String(length=64), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("settle", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_batch_items_batch_id", "batch_items", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_batch_items_batch_id", "batch_items")
    op.drop_table("batch_items")
    op.drop_index("ix_batches_owner", "batches")
    op.drop_index("ix_batches_circuit_id", "batches")
    op.drop_table("batches")
