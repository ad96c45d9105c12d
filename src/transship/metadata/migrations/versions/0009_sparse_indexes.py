"""Sparse indexes: the children of an index a platform-subset import left out on purpose
(so reads name the platform, and `transship check` does not count them as damage).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "absent_children",
        sa.Column("repository_id", sa.Integer, primary_key=True),
        sa.Column("index_digest", sa.String(160), primary_key=True),
        sa.Column("child_digest", sa.String(160), primary_key=True),
        sa.Column("platform", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id", "index_digest"],
            ["manifests.repository_id", "manifests.digest"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_absent_children_child", "absent_children", ["repository_id", "child_digest"]
    )


def downgrade() -> None:
    op.drop_index("ix_absent_children_child", "absent_children")
    op.drop_table("absent_children")
