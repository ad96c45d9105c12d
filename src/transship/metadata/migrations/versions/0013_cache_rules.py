"""Artifact cache: credential sets and cache rules of registries, and the sealed secret store
their Key Vault secret identifiers resolve against.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "credential_sets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("login_server", sa.String(255), nullable=False),
        sa.Column("username_secret_id", sa.String(1024), nullable=False),
        sa.Column("password_secret_id", sa.String(1024), nullable=False),
        sa.Column("principal_id", sa.String(36), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("registry_id", "name"),
    )
    op.create_table(
        "cache_rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("source_repository", sa.String(512), nullable=False),
        sa.Column("target_repository", sa.String(256), nullable=False),
        sa.Column("wildcard", sa.Boolean, nullable=False),
        sa.Column(
            "credential_set_id", sa.Integer, sa.ForeignKey("credential_sets.id"), nullable=True
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("registry_id", "name"),
        sa.UniqueConstraint("registry_id", "target_repository"),
    )
    op.create_table(
        "sealed_secrets",
        sa.Column("identifier", sa.String(1024), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sealed_secrets")
    op.drop_table("cache_rules")
    op.drop_table("credential_sets")
