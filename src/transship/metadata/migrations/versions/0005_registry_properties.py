"""Registry properties az sets and reads back: ARM tags and the retention policy of untagged
manifests (the SKU already has its column).

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
    with op.batch_alter_table("registries") as batch:
        batch.add_column(sa.Column("tags", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(
            sa.Column("retention_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("retention_days", sa.Integer(), nullable=False, server_default="7")
        )
        batch.add_column(
            sa.Column("retention_updated_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.drop_column("retention_updated_at")
        batch.drop_column("retention_days")
        batch.drop_column("retention_enabled")
        batch.drop_column("tags")
