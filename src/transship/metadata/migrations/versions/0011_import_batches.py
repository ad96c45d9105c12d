"""Batch imports: a batch row and its items, each an ordinary import job.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "import_batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "import_batch_items",
        sa.Column(
            "batch_id",
            sa.String(32),
            sa.ForeignKey("import_batches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("prior_digest", sa.String(160), nullable=True),
    )
    op.create_index("ix_import_batch_items_job", "import_batch_items", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_import_batch_items_job", "import_batch_items")
    op.drop_table("import_batch_items")
    op.drop_table("import_batches")
