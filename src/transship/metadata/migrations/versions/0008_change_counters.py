"""The change feed's counters (SQLite; PostgreSQL notifies instead): one row per topic,
bumped in the transaction of each write that changes what caches mirror.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column("topic", sa.String(32), primary_key=True),
        sa.Column("counter", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("change_counters")
