"""Import results: what a succeeded import copied besides the image (the referrers of an
import with includeReferrers), as JSON on its job.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("import_jobs", sa.Column("result", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("import_jobs", "result")
