"""Scheduled sync: sync rules per registry, their runs, and what each rule copied per tag.

Revision ID: 0014
Revises: 0012 (the lead re-chains it after 0013 at merge)
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
DIGEST = sa.String(160)


def upgrade() -> None:
    op.create_table(
        "sync_rules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "registry_id",
            sa.Integer,
            sa.ForeignKey("registries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("credentials", sa.LargeBinary, nullable=True),
        sa.Column("next_run_at", TS, nullable=True),
        sa.Column("lease_owner", sa.String(32), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("registry_id", "name", name="uq_sync_rules_registry_name"),
    )
    op.create_index("ix_sync_rules_next_run", "sync_rules", ["next_run_at"])
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "rule_id",
            sa.String(32),
            sa.ForeignKey("sync_rules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("batch_id", sa.String(32), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("requests", sa.Text, nullable=True),
    )
    op.create_index("ix_sync_runs_rule", "sync_runs", ["rule_id", "created_at"])
    op.create_table(
        "sync_tags",
        sa.Column(
            "rule_id",
            sa.String(32),
            sa.ForeignKey("sync_rules.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("source_repository", sa.String(256), primary_key=True),
        sa.Column("tag", sa.String(128), primary_key=True),
        sa.Column("target_repository", sa.String(256), nullable=False),
        sa.Column("upstream_digest", DIGEST, nullable=True),
        sa.Column("local_digest", DIGEST, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_tags")
    op.drop_index("ix_sync_runs_rule", "sync_runs")
    op.drop_table("sync_runs")
    op.drop_index("ix_sync_rules_next_run", "sync_rules")
    op.drop_table("sync_rules")
