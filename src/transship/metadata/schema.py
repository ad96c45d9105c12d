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
    false,
    true,
)
from sqlalchemy.engine import Dialect

from transship.oci.digest import Digest


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


class DigestType(TypeDecorator[Digest]):
    """A content digest column: stored as its text (`algorithm:encoded`, up to "sha512:" +
    128 hex), handed back as a parsed `Digest`, so a digest keeps its type from the API
    down to the row. Rows hold only digests that were parsed on the way in; one that no
    longer parses raises DigestError (a damaged database), never passes as text."""

    impl = String(160)
    cache_ok = True

    def process_bind_param(self, value: Digest | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Digest | None:
        return None if value is None else Digest.parse(value)


DIGEST = DigestType()

# ACR's changeable attributes, kept on repositories, tags and manifests (see
# `transship.registry.locks`): what may be done to the row's content. Every row starts
# with all four enabled; only an explicit update turns one off.
CHANGEABLE_ATTRIBUTES = ("delete_enabled", "write_enabled", "read_enabled", "list_enabled")


def changeable_attributes() -> list[Column[bool]]:
    return [
        Column(name, Boolean, nullable=False, server_default=true())
        for name in CHANGEABLE_ATTRIBUTES
    ]


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
    # Immutable per registry incarnation: data-plane tokens are bound to it.
    Column("uid", String(32), nullable=False, unique=True),
    # ARM tags, a JSON object of strings.
    Column("tags", Text, nullable=False, server_default="{}"),
    # ACR's retention policy of untagged manifests (garbage collection applies it).
    Column("retention_enabled", Boolean, nullable=False, server_default=false()),
    Column("retention_days", Integer, nullable=False, server_default="7"),
    Column("retention_updated_at", UtcDateTime(), nullable=True),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    *changeable_attributes(),
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
    *changeable_attributes(),
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

# The children of a sparse index (a platform-subset import stored the source index
# byte-for-byte) left out on purpose: no edge in manifest_references, and reads of them say
# which platform they are. A row goes when its child is imported into the index later.
absent_children = Table(
    "absent_children",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column("index_digest", DIGEST, primary_key=True),
    Column("child_digest", DIGEST, primary_key=True),
    Column("platform", String(255), nullable=False),
    ForeignKeyConstraint(
        ["repository_id", "index_digest"],
        ["manifests.repository_id", "manifests.digest"],
        ondelete="CASCADE",
    ),
    Index("ix_absent_children_child", "repository_id", "child_digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("digest", DIGEST, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    *changeable_attributes(),
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
    # JSON: what a succeeded import copied besides the image (its referrers), else null.
    Column("result", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("lease_owner", String(32), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    # Set while the job waits for an upstream's rate-limit budget (migration 0010).
    Column("waiting_until", UtcDateTime(), nullable=True),
    Column("waiting_for", String(255), nullable=True),
    Index("ix_import_jobs_state", "state"),
    Index("ix_import_jobs_registry", "registry_id", "created_at"),
)

# Blobs an unfinished import has fetched or relies on; garbage collection leaves them alone.
blob_pins = Table(
    "blob_pins",
    metadata,
    Column(
        "job_id", String(32), ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("digest", DIGEST, ForeignKey("blobs.digest"), primary_key=True),
    Index("ix_blob_pins_digest", "digest"),
)

# Manifests an import job starts with, verified by whoever queued it (a pull through a cache
# rule fetched them for its waiting client): the process that claims the job reads them here
# instead of fetching them upstream again. Deleted when the job ends.
job_manifests = Table(
    "job_manifests",
    metadata,
    Column(
        "job_id", String(32), ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("digest", DIGEST, primary_key=True),
    Column("registry_id", Integer, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Index("ix_job_manifests_registry_digest", "registry_id", "digest"),
)

# A batch import (a Transship extension): one ordinary import job per item, so each item is
# claimed, retried, canceled and resumed like any import. `prior_digest` is what the item's
# first target named when the batch was queued (an item whose target already named the
# image it imports, and that fetched nothing, is reported "unchanged").
import_batches = Table(
    "import_batches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

import_batch_items = Table(
    "import_batch_items",
    metadata,
    Column(
        "batch_id",
        String(32),
        ForeignKey("import_batches.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("job_id", String(32), ForeignKey("import_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("prior_digest", DIGEST, nullable=True),
    Index("ix_import_batch_items_job", "job_id"),
)

# -- identity and access ---------------------------------------------------------------------
GUID = String(36)

tenants = Table(
    "tenants",
    metadata,
    Column("id", GUID, primary_key=True),
    Column("display_name", String(256), nullable=False),
    Column("is_root", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", GUID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Names are unique per subscription regardless of case, as in Azure: `name_key` is the
# lowercased name, `name` keeps the spelling it was created with.
resource_groups = Table(
    "resource_groups",
    metadata,
    Column(
        "subscription_id",
        String(64),
        ForeignKey("subscriptions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name_key", String(90), primary_key=True),
    Column("name", String(90), nullable=False),
    Column("location", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Service principals and users. `app_id` is a service principal's client id; users sign in
# with `name` (unique per tenant) and a password whose scrypt hash is `password_hash`.
principals = Table(
    "principals",
    metadata,
    Column("id", GUID, primary_key=True),
    Column("tenant_id", GUID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("app_id", GUID, nullable=True, unique=True),
    Column("name", String(256), nullable=False),
    Column("name_key", String(256), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "kind", "name_key"),
)

principal_secrets = Table(
    "principal_secrets",
    metadata,
    Column("id", GUID, primary_key=True),
    Column("principal_id", GUID, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("hint", String(8), nullable=False),
    Column("display_name", String(256), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_principal_secrets_principal", "principal_id"),
)

# Custom role definitions (built-in roles live in code). `permissions` and
# `assignable_scopes` are JSON.
role_definitions = Table(
    "role_definitions",
    metadata,
    Column("id", GUID, primary_key=True),
    Column("tenant_id", GUID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("name_key", String(256), nullable=False),
    Column("description", Text, nullable=False),
    Column("permissions", Text, nullable=False),
    Column("assignable_scopes", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "name_key"),
)

role_assignments = Table(
    "role_assignments",
    metadata,
    Column("id", GUID, primary_key=True),
    Column("scope", Text, nullable=False),
    Column("principal_id", GUID, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("role_definition_id", GUID, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_role_assignments_principal", "principal_id"),
)

# RSA keys that sign every token the service issues; the private half is sealed with the
# service key. A retired key stays published until the tokens it signed have expired.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_key", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
)

# Per-registry access settings. `admin_passwords` is sealed JSON (ACR hands the admin
# passwords back through listCredentials, so they are encrypted, not hashed).
registry_access = Table(
    "registry_access",
    metadata,
    Column(
        "registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("admin_user_enabled", Boolean, nullable=False, default=False),
    Column("admin_passwords", LargeBinary, nullable=True),
    Column("anonymous_pull", Boolean, nullable=False, default=False),
    Column("public_network_access", String(16), nullable=False, default="Enabled"),
    Column("default_action", String(8), nullable=False, default="Allow"),
    Column("ip_rules", Text, nullable=False, default="[]"),
    Column("bypass", String(16), nullable=False, default="AzureServices"),
)

scope_maps = Table(
    "scope_maps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("actions", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("registry_id", "name"),
)

registry_tokens = Table(
    "registry_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("scope_map_id", Integer, ForeignKey("scope_maps.id"), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("registry_id", "name"),
)

token_passwords = Table(
    "token_passwords",
    metadata,
    Column(
        "token_id", Integer, ForeignKey("registry_tokens.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("name", String(16), primary_key=True),
    Column("secret_hash", Text, nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Webhooks of a registry. Where to call and the headers to send are sealed JSON (a URI can
# carry a key in its query, headers an Authorization): handed back only by getCallbackConfig.
# `signing_secret` (sealed) keys the HMAC each delivery is signed with.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("location", String(64), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("scope", String(255), nullable=False, default=""),
    Column("actions", Text, nullable=False),  # JSON list
    Column("tags", Text, nullable=False, default="{}"),  # JSON object (ARM resource tags)
    Column("callback", LargeBinary, nullable=False),
    Column("signing_secret", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("registry_id", "name"),
)

# The outbox and the delivery log in one: a row is written in the transaction of the change
# that caused the event, delivered (retried) by the webhook loop, and kept afterwards as the
# log `listEvents` shows until pruned by age and count.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),  # the event id
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # the event body, JSON
    Column("state", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_attempt_at", UtcDateTime(), nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_reason", Text, nullable=True),
    Column("response_headers", Text, nullable=True),  # JSON object
    Column("response_body", Text, nullable=True),  # truncated
    Column("error", Text, nullable=True),  # why the last attempt failed without a response
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
)

# The change feed on SQLite (`transship.metadata.changes`): a write bumps its topic's counter
# in its own transaction, and every process polls the few rows. PostgreSQL uses NOTIFY
# instead and leaves the table empty.
change_counters = Table(
    "change_counters",
    metadata,
    Column("topic", String(32), primary_key=True),
    Column("counter", BigInteger, nullable=False),
)

# One upstream rate-limit budget per (upstream host, credential user; "" = anonymous), shared
# by every import and process: what the upstream last announced, counted down by the pulls
# reserved since (`transship.imports.budgets`). Never a secret: user names only.
upstream_budgets = Table(
    "upstream_budgets",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("user", String(255), primary_key=True),
    Column("limit_count", Integer, nullable=True),
    Column("remaining", Integer, nullable=True),
    Column("window_seconds", Integer, nullable=True),
    Column("observed_at", UtcDateTime(), nullable=True),
    Column("resets_at", UtcDateTime(), nullable=True),
    Column("blocked_until", UtcDateTime(), nullable=True),
    Column("pulls", BigInteger, nullable=False, default=0),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Credential sets of a registry (ARM `registries/credentialSets`): the upstream login server
# and the Key Vault secret identifiers of its username and password. Never the secrets: those
# are resolved against `sealed_secrets` when a pull needs them.
credential_sets = Table(
    "credential_sets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("login_server", String(255), nullable=False),
    Column("username_secret_id", String(1024), nullable=False),
    Column("password_secret_id", String(1024), nullable=False),
    # The id of its system-assigned identity as ARM shows it (ACR gives each one).
    Column("principal_id", String(36), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("registry_id", "name"),
)

# Cache rules of a registry (ARM `registries/cacheRules`): a target repository (or a `prefix/*`
# wildcard) of the registry backed by a source repository upstream. One rule per target; a
# rule's credential set cannot be deleted under it (the service refuses, the key backs it).
cache_rules = Table(
    "cache_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("source_repository", String(512), nullable=False),
    Column("target_repository", String(256), nullable=False),
    Column("wildcard", Boolean, nullable=False),
    Column("credential_set_id", Integer, ForeignKey("credential_sets.id"), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("registry_id", "name"),
    UniqueConstraint("registry_id", "target_repository"),
)

# The service's own secret store, standing in for Key Vault: a secret identifier
# (`https://<vault>.vault.azure.net/secrets/<name>[/<version>]`, lower-cased) and its value
# sealed with the service key. Set by operators only; values never leave the service.
sealed_secrets = Table(
    "sealed_secrets",
    metadata,
    Column("identifier", String(1024), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
