"""Upstream rate-limit budgets, one per (upstream host, credential user), shared by every
process; and the rate-limit wait an import job is in, if any.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upstream_budgets",
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("limit_count", sa.Integer, nullable=True),
        sa.Column("remaining", sa.Integer, nullable=True),
        sa.Column("window_seconds", sa.Integer, nullable=True),
        sa.Column("observed_at", TS, nullable=True),
        sa.Column("resets_at", TS, nullable=True),
        sa.Column("blocked_until", TS, nullable=True),
        sa.Column("pulls", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False),
    )
    # Plain ADD COLUMN (nullable, no default): SQLite needs no table rebuild, which would
    # cascade through the blob pins' foreign key.
    op.add_column("import_jobs", sa.Column("waiting_until", TS, nullable=True))
    op.add_column("import_jobs", sa.Column("waiting_for", sa.String(255), nullable=True))


def downgrade() -> None:
    # DROP COLUMN exists natively in SQLite since 3.35; no rebuild either.
    op.drop_column("import_jobs", "waiting_for")
    op.drop_column("import_jobs", "waiting_until")
    op.drop_table("upstream_budgets")
