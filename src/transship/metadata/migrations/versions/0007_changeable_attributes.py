"""Changeable attributes (ACR's image locking): deleteEnabled, writeEnabled, readEnabled and
listEnabled on repositories, tags and manifests; every existing row stays fully enabled.

Revision ID: 0007
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = ("repositories", "tags", "manifests")
_ATTRIBUTES = ("delete_enabled", "write_enabled", "read_enabled", "list_enabled")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for name in _ATTRIBUTES:
                batch.add_column(
                    sa.Column(name, sa.Boolean, nullable=False, server_default=sa.true())
                )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for name in _ATTRIBUTES:
                batch.drop_column(name)
