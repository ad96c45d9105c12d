"""The metadata schema. Alembic migrations in `migrations/` create and evolve it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are instants: bound as UTC, read back timezone-aware on both databases
    (SQLite keeps text without an offset, so a non-UTC value would compare wrongly)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass timezone-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Stable constraint names so migrations can refer to them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DIGEST = String(160)  # "sha512:" + 128 hex fits

registries = Table(
    "registries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("login_server", String(255), nullable=True, unique=True),
    Column("subscription_id", String(64), nullable=True),
    Column("resource_group", String(90), nullable=True),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("location", String(64), nullable=False, server_default="local"),
    Column("sku", String(16), nullable=False, server_default="Premium"),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("registry_id", "name"),
)

# Every committed blob of the store. A row exists only while the file does.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Which repository may see which blob. The foreign key to blobs (no cascade) is what keeps
# garbage collection from deleting a blob that a concurrent push is linking.
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", DIGEST, ForeignKey("blobs.digest"), primary_key=True),
    Column("linked_at", UtcDateTime(), nullable=False),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", DIGEST, primary_key=True),
    Column("media_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject_digest", DIGEST, nullable=True),
    Column("annotations", Text, nullable=True),  # JSON object, for referrer descriptors
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
)

# Edges from a manifest to what it needs: blobs (config, layers) and child manifests.
manifest_references = Table(
    "manifest_references",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column("manifest_digest", DIGEST, primary_key=True),
    Column("child_digest", DIGEST, primary_key=True),
    Column("is_manifest", Boolean, nullable=False),
    ForeignKeyConstraint(
        ["repository_id", "manifest_digest"],
        ["manifests.repository_id", "manifests.digest"],
        ondelete="CASCADE",
    ),
    Index("ix_manifest_references_child", "repository_id", "child_digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("digest", DIGEST, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(
        ["repository_id", "digest"], ["manifests.repository_id", "manifests.digest"]
    ),
    ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
    Index("ix_tags_digest", "repository_id", "digest"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("repository", String(255), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Service-wide values created at first start (default subscription, credential hashes…).
service_state = Table(
    "service_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

import_jobs = Table(
    "import_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("request", Text, nullable=False),  # JSON, credentials removed
    Column("credentials", LargeBinary, nullable=True),  # encrypted with the service key
    Column("state", String(16), nullable=False),
    Column("bytes_total", BigInteger, nullable=False, default=0),
    Column("bytes_done", BigInteger, nullable=False, default=0),
    Column("blobs_total", Integer, nullable=False, default=0),
    Column("blobs_done", Integer, nullable=False, default=0),
    Column("manifests_total", Integer, nullable=False, default=0),
    Column("manifests_done", Integer, nullable=False, default=0),
    Column("bytes_fetched", BigInteger, nullable=False, default=0),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("error_step", String(16), nullable=True),
    Column("error_object", Text, nullable=True),
    Column("error_upstream_status", Integer, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("lease_owner", String(32), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    Index("ix_import_jobs_state", "state"),
    Index("ix_import_jobs_registry", "registry_id", "created_at"),
)

# Blobs an unfinished import has fetched or relies on; garbage collection leaves them alone.
blob_pins = Table(
    "blob_pins",
    metadata,
    Column("job_id", String(32), ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", DIGEST, ForeignKey("blobs.digest"), primary_key=True),
    Index("ix_blob_pins_digest", "digest"),
)
