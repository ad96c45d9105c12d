"""Request bodies of the management API: pydantic models the server validates them with and
clients build them from. Pure values; `transship.api.arm_models.parse_body` turns a
validation error into the ARM envelope."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
)

# JSON's own types, exactly as the OpenAPI document states them (pydantic's lax mode would
# also take "yes" or 1 for a boolean, "5" or true for an integer, and a number or a date
# without offset for a date-time).
JsonBool = Annotated[bool, Strict()]


def _json_integer(value: Any) -> Any:
    if isinstance(value, (str, bool)):
        raise ValueError("must be a JSON integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, such as 2030-01-31T00:00:00Z"
        )
    return value


DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class ImportSourceCredentials(_Body):
    username: str | None = None
    password: str | None = None


class ImportSource(_Body):
    resource_id: str | None = Field(default=None, alias="resourceId")
    registry_uri: str | None = Field(default=None, alias="registryUri")
    credentials: ImportSourceCredentials | None = None
    source_image: str = Field(alias="sourceImage", min_length=1)


class ImportImageParameters(_Body):
    source: ImportSource
    target_tags: list[str] | None = Field(default=None, alias="targetTags")
    untagged_target_repositories: list[str] | None = Field(
        default=None, alias="untaggedTargetRepositories"
    )
    mode: Literal["NoForce", "Force"] = "NoForce"
    # A Transship extension (the az CLI never sends it): answer the plan (200), import nothing.
    dry_run: JsonBool | None = Field(
        default=None,
        alias="dryRun",
        description="Transship extension: plan the import and answer the plan (200) without "
        "importing or writing anything.",
    )
    # Transship extensions (ACR has no such fields; the az CLI never sends them): copy only
    # these platforms of an index. See docs/imports.md, "Platform subsets".
    platforms: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Transship extension: copy only these platforms of an index, each "
        "`os/arch[/variant]` (e.g. `linux/arm64/v8`). Omitted: every platform, as ACR.",
    )
    platform_mode: Literal["sparse", "rewritten"] | None = Field(
        default=None,
        alias="platformMode",
        description="Transship extension, with `platforms`: `sparse` (default) stores the "
        "source index byte-for-byte with only the selected children present; `rewritten` "
        "stores a new index listing only them.",
    )
    include_attestations: JsonBool | None = Field(
        default=None,
        alias="includeAttestations",
        description="Transship extension, with `platforms`: also copy the buildx attestation "
        "manifests of the selected platforms (default false).",
    )
    # Transship extensions: also copy what refers to the copied manifests. See
    # docs/imports.md, "Referrers and signatures".
    include_referrers: JsonBool | None = Field(
        default=None,
        alias="includeReferrers",
        description="Transship extension: also copy, recursively, the referrers of every "
        "copied manifest (OCI 1.1 referrers API or its fallback tag scheme) and cosign's "
        "signatures, attestations and SBOMs (`sha256-<hex>.sig`, `.att`, `.sbom`). "
        "Default false, as ACR.",
    )
    referrer_artifact_types: list[str] | None = Field(
        default=None,
        alias="referrerArtifactTypes",
        max_length=32,
        description="Transship extension, with `includeReferrers`: copy only referrers of "
        "these artifact types (media types, e.g. `application/spdx+json`). Omitted: every "
        "referrer.",
    )


class RegistrySku(_Body):
    name: Literal["Basic", "Standard", "Premium"] = "Premium"


class CheckNameBody(_Body):
    name: str = Field(min_length=1, max_length=256)
    type: Literal["Microsoft.ContainerRegistry/registries"]


class IpRule(_Body):
    action: Literal["Allow"] = "Allow"
    value: str = Field(alias="value", min_length=1, max_length=64)


class NetworkRuleSet(_Body):
    default_action: Literal["Allow", "Deny"] | None = Field(default=None, alias="defaultAction")
    ip_rules: list[IpRule] | None = Field(default=None, alias="ipRules", max_length=200)


class RetentionPolicyBody(_Body):
    status: Literal["enabled", "disabled"] | None = None
    days: JsonInt | None = None


class StatusPolicyBody(_Body):
    status: Literal["enabled", "disabled"] | None = None


class SoftDeletePolicyBody(_Body):
    status: Literal["enabled", "disabled"] | None = None
    retention_days: JsonInt | None = Field(default=None, alias="retentionDays")


class PoliciesBody(_Body):
    retention_policy: RetentionPolicyBody | None = Field(default=None, alias="retentionPolicy")
    quarantine_policy: StatusPolicyBody | None = Field(default=None, alias="quarantinePolicy")
    trust_policy: StatusPolicyBody | None = Field(default=None, alias="trustPolicy")
    export_policy: StatusPolicyBody | None = Field(default=None, alias="exportPolicy")
    soft_delete_policy: SoftDeletePolicyBody | None = Field(default=None, alias="softDeletePolicy")


class RegistryProperties(_Body):
    login_server: str | None = Field(default=None, alias="loginServer")
    admin_user_enabled: JsonBool | None = Field(default=None, alias="adminUserEnabled")
    anonymous_pull_enabled: JsonBool | None = Field(default=None, alias="anonymousPullEnabled")
    public_network_access: Literal["Enabled", "Disabled"] | None = Field(
        default=None, alias="publicNetworkAccess"
    )
    network_rule_set: NetworkRuleSet | None = Field(default=None, alias="networkRuleSet")
    network_rule_bypass_options: Literal["AzureServices", "None"] | None = Field(
        default=None, alias="networkRuleBypassOptions"
    )
    data_endpoint_enabled: JsonBool | None = Field(default=None, alias="dataEndpointEnabled")
    policies: PoliciesBody | None = None


class RegistryBody(_Body):
    location: str | None = None
    sku: RegistrySku | None = None
    properties: RegistryProperties | None = None
    tags: dict[str, str] | None = Field(default=None, max_length=50)


class RegenerateCredentialBody(_Body):
    name: Literal["password", "password2"]


class ScopeMapProperties(_Body):
    description: str = Field(default="", max_length=256)
    actions: list[str] = Field(min_length=1, max_length=500)


class ScopeMapBody(_Body):
    properties: ScopeMapProperties


class TokenProperties(_Body):
    scope_map_id: str = Field(alias="scopeMapId", min_length=1, max_length=1024)
    status: Literal["enabled", "disabled"] = "enabled"


class TokenBody(_Body):
    properties: TokenProperties


class TokenPatchProperties(_Body):
    scope_map_id: str | None = Field(
        default=None, alias="scopeMapId", min_length=1, max_length=1024
    )
    status: Literal["enabled", "disabled"] | None = None


class TokenPatchBody(_Body):
    properties: TokenPatchProperties


class ScopeMapPatchProperties(_Body):
    description: str | None = Field(default=None, max_length=256)
    actions: list[str] | None = Field(default=None, min_length=1, max_length=500)


class ScopeMapPatchBody(_Body):
    properties: ScopeMapPatchProperties


class GenerateCredentialsBody(_Body):
    token_id: str = Field(alias="tokenId", min_length=1, max_length=1024)
    name: Literal["password1", "password2"] | None = None
    expiry: DateTime | None = None


class ResourceGroupBody(_Body):
    location: str = Field(default="local", min_length=1, max_length=64)


class RolePermissionBody(_Body):
    actions: list[str] = Field(default_factory=list, max_length=200)
    not_actions: list[str] = Field(default_factory=list, alias="notActions", max_length=200)
    data_actions: list[str] = Field(default_factory=list, alias="dataActions", max_length=200)
    not_data_actions: list[str] = Field(
        default_factory=list, alias="notDataActions", max_length=200
    )


class RoleDefinitionProperties(_Body):
    role_name: str = Field(alias="roleName", min_length=1, max_length=256)
    description: str = Field(default="", max_length=1024)
    permissions: list[RolePermissionBody] = Field(min_length=1, max_length=20)
    assignable_scopes: list[str] = Field(alias="assignableScopes", min_length=1, max_length=20)


class RoleDefinitionBody(_Body):
    properties: RoleDefinitionProperties


class RoleAssignmentProperties(_Body):
    role_definition_id: str = Field(alias="roleDefinitionId", min_length=1, max_length=1024)
    principal_id: str = Field(alias="principalId", min_length=1, max_length=256)


class RoleAssignmentBody(_Body):
    properties: RoleAssignmentProperties


class TenantBody(_Body):
    display_name: str = Field(alias="displayName", min_length=1, max_length=256)
    subscription_id: str | None = Field(default=None, alias="subscriptionId")


class SubscriptionBody(_Body):
    display_name: str = Field(alias="displayName", min_length=1, max_length=256)
    tenant_id: str | None = Field(default=None, alias="tenantId")


class ServicePrincipalBody(_Body):
    display_name: str = Field(alias="displayName", min_length=1, max_length=256)
    years: JsonInt = Field(default=1, ge=1, le=10)


class CredentialResetBody(_Body):
    append: JsonBool = False
    years: JsonInt = Field(default=1, ge=1, le=10)


class UserBody(_Body):
    user_name: str = Field(alias="userName", min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)
