"""Changeable attributes (ACR's image locking): deleteEnabled, writeEnabled, readEnabled and
listEnabled on repositories, tags and manifests; every existing row stays fully enabled.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("repositories", "tags", "manifests")
_ATTRIBUTES = ("delete_enabled", "write_enabled", "read_enabled", "list_enabled")


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch may rebuild the table, and dropping
    # the old one with foreign keys on (every connection sets them) would cascade-delete
    # the tags and manifests of every repository. A constant default is all SQLite needs.
    for table in _TABLES:
        for name in _ATTRIBUTES:
            op.add_column(
                table, sa.Column(name, sa.Boolean, nullable=False, server_default=sa.true())
            )


def downgrade() -> None:
    # DROP COLUMN exists natively in SQLite since 3.35; no rebuild either.
    for table in _TABLES:
        for name in _ATTRIBUTES:
            op.drop_column(table, name)
