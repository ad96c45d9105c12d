"""Frozen rows handed to the layers above."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from transship.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """ACR's retention policy of untagged manifests: when `enabled`, garbage collection
    deletes untagged manifests older than `days` (0: at the next run)."""

    enabled: bool = False
    days: int = 7
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    id: int
    name: str
    login_server: str | None
    subscription_id: str | None
    resource_group: str | None
    is_default: bool
    created_at: datetime
    location: str = "local"
    sku: str = "Premium"
    # Immutable identifier of this registry (a new registry of the same name gets another).
    uid: str = ""
    # ARM tags, sorted by name.
    tags: tuple[tuple[str, str], ...] = ()
    retention: RetentionPolicy = RetentionPolicy()


@dataclass(frozen=True, slots=True)
class ManifestNode:
    digest: Digest
    created_at: datetime
    subject: Digest | None


@dataclass(frozen=True, slots=True)
class ManifestGraph:
    """A repository's manifests, which of them are tagged, its index → child edges, and
    which manifests are locked against deletion."""

    manifests: tuple[ManifestNode, ...]
    tagged: frozenset[Digest]
    edges: tuple[tuple[Digest, Digest], ...]
    locked: frozenset[Digest] = frozenset()


@dataclass(frozen=True, slots=True)
class Attributes:
    """ACR's changeable attributes of a repository, tag or manifest: whether its content may
    be deleted, overwritten, read (pulled) and listed. All true unless someone locked it."""

    delete_enabled: bool = True
    write_enabled: bool = True
    read_enabled: bool = True
    list_enabled: bool = True


UNLOCKED = Attributes()


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: Digest
    media_type: str
    content: bytes
    # False when the manifest, the tag it was asked by, or its repository is not readable.
    readable: bool = True


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    digest: Digest
    media_type: str
    size: int
    artifact_type: str | None
    annotations: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    registry_id: int
    repository: str
    offset: int
    algorithm: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ManifestReference:
    digest: Digest
    is_manifest: bool


@dataclass(frozen=True, slots=True)
class TagRecord:
    name: str
    digest: Digest
    created_at: datetime
    updated_at: datetime
    attributes: Attributes = UNLOCKED


@dataclass(frozen=True, slots=True)
class ImportJobRecord:
    id: str
    registry_id: int
    request: str
    credentials: bytes | None
    state: str
    bytes_total: int
    bytes_done: int
    blobs_total: int
    blobs_done: int
    manifests_total: int
    manifests_done: int
    bytes_fetched: int
    error_code: str | None
    error_message: str | None
    error_step: str | None
    error_object: str | None
    error_upstream_status: int | None
    cancel_requested: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    # While the job waits for an upstream's rate-limit budget: until when, and for which
    # upstream host (None otherwise).
    waiting_until: datetime | None = None
    waiting_for: str | None = None
    # JSON: what a succeeded import copied besides the image (see ImportResult), else None.
    result: str | None = None


@dataclass(frozen=True, slots=True)
class JobProgress:
    bytes_total: int = 0
    bytes_done: int = 0
    blobs_total: int = 0
    blobs_done: int = 0
    manifests_total: int = 0
    manifests_done: int = 0
    bytes_fetched: int = 0


@dataclass(frozen=True, slots=True)
class JobFailure:
    code: str
    message: str
    step: str | None = None
    obj: str | None = None
    upstream_status: int | None = None


# -- identity and access ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    display_name: str
    is_root: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    id: str
    tenant_id: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ResourceGroupRecord:
    subscription_id: str
    name: str
    location: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    """A service principal (`kind` "ServicePrincipal", signs in with `app_id` and a secret)
    or a user ("User", signs in with `name` and a password)."""

    id: str
    tenant_id: str
    kind: str
    app_id: str | None
    name: str
    password_hash: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SecretRecord:
    id: str
    principal_id: str
    secret_hash: str
    hint: str
    display_name: str | None
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RoleDefinitionRecord:
    id: str
    tenant_id: str
    name: str
    description: str
    permissions: str  # JSON list of permission blocks
    assignable_scopes: str  # JSON list of scopes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RoleAssignmentRecord:
    id: str
    scope: str
    principal_id: str
    role_definition_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    private_key: bytes  # sealed PEM
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class RegistryAccessRecord:
    registry_id: int
    admin_user_enabled: bool = False
    admin_passwords: bytes | None = None  # sealed JSON
    anonymous_pull: bool = False
    public_network_access: str = "Enabled"
    default_action: str = "Allow"
    ip_rules: str = "[]"  # JSON list of CIDRs
    bypass: str = "AzureServices"


@dataclass(frozen=True, slots=True)
class ScopeMapRecord:
    id: int
    registry_id: int
    name: str
    description: str
    actions: str  # JSON list of scope-map actions
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RegistryTokenRecord:
    id: int
    registry_id: int
    name: str
    scope_map_id: int
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenPasswordRecord:
    token_id: int
    name: str
    secret_hash: str
    expires_at: datetime | None
    created_at: datetime


# -- upstream rate limits -----------------------------------------------------------------
ANONYMOUS = ""  # the credential user of a budget spent without credentials


@dataclass(frozen=True, slots=True)
class BudgetKey:
    """Whose budget: the upstream host (as the import named it, lower case, with its port)
    and the credential's user name (`ANONYMOUS` without credentials, or for an identity
    token). Never a secret."""

    host: str
    user: str = ANONYMOUS


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget as last recorded. `observed_at`: when the upstream last announced it;
    `resets_at`: the end of the window announced then (the upstream's count starts afresh),
    if it named one; `remaining` counts down with each pull Transship reserves until the
    next announcement corrects it; `blocked_until`: until when a 429 stops pulls; `pulls`:
    manifest GETs Transship made against it, all processes together."""

    key: BudgetKey
    limit: int | None
    remaining: int | None
    window_seconds: int | None
    observed_at: datetime | None
    resets_at: datetime | None
    blocked_until: datetime | None
    pulls: int

    def remaining_at(self, now: datetime) -> int | None:
        """Pulls left at `now`: the last announced count, the full limit once its window
        has passed, None when the upstream never said."""
        reset = self.resets_at
        if reset is not None and now >= reset and self.limit is not None:
            return self.limit
        return self.remaining

    def wait_until(self, now: datetime) -> datetime | None:
        """Until when a pull must wait at `now`, or None when it may go ahead: a 429's
        Retry-After still running, or a spent budget until its window ends (a spent budget
        without a window is left to the upstream to refuse)."""
        if self.blocked_until is not None and self.blocked_until > now:
            return self.blocked_until
        if self.remaining is not None and self.remaining <= 0:
            reset = self.resets_at
            if reset is not None and reset > now:
                return reset
        return None
