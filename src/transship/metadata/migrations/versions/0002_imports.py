"""Imports: registry location and SKU, service state, import jobs, blob pins.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("registries") as batch:
        batch.add_column(
            sa.Column("location", sa.String(64), nullable=False, server_default="local")
        )
        batch.add_column(sa.Column("sku", sa.String(16), nullable=False, server_default="Premium"))
    op.create_table(
        "service_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("credentials", sa.LargeBinary, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("bytes_total", sa.BigInteger, nullable=False),
        sa.Column("bytes_done", sa.BigInteger, nullable=False),
        sa.Column("blobs_total", sa.Integer, nullable=False),
        sa.Column("blobs_done", sa.Integer, nullable=False),
        sa.Column("manifests_total", sa.Integer, nullable=False),
        sa.Column("manifests_done", sa.Integer, nullable=False),
        sa.Column("bytes_fetched", sa.BigInteger, nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("error_step", sa.String(16), nullable=True),
        sa.Column("error_object", sa.Text, nullable=True),
        sa.Column("error_upstream_status", sa.Integer, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("lease_owner", sa.String(32), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
    )
    op.create_index("ix_import_jobs_state", "import_jobs", ["state"])
    op.create_index("ix_import_jobs_registry", "import_jobs", ["registry_id", "created_at"])
    op.create_table(
        "blob_pins",
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", sa.String(160), sa.ForeignKey("blobs.digest"), primary_key=True),
    )
    op.create_index("ix_blob_pins_digest", "blob_pins", ["digest"])


def downgrade() -> None:
    op.drop_table("blob_pins")
    op.drop_table("import_jobs")
    op.drop_table("service_state")
    with op.batch_alter_table("registries") as batch:
        batch.drop_column("sku")
        batch.drop_column("location")
