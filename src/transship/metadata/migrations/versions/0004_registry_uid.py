"""Registry uid: an immutable identifier that data-plane tokens are bound to, so a token of
a deleted registry never works on a later registry of the same name (or, on SQLite, of the
same reused row id).

Revision ID: 0004
Revises: 0003
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.add_column(sa.Column("uid", sa.String(32), nullable=True))
    registries = sa.table("registries", sa.column("id", sa.Integer), sa.column("uid", sa.String))
    connection = op.get_bind()
    for (registry_id,) in connection.execute(sa.select(registries.c.id)).all():
        connection.execute(
            registries.update().where(registries.c.id == registry_id).values(uid=uuid.uuid4().hex)
        )
    with op.batch_alter_table("registries") as batch:
        batch.alter_column("uid", existing_type=sa.String(32), nullable=False)
        batch.create_unique_constraint("uq_registries_uid", ["uid"])


def downgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.drop_constraint("uq_registries_uid", type_="unique")
        batch.drop_column("uid")
