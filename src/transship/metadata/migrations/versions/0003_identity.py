"""Identity and access: tenants, subscriptions, resource groups, principals, roles, signing
keys, per-registry access settings, scope maps and registry tokens.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
GUID = sa.String(36)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", GUID, primary_key=True),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("is_root", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "tenant_id", GUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "resource_groups",
        sa.Column(
            "subscription_id",
            sa.String(64),
            sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name_key", sa.String(90), primary_key=True),
        sa.Column("name", sa.String(90), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "principals",
        sa.Column("id", GUID, primary_key=True),
        sa.Column(
            "tenant_id", GUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("app_id", GUID, nullable=True, unique=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("name_key", sa.String(256), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "kind", "name_key"),
    )
    op.create_table(
        "principal_secrets",
        sa.Column("id", GUID, primary_key=True),
        sa.Column(
            "principal_id", GUID, sa.ForeignKey("principals.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("hint", sa.String(8), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_principal_secrets_principal", "principal_secrets", ["principal_id"])
    op.create_table(
        "role_definitions",
        sa.Column("id", GUID, primary_key=True),
        sa.Column(
            "tenant_id", GUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("name_key", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("permissions", sa.Text, nullable=False),
        sa.Column("assignable_scopes", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name_key"),
    )
    op.create_table(
        "role_assignments",
        sa.Column("id", GUID, primary_key=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column(
            "principal_id", GUID, sa.ForeignKey("principals.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("role_definition_id", GUID, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_role_assignments_principal", "role_assignments", ["principal_id"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
    )
    op.create_table(
        "registry_access",
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("admin_user_enabled", sa.Boolean, nullable=False),
        sa.Column("admin_passwords", sa.LargeBinary, nullable=True),
        sa.Column("anonymous_pull", sa.Boolean, nullable=False),
        sa.Column("public_network_access", sa.String(16), nullable=False),
        sa.Column("default_action", sa.String(8), nullable=False),
        sa.Column("ip_rules", sa.Text, nullable=False),
        sa.Column("bypass", sa.String(16), nullable=False),
    )
    op.create_table(
        "scope_maps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("actions", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("registry_id", "name"),
    )
    op.create_table(
        "registry_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("scope_map_id", sa.Integer, sa.ForeignKey("scope_maps.id"), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("registry_id", "name"),
    )
    op.create_table(
        "token_passwords",
        sa.Column(
            "token_id",
            sa.Integer,
            sa.ForeignKey("registry_tokens.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "token_passwords",
        "registry_tokens",
        "scope_maps",
        "registry_access",
        "signing_keys",
        "role_assignments",
        "role_definitions",
        "principal_secrets",
        "principals",
        "resource_groups",
        "subscriptions",
        "tenants",
    ):
        op.drop_table(table)
