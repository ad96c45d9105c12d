"""Manifests an import job starts with: a pull through a cache rule fetched and verified
them (the client was waiting for them) before queueing the job that copies the blobs, so
whichever process claims the job reads them here instead of spending upstream pulls on
them again. Deleted when the job ends.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

DIGEST = sa.String(160)


def upgrade() -> None:
    op.create_table(
        "job_manifests",
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", DIGEST, primary_key=True),
        sa.Column("registry_id", sa.Integer, nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_job_manifests_registry_digest", "job_manifests", ["registry_id", "digest"])


def downgrade() -> None:
    op.drop_index("ix_job_manifests_registry_digest", table_name="job_manifests")
    op.drop_table("job_manifests")
