"""The artifact cache on the wire: the ARM resources `registries/cacheRules` and
`registries/credentialSets` (ACR's shapes), and the service's secret store
(`/transship/v1/secrets`, a Transship extension standing in for Key Vault)."""

from __future__ import annotations

from typing import Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field

from transship.wire.base import Answer, DateTime, extensible


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# -- request bodies ----------------------------------------------------------------------------
class UserIdentityBody(_Body):
    principal_id: str | None = Field(default=None, alias="principalId")
    client_id: str | None = Field(default=None, alias="clientId")


class IdentityBody(_Body):
    """A managed identity as ACR's bodies give it (`az acr credential-set create` sends
    `{"type": "SystemAssigned"}`)."""

    type: str | None = Field(default=None, max_length=64)
    user_assigned_identities: dict[str, UserIdentityBody | None] | None = Field(
        default=None, alias="userAssignedIdentities", max_length=16
    )


class CacheRuleCreateProperties(_Body):
    source_repository: str = Field(alias="sourceRepository", min_length=1, max_length=512)
    target_repository: str = Field(alias="targetRepository", min_length=1, max_length=256)
    credential_set_resource_id: str | None = Field(
        default=None, alias="credentialSetResourceId", max_length=1024
    )


class CacheRuleCreateBody(_Body):
    """PUT: create a cache rule, or set its credential set (`az acr cache create`)."""

    properties: CacheRuleCreateProperties
    identity: IdentityBody | None = None


class CacheRuleUpdateProperties(_Body):
    """`credentialSetResourceId`: a credential set of the registry; null removes it;
    absent leaves it."""

    credential_set_resource_id: str | None = Field(
        default=None, alias="credentialSetResourceId", max_length=1024
    )


class CacheRuleUpdateBody(_Body):
    """PATCH: what is given changes (`az acr cache update`)."""

    properties: CacheRuleUpdateProperties | None = None
    identity: IdentityBody | None = None


class AuthCredentialBody(_Body):
    name: str | None = Field(default=None, max_length=64)
    username_secret_identifier: str | None = Field(
        default=None, alias="usernameSecretIdentifier", max_length=1024
    )
    password_secret_identifier: str | None = Field(
        default=None, alias="passwordSecretIdentifier", max_length=1024
    )


class CredentialSetCreateProperties(_Body):
    login_server: str = Field(alias="loginServer", min_length=1, max_length=255)
    auth_credentials: list[AuthCredentialBody] = Field(
        alias="authCredentials", min_length=1, max_length=1
    )


class CredentialSetCreateBody(_Body):
    """PUT: create a credential set, or replace its settings (`az acr credential-set
    create`)."""

    properties: CredentialSetCreateProperties
    identity: IdentityBody | None = None


class CredentialSetUpdateProperties(_Body):
    auth_credentials: list[AuthCredentialBody] | None = Field(
        default=None, alias="authCredentials", min_length=1, max_length=1
    )


class CredentialSetUpdateBody(_Body):
    """PATCH: what is given changes (`az acr credential-set update`)."""

    properties: CredentialSetUpdateProperties | None = None
    identity: IdentityBody | None = None


class SecretBody(_Body):
    """PUT /transship/v1/secrets: set (or replace) one secret."""

    identifier: str = Field(min_length=1, max_length=1024)
    value: str = Field(min_length=1, max_length=25 * 1024, repr=False)


# -- answers -----------------------------------------------------------------------------------
class SystemData(Answer):
    created_at: DateTime
    created_by_type: str = extensible("User", "Application", "ManagedIdentity", "Key")


class CacheRuleProperties(Answer):
    source_repository: str
    target_repository: str
    credential_set_resource_id: str | None
    creation_date: DateTime
    provisioning_state: str = extensible("Succeeded")


class CacheRule(Answer):
    id: str
    name: str
    type: Literal["Microsoft.ContainerRegistry/registries/cacheRules"] = (
        "Microsoft.ContainerRegistry/registries/cacheRules"
    )
    properties: CacheRuleProperties
    system_data: SystemData


class CacheRuleList(Answer):
    value: list[CacheRule]
    next_link: str | MISSING = MISSING


class CredentialHealth(Answer):
    status: str = extensible("Healthy", "Unhealthy")
    error_code: str | MISSING = MISSING
    error_message: str | MISSING = MISSING


class AuthCredential(Answer):
    """One credential: where its username and password are (never the secrets)."""

    name: str = extensible("Credential1")
    username_secret_identifier: str
    password_secret_identifier: str
    credential_health: CredentialHealth


class CredentialSetProperties(Answer):
    login_server: str
    auth_credentials: list[AuthCredential]
    creation_date: DateTime
    provisioning_state: str = extensible("Succeeded")


class Identity(Answer):
    type: str = extensible("SystemAssigned")
    principal_id: str
    tenant_id: str


class CredentialSet(Answer):
    id: str
    name: str
    type: Literal["Microsoft.ContainerRegistry/registries/credentialSets"] = (
        "Microsoft.ContainerRegistry/registries/credentialSets"
    )
    identity: Identity
    properties: CredentialSetProperties
    system_data: SystemData


class CredentialSetList(Answer):
    value: list[CredentialSet]
    next_link: str | MISSING = MISSING


class Secret(Answer):
    """A stored secret: its identifier and times; never its value."""

    identifier: str
    created_at: DateTime
    updated_at: DateTime


class SecretList(Answer):
    value: list[Secret]
