"""Answers of the management API (ARM shapes): registries and their import operations,
scope maps and tokens, tenants, subscriptions, resources and resource groups, the
directory's principals, role definitions and assignments, and the ARM error envelope."""

from __future__ import annotations

from typing import Literal

from pydantic import MISSING, Field, NonNegativeInt

from transship.wire.base import Answer, DateTime, extensible

PrincipalKind = Literal["ServicePrincipal", "User"]


# -- errors ----------------------------------------------------------------------------------
class ArmErrorDetail(Answer):
    code: str
    message: str


class ArmErrorInfo(Answer):
    code: str
    message: str
    target: str | MISSING = MISSING
    details: list[ArmErrorDetail] | MISSING = MISSING


class ArmError(Answer):
    """The ARM error envelope."""

    error: ArmErrorInfo


# -- the service -----------------------------------------------------------------------------
class Caller(Answer):
    object_id: str
    kind: PrincipalKind
    name: str
    app_id: str | None


class ServiceInfo(Answer):
    """The caller's tenant, its first subscription (null if it has none), the service's
    default resource group and location, and who the caller is."""

    version: str
    tenant_id: str
    subscription_id: str | None
    resource_group: str
    location: str
    login_server_suffix: str
    caller: Caller


# -- registries ------------------------------------------------------------------------------
class Sku(Answer):
    name: str = extensible("Basic", "Standard", "Premium")
    tier: str


class IpRuleInfo(Answer):
    action: Literal["Allow"] = "Allow"
    value: str


class NetworkRules(Answer):
    default_action: str = extensible("Allow", "Deny")
    ip_rules: list[IpRuleInfo]


class RetentionPolicyInfo(Answer):
    """Retention of untagged manifests: garbage collection deletes those older than `days`
    while `status` is enabled."""

    days: int
    last_updated_time: DateTime | None
    status: Literal["enabled", "disabled"]


class StatusPolicy(Answer):
    """A policy Transship reports in its one state (changing it is refused)."""

    status: Literal["enabled", "disabled"]


class TrustPolicyInfo(Answer):
    type: Literal["Notary"] = "Notary"
    status: Literal["disabled"] = "disabled"


class SoftDeletePolicyInfo(Answer):
    retention_days: int = 7
    last_updated_time: DateTime | None = None
    status: Literal["disabled"] = "disabled"


class Policies(Answer):
    """ACR's registry policies: retention is Transship's; quarantine, content trust and soft
    delete are always disabled, export always enabled (anything that can pull may copy)."""

    quarantine_policy: StatusPolicy = Field(default_factory=lambda: StatusPolicy(status="disabled"))
    trust_policy: TrustPolicyInfo = Field(default_factory=TrustPolicyInfo)
    retention_policy: RetentionPolicyInfo
    export_policy: StatusPolicy = Field(default_factory=lambda: StatusPolicy(status="enabled"))
    soft_delete_policy: SoftDeletePolicyInfo = Field(default_factory=SoftDeletePolicyInfo)


class RegistryInfo(Answer):
    login_server: str | None
    creation_date: DateTime | None
    provisioning_state: Literal["Succeeded"] = "Succeeded"
    admin_user_enabled: bool
    anonymous_pull_enabled: bool
    public_network_access: str = extensible("Enabled", "Disabled")
    network_rule_bypass_options: str = extensible("AzureServices", "None")
    network_rule_set: NetworkRules
    zone_redundancy: Literal["Enabled", "Disabled"] = "Disabled"
    data_endpoint_enabled: Literal[False] = False
    data_endpoint_host_names: list[str] = Field(default_factory=list, max_length=0)
    policies: Policies


class Registry(Answer):
    """ACR's Registry resource."""

    id: str
    name: str
    type: Literal["Microsoft.ContainerRegistry/registries"] = (
        "Microsoft.ContainerRegistry/registries"
    )
    location: str
    tags: dict[str, str] = Field(default_factory=dict)
    sku: Sku
    properties: RegistryInfo


class RegistryList(Answer):
    value: list[Registry]


class NameAvailability(Answer):
    """checkNameAvailability's answer: the login server a registry of that name would
    have, or `reason` (Invalid or AlreadyExists) and `message` when it is not available."""

    name_available: bool
    available_login_server_name: str | MISSING = MISSING
    reason: str | MISSING = MISSING
    message: str | MISSING = MISSING


class UsageInfo(Answer):
    name: str = extensible("Size", "Webhooks", "ScopeMaps", "Tokens")
    limit: NonNegativeInt
    current_value: NonNegativeInt
    unit: str = extensible("Bytes", "Count")


class UsageList(Answer):
    """A registry's usages (listUsages): its storage, scope maps and tokens with limits."""

    value: list[UsageInfo]


class ReplicationList(Answer):
    """A registry's replications: none (Transship does not replicate)."""

    value: list[object] = Field(default_factory=list, max_length=0)


class AdminPassword(Answer):
    name: str = extensible("password", "password2")
    value: str


class RegistryCredentials(Answer):
    """The admin user: its name (the registry's) and both passwords."""

    username: str
    passwords: list[AdminPassword]


# -- import operations -----------------------------------------------------------------------
class ImportProgress(Answer):
    bytes_total: NonNegativeInt
    bytes_done: NonNegativeInt
    bytes_fetched: NonNegativeInt
    blobs_total: NonNegativeInt
    blobs_done: NonNegativeInt
    manifests_total: NonNegativeInt
    manifests_done: NonNegativeInt


class ImportFailure(Answer):
    step: str | None
    object: str | None
    upstream_status: int | None


class RateLimitWait(Answer):
    """An import waiting for an upstream's rate-limit budget (a Transship extension)."""

    host: str
    until: DateTime
    message: str


class ImportReferrerTag(Answer):
    tag: str
    digest: str


class ImportReferrers(Answer):
    """What an import with includeReferrers copied: the referrer manifests (signatures,
    SBOMs, attestations…) and cosign's tags it set on them."""

    count: NonNegativeInt
    digests: list[str]
    tags: list[ImportReferrerTag]


class ImportOperationInfo(Answer):
    registry: str
    state: str = extensible("queued", "running", "succeeded", "failed", "canceled")
    source: str
    target_tags: list[str]
    untagged_target_repositories: list[str]
    mode: Literal["NoForce", "Force"]
    attempts: NonNegativeInt
    progress: ImportProgress
    failure: ImportFailure | MISSING = MISSING
    # Present while the import waits for an upstream's rate-limit budget.
    waiting: RateLimitWait | MISSING = MISSING
    # Transship extensions, present only for a platform-subset import.
    platforms: list[str] | MISSING = MISSING
    platform_mode: Literal["sparse", "rewritten"] | MISSING = MISSING
    include_attestations: bool | MISSING = MISSING
    # Transship extensions, present only for an import with includeReferrers.
    include_referrers: bool | MISSING = MISSING
    referrer_artifact_types: list[str] | MISSING = MISSING
    # Once such an import succeeded: what it copied.
    referrers: ImportReferrers | MISSING = MISSING


class OperationError(Answer):
    code: str
    message: str | None


class OperationStatus(Answer):
    """The status of an import operation (ARM's Azure-AsyncOperation body)."""

    id: str
    name: str
    status: str = extensible("InProgress", "Succeeded", "Failed", "Canceled")
    start_time: DateTime
    end_time: DateTime | MISSING = MISSING
    error: OperationError | MISSING = MISSING
    properties: ImportOperationInfo


class OperationStatusList(Answer):
    value: list[OperationStatus]
    next_link: str | MISSING = MISSING


class OperationPending(Answer):
    """An operation still queued or running, as ACR answers its operationResults URL (ACR
    also lists each target tag as a key, "Pending"; clients read neither)."""

    status: Literal["Accepted"] = "Accepted"


class OperationResult(Answer):
    """An operation that succeeded, as ACR answers its operationResults URL at the end."""

    status: Literal["Succeeded"] = "Succeeded"


# -- scope maps and tokens -------------------------------------------------------------------
class ScopeMapInfo(Answer):
    description: str
    type: Literal["SystemDefined", "UserDefined"]
    creation_date: DateTime | None
    provisioning_state: Literal["Succeeded"] = "Succeeded"
    actions: list[str]


class ScopeMap(Answer):
    """A scope map: the repository actions a registry token may take."""

    id: str
    name: str
    type: Literal["Microsoft.ContainerRegistry/registries/scopeMaps"] = (
        "Microsoft.ContainerRegistry/registries/scopeMaps"
    )
    properties: ScopeMapInfo


class ScopeMapList(Answer):
    value: list[ScopeMap]


class TokenPasswordInfo(Answer):
    name: str = extensible("password1", "password2")
    creation_time: DateTime
    expiry: DateTime | None


class TokenCredentials(Answer):
    passwords: list[TokenPasswordInfo]


class TokenInfo(Answer):
    creation_date: DateTime | None
    provisioning_state: Literal["Succeeded"] = "Succeeded"
    scope_map_id: str
    credentials: TokenCredentials
    status: Literal["enabled", "disabled"]


class Token(Answer):
    """A registry token; its passwords are named here, never shown."""

    id: str
    name: str
    type: Literal["Microsoft.ContainerRegistry/registries/tokens"] = (
        "Microsoft.ContainerRegistry/registries/tokens"
    )
    properties: TokenInfo


class TokenList(Answer):
    value: list[Token]


class GeneratedPassword(Answer):
    name: str = extensible("password1", "password2")
    value: str
    expiry: DateTime | None


class GeneratedCredentials(Answer):
    """New passwords of a token (its name is the user name), shown this once."""

    username: str
    passwords: list[GeneratedPassword]


# -- tenancy ---------------------------------------------------------------------------------
class Tenant(Answer):
    id: str
    tenant_id: str
    display_name: str
    tenant_category: Literal["Home"] = "Home"


class TenantList(Answer):
    value: list[Tenant]


class SubscriptionPolicies(Answer):
    location_placement_id: str = "Public_2014-09-01"
    quota_id: str = "Transship"
    spending_limit: str = "Off"


class Subscription(Answer):
    id: str
    subscription_id: str
    tenant_id: str
    display_name: str
    state: Literal["Enabled"] = "Enabled"
    subscription_policies: SubscriptionPolicies = Field(default_factory=SubscriptionPolicies)
    authorization_source: str = "RoleBased"
    managed_by_tenants: list[str] = Field(default_factory=list, max_length=0)


class SubscriptionList(Answer):
    value: list[Subscription]


class GenericSku(Answer):
    name: str
    tier: str


class GenericResource(Answer):
    id: str
    name: str
    type: str
    location: str
    tags: dict[str, str]
    sku: GenericSku


class GenericResourceList(Answer):
    value: list[GenericResource]


class ResourceGroupInfo(Answer):
    provisioning_state: Literal["Succeeded"] = "Succeeded"


class ResourceGroup(Answer):
    id: str
    name: str
    type: Literal["Microsoft.Resources/resourceGroups"] = "Microsoft.Resources/resourceGroups"
    location: str
    properties: ResourceGroupInfo = Field(default_factory=ResourceGroupInfo)


class ResourceGroupList(Answer):
    value: list[ResourceGroup]


# -- the directory ---------------------------------------------------------------------------
class SecretInfo(Answer):
    key_id: str
    hint: str
    end_date_time: DateTime


class Principal(Answer):
    """A service principal (with `appId`, its client id) or a user (with `userName`) of the
    directory API. `password` and `credential` come only with a secret just issued;
    `passwordCredentials` (never the secrets) only when a service principal is read."""

    id: str
    object_id: str
    tenant_id: str
    kind: PrincipalKind
    display_name: str
    app_id: str | MISSING | None = MISSING
    user_name: str | MISSING = MISSING
    password: str | MISSING = MISSING
    credential: SecretInfo | MISSING = MISSING
    password_credentials: list[SecretInfo] | MISSING = MISSING


class PrincipalWithSecret(Principal):
    """A service principal with the secret just issued, shown this once."""

    app_id: str | None
    password: str
    credential: SecretInfo


class PrincipalList(Answer):
    value: list[Principal]


class CreatedTenant(Answer):
    """A new tenant, its subscription and default group, and its owner service principal."""

    tenant_id: str
    display_name: str
    subscription_id: str
    resource_group: str
    owner: PrincipalWithSecret


# -- authorization ---------------------------------------------------------------------------
class PermissionInfo(Answer):
    actions: list[str]
    not_actions: list[str]
    data_actions: list[str]
    not_data_actions: list[str]


class RoleDefinitionInfo(Answer):
    role_name: str
    description: str
    type: Literal["BuiltInRole", "CustomRole"]
    permissions: list[PermissionInfo]
    assignable_scopes: list[str]


class RoleDefinition(Answer):
    id: str
    name: str
    type: Literal["Microsoft.Authorization/roleDefinitions"] = (
        "Microsoft.Authorization/roleDefinitions"
    )
    properties: RoleDefinitionInfo


class RoleDefinitionList(Answer):
    value: list[RoleDefinition]


class RoleAssignmentInfo(Answer):
    role_definition_id: str
    principal_id: str
    principal_type: Literal["ServicePrincipal", "User", "Unknown"]
    scope: str
    created_on: DateTime
    updated_on: DateTime


class RoleAssignment(Answer):
    id: str
    name: str
    type: Literal["Microsoft.Authorization/roleAssignments"] = (
        "Microsoft.Authorization/roleAssignments"
    )
    properties: RoleAssignmentInfo


class RoleAssignmentList(Answer):
    value: list[RoleAssignment]


# -- upstream rate-limit budgets (a Transship extension) -------------------------------------
class UpstreamBudget(Answer):
    """One upstream's rate-limit budget for one credential user (null: anonymous), as
    announced by the upstream and counted down by the pulls made since. `remaining` and
    `limit` are null until the upstream announces them; `blocked_until` is set while a
    429 or a spent budget stops pulls."""

    host: str
    user: str | None
    limit: int | None
    remaining: int | None
    window_seconds: int | None
    observed_at: DateTime | None
    resets_at: DateTime | None
    blocked_until: DateTime | None
    pulls: NonNegativeInt


class UpstreamBudgetList(Answer):
    value: list[UpstreamBudget]
