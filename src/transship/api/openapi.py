"""The OpenAPI 3.1 document of the management API (ARM shapes), the identity endpoints
(Entra-style token service, OIDC discovery, cloud metadata), the data-plane token endpoints
(`/oauth2`) and the ACR data plane (`/acr/v1`), built in code and served unauthenticated at
`GET /openapi.json`.

Request bodies come from the pydantic models that validate them (`arm_models`), and paths
from the route templates of `arm`, so the document cannot drift from what the server
checks. `tests/unit/api/test_openapi.py` holds it to every route of the application, and
`tests/integration/test_schemathesis.py` holds the server to it.

Role definitions and assignments are routed with one `{scope}` pattern that spans several
path segments; OpenAPI path parameters cannot hold `/`, so the document spells out each
scope the pattern accepts (the service root, a tenant's root management group, a
subscription, a resource group and a registry).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from transship import __version__
from transship.api import arm
from transship.api.arm_models import (
    CredentialResetBody,
    GenerateCredentialsBody,
    ImportImageParameters,
    RegenerateCredentialBody,
    RegistryBody,
    ResourceGroupBody,
    RoleAssignmentBody,
    RoleDefinitionBody,
    ScopeMapBody,
    ScopeMapPatchBody,
    ServicePrincipalBody,
    SubscriptionBody,
    TenantBody,
    TokenBody,
    TokenPatchBody,
    UserBody,
)
from transship.oci.reference import MAX_REPOSITORY_LENGTH, REPOSITORY_PATTERN

OPENAPI_PATH = "/openapi.json"
# The request models of the management API: component name → pydantic model.
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        ImportImageParameters,
        RegistryBody,
        RegenerateCredentialBody,
        ScopeMapBody,
        ScopeMapPatchBody,
        TokenBody,
        TokenPatchBody,
        GenerateCredentialsBody,
        ResourceGroupBody,
        TenantBody,
        SubscriptionBody,
        ServicePrincipalBody,
        UserBody,
        CredentialResetBody,
        RoleDefinitionBody,
        RoleAssignmentBody,
    )
}
_REF = "#/components/schemas/{model}"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# Security requirements: the management API's (the document's default), the data plane's,
# and none.
MANAGEMENT_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"servicePrincipal": []}]
REGISTRY_SECURITY: list[dict[str, list[str]]] = [{"registryBasic": []}, {"registryBearer": []}]
ANONYMOUS: list[dict[str, list[str]]] = []
_PROVIDER = arm.PROVIDER
_AUTHZ = "providers/Microsoft.Authorization"


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(
    properties: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any
) -> dict[str, Any]:
    """An object schema; every property is required unless `required` says otherwise."""
    names = list(properties) if required is None else list(required)
    return {"type": "object", "properties": properties, "required": names, **extra}


def _list_of(name: str, **extra: Any) -> dict[str, Any]:
    """ARM's list shape: `{"value": [...]}`."""
    return _obj({"value": {"type": "array", "items": _ref(name)}, **extra}, ("value",))


_STRING = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_BOOL = {"type": "boolean"}
_DATE_TIME = {"type": "string", "format": "date-time"}
_STRINGS = {"type": "array", "items": _STRING}
_SUCCEEDED = {"const": "Succeeded"}


def request_schemas() -> dict[str, Any]:
    """The JSON Schemas of the request models (pydantic's, by alias), with nested models
    hoisted to top-level components."""
    schemas: dict[str, Any] = {}
    for name, model in REQUEST_MODELS.items():
        schema = model.model_json_schema(by_alias=True, ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


def _arm_response_schemas() -> dict[str, Any]:
    """Bodies of the management API's answers (ARM resources and lists)."""
    secret = _obj({"keyId": _STRING, "hint": _STRING, "endDateTime": _DATE_TIME})
    principal_kind = {"enum": ["ServicePrincipal", "User"]}
    return {
        "ArmError": _obj(
            {
                "error": _obj(
                    {
                        "code": _STRING,
                        "message": _STRING,
                        "target": _STRING,
                        "details": {
                            "type": "array",
                            "items": _obj({"code": _STRING, "message": _STRING}),
                        },
                    },
                    ("code", "message"),
                )
            },
            description="The ARM error envelope.",
        ),
        "ServiceInfo": _obj(
            {
                "version": _STRING,
                "tenantId": _STRING,
                "subscriptionId": _nullable(_STRING),
                "resourceGroup": _STRING,
                "location": _STRING,
                "loginServerSuffix": _STRING,
                "caller": _obj(
                    {
                        "objectId": _STRING,
                        "kind": principal_kind,
                        "name": _STRING,
                        "appId": _nullable(_STRING),
                    }
                ),
            },
            description="The caller's tenant, its first subscription (null if it has none), the service's "
            "default resource group and location, and who the caller is.",
        ),
        "Registry": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "type": {"const": "Microsoft.ContainerRegistry/registries"},
                "location": _STRING,
                "tags": {"type": "object", "additionalProperties": _STRING},
                "sku": _obj({"name": {"enum": ["Basic", "Standard", "Premium"]}, "tier": _STRING}),
                "properties": _obj(
                    {
                        "loginServer": _nullable(_STRING),
                        "creationDate": _nullable(_DATE_TIME),
                        "provisioningState": _SUCCEEDED,
                        "adminUserEnabled": _BOOL,
                        "anonymousPullEnabled": _BOOL,
                        "publicNetworkAccess": {"enum": ["Enabled", "Disabled"]},
                        "networkRuleBypassOptions": {"enum": ["AzureServices", "None"]},
                        "networkRuleSet": _obj(
                            {
                                "defaultAction": {"enum": ["Allow", "Deny"]},
                                "ipRules": {
                                    "type": "array",
                                    "items": _obj({"action": {"const": "Allow"}, "value": _STRING}),
                                },
                            }
                        ),
                        "zoneRedundancy": {"enum": ["Enabled", "Disabled"]},
                        "dataEndpointEnabled": _BOOL,
                        "policies": {"type": "object"},
                    }
                ),
            },
            description="ACR's Registry resource.",
        ),
        "RegistryList": _list_of("Registry"),
        "RegistryCredentials": _obj(
            {
                "username": _STRING,
                "passwords": {
                    "type": "array",
                    "items": _obj({"name": {"enum": ["password", "password2"]}, "value": _STRING}),
                },
            },
            description="The admin user: its name (the registry's) and both passwords.",
        ),
        "OperationStatus": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "status": {"enum": ["InProgress", "Succeeded", "Failed", "Canceled"]},
                "startTime": _DATE_TIME,
                "endTime": _DATE_TIME,
                "error": _obj({"code": _STRING, "message": _nullable(_STRING)}),
                "properties": _obj(
                    {
                        "registry": _STRING,
                        "state": {"enum": ["queued", "running", "succeeded", "failed", "canceled"]},
                        "source": _STRING,
                        "targetTags": _STRINGS,
                        "untaggedTargetRepositories": _STRINGS,
                        "mode": {"enum": ["NoForce", "Force"]},
                        "attempts": _INT,
                        "progress": _obj(
                            {
                                name: _INT
                                for name in (
                                    "bytesTotal",
                                    "bytesDone",
                                    "bytesFetched",
                                    "blobsTotal",
                                    "blobsDone",
                                    "manifestsTotal",
                                    "manifestsDone",
                                )
                            }
                        ),
                        "failure": _obj(
                            {
                                "step": _nullable(_STRING),
                                "object": _nullable(_STRING),
                                "upstreamStatus": _nullable({"type": "integer"}),
                            }
                        ),
                    },
                    (
                        "registry",
                        "state",
                        "source",
                        "targetTags",
                        "untaggedTargetRepositories",
                        "mode",
                        "attempts",
                        "progress",
                    ),
                ),
            },
            ("id", "name", "status", "startTime", "properties"),
            description="The status of an import operation (ARM's Azure-AsyncOperation body).",
        ),
        "OperationStatusList": _list_of("OperationStatus", nextLink=_STRING),
        "OperationResult": {
            "type": "object",
            "maxProperties": 0,
            "description": "An operation that succeeded.",
        },
        "ScopeMap": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "type": {"const": "Microsoft.ContainerRegistry/registries/scopeMaps"},
                "properties": _obj(
                    {
                        "description": _STRING,
                        "type": {"enum": ["SystemDefined", "UserDefined"]},
                        "creationDate": _nullable(_DATE_TIME),
                        "provisioningState": _SUCCEEDED,
                        "actions": _STRINGS,
                    }
                ),
            },
            description="A scope map: the repository actions a registry token may take.",
        ),
        "ScopeMapList": _list_of("ScopeMap"),
        "Token": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "type": {"const": "Microsoft.ContainerRegistry/registries/tokens"},
                "properties": _obj(
                    {
                        "creationDate": _nullable(_DATE_TIME),
                        "provisioningState": _SUCCEEDED,
                        "scopeMapId": _STRING,
                        "credentials": _obj(
                            {
                                "passwords": {
                                    "type": "array",
                                    "items": _obj(
                                        {
                                            "name": {"enum": ["password1", "password2"]},
                                            "creationTime": _DATE_TIME,
                                            "expiry": _nullable(_DATE_TIME),
                                        }
                                    ),
                                }
                            }
                        ),
                        "status": {"enum": ["enabled", "disabled"]},
                    }
                ),
            },
            description="A registry token; its passwords are named here, never shown.",
        ),
        "TokenList": _list_of("Token"),
        "GeneratedCredentials": _obj(
            {
                "username": _STRING,
                "passwords": {
                    "type": "array",
                    "items": _obj(
                        {
                            "name": {"enum": ["password1", "password2"]},
                            "value": _STRING,
                            "expiry": _nullable(_DATE_TIME),
                        }
                    ),
                },
            },
            description="New passwords of a token (its name is the user name), shown this once.",
        ),
        "Tenant": _obj(
            {
                "id": _STRING,
                "tenantId": _STRING,
                "displayName": _STRING,
                "tenantCategory": {"const": "Home"},
            }
        ),
        "TenantList": _list_of("Tenant"),
        "Subscription": _obj(
            {
                "id": _STRING,
                "subscriptionId": _STRING,
                "tenantId": _STRING,
                "displayName": _STRING,
                "state": {"const": "Enabled"},
                "subscriptionPolicies": _obj(
                    {"locationPlacementId": _STRING, "quotaId": _STRING, "spendingLimit": _STRING}
                ),
                "authorizationSource": _STRING,
                "managedByTenants": {"type": "array", "maxItems": 0},
            }
        ),
        "SubscriptionList": _list_of("Subscription"),
        "GenericResource": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "type": _STRING,
                "location": _STRING,
                "tags": {"type": "object", "additionalProperties": _STRING},
                "sku": _obj({"name": _STRING, "tier": _STRING}),
            }
        ),
        "GenericResourceList": _list_of("GenericResource"),
        "ResourceGroup": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "type": {"const": "Microsoft.Resources/resourceGroups"},
                "location": _STRING,
                "properties": _obj({"provisioningState": _SUCCEEDED}),
            }
        ),
        "ResourceGroupList": _list_of("ResourceGroup"),
        "Principal": _obj(
            {
                "id": _STRING,
                "objectId": _STRING,
                "tenantId": _STRING,
                "kind": principal_kind,
                "displayName": _STRING,
                "appId": _nullable(_STRING),
                "userName": _STRING,
                "password": _STRING,
                "credential": secret,
                "passwordCredentials": {"type": "array", "items": secret},
            },
            ("id", "objectId", "tenantId", "kind", "displayName"),
            description="A service principal (with `appId`, its client id) or a user (with `userName`) "
            "of the directory API. `password` and `credential` come only with a secret just issued; "
            "`passwordCredentials` (never the secrets) only when a service principal is read.",
        ),
        "PrincipalWithSecret": {
            "allOf": [_ref("Principal"), {"required": ["appId", "password", "credential"]}],
            "description": "A service principal with the secret just issued, shown this once.",
        },
        "PrincipalList": _list_of("Principal"),
        "CreatedTenant": _obj(
            {
                "tenantId": _STRING,
                "displayName": _STRING,
                "subscriptionId": _STRING,
                "resourceGroup": _STRING,
                "owner": _ref("PrincipalWithSecret"),
            },
            description="A new tenant, its subscription and default group, and its owner service principal.",
        ),
        "RoleDefinition": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "type": {"const": "Microsoft.Authorization/roleDefinitions"},
                "properties": _obj(
                    {
                        "roleName": _STRING,
                        "description": _STRING,
                        "type": {"enum": ["BuiltInRole", "CustomRole"]},
                        "permissions": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "actions": _STRINGS,
                                    "notActions": _STRINGS,
                                    "dataActions": _STRINGS,
                                    "notDataActions": _STRINGS,
                                }
                            ),
                        },
                        "assignableScopes": _STRINGS,
                    }
                ),
            }
        ),
        "RoleDefinitionList": _list_of("RoleDefinition"),
        "RoleAssignment": _obj(
            {
                "id": _STRING,
                "name": _STRING,
                "type": {"const": "Microsoft.Authorization/roleAssignments"},
                "properties": _obj(
                    {
                        "roleDefinitionId": _STRING,
                        "principalId": _STRING,
                        "principalType": {"enum": ["ServicePrincipal", "User", "Unknown"]},
                        "scope": _STRING,
                        "createdOn": _DATE_TIME,
                        "updatedOn": _DATE_TIME,
                    }
                ),
            }
        ),
        "RoleAssignmentList": _list_of("RoleAssignment"),
    }


def _identity_response_schemas() -> dict[str, Any]:
    """Bodies of the identity endpoints and of the data-plane token endpoints."""
    endpoint = _STRING
    return {
        "OAuthError": _obj(
            {
                "error": {
                    "enum": [
                        "invalid_request",
                        "invalid_client",
                        "invalid_grant",
                        "invalid_tenant",
                        "unauthorized_client",
                        "unsupported_grant_type",
                        "invalid_scope",
                    ]
                },
                "error_description": _STRING,
                "error_codes": {"type": "array", "items": {"type": "integer"}},
            },
            description="An OAuth 2.0 token endpoint error (RFC 6749 section 5.2), as Entra ID answers it.",
        ),
        "AccessToken": _obj(
            {
                "token_type": {"const": "Bearer"},
                "expires_in": _INT,
                "ext_expires_in": _INT,
                "access_token": _STRING,
            },
            description="An RS256 access token for the audience the scope named.",
        ),
        "OpenIdConfiguration": _obj(
            {
                "issuer": _STRING,
                "authorization_endpoint": endpoint,
                "token_endpoint": endpoint,
                "device_authorization_endpoint": endpoint,
                "end_session_endpoint": endpoint,
                "jwks_uri": endpoint,
                "response_types_supported": _STRINGS,
                "response_modes_supported": _STRINGS,
                "subject_types_supported": _STRINGS,
                "id_token_signing_alg_values_supported": _STRINGS,
                "token_endpoint_auth_methods_supported": _STRINGS,
                "grant_types_supported": _STRINGS,
                "scopes_supported": _STRINGS,
                "claims_supported": _STRINGS,
                "tenant_region_scope": {"type": "null"},
                "cloud_instance_name": _STRING,
                "cloud_graph_host_name": _STRING,
                "msgraph_host": _STRING,
            },
            description="The tenant's OpenID Connect discovery document.",
        ),
        "JsonWebKeySet": _obj(
            {
                "keys": {
                    "type": "array",
                    "items": _obj(
                        {
                            "kty": {"const": "RSA"},
                            "use": {"const": "sig"},
                            "alg": {"const": "RS256"},
                            "kid": _STRING,
                            "n": _STRING,
                            "e": _STRING,
                        }
                    ),
                }
            },
            description="The token signing keys, active and retired.",
        ),
        "CloudMetadata": _obj(
            {
                **{
                    name: _STRING
                    for name in (
                        "name",
                        "resourceManager",
                        "portal",
                        "galleryEndpoint",
                        "graphEndpoint",
                        "graph",
                        "microsoftGraphResourceId",
                        "media",
                        "batch",
                        "sqlManagement",
                    )
                },
                "authentication": _obj(
                    {
                        "loginEndpoint": _STRING,
                        "audiences": _STRINGS,
                        "tenant": _STRING,
                        "identityProvider": _STRING,
                    }
                ),
                "suffixes": _obj(
                    {
                        "acrLoginServer": _STRING,
                        "storage": _STRING,
                        "keyVaultDns": _STRING,
                        "sqlServerHostname": _STRING,
                    }
                ),
            },
            description="What `az cloud register --endpoint-resource-manager <url>` reads: every endpoint is this service.",
        ),
        "RegistryAccessToken": _obj(
            {"access_token": _STRING, "token": _STRING, "expires_in": _INT},
            description="A registry access token (Docker token specification) holding, of the scopes asked "
            "for, the actions the caller has; `token` repeats `access_token`.",
        ),
        "RegistryRefreshToken": _obj(
            {"refresh_token": _STRING},
            description="An ACR refresh token: the password of user 00000000-0000-0000-0000-000000000000, "
            "or the refresh_token grant of POST /oauth2/token.",
        ),
    }


def _data_plane_response_schemas() -> dict[str, Any]:
    changeable = _obj(
        {
            name: {"type": "boolean"}
            for name in ("deleteEnabled", "writeEnabled", "readEnabled", "listEnabled")
        }
    )
    return {
        "OciError": _obj(
            {
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": _obj(
                        {"code": _STRING, "message": _STRING, "detail": {}}, ("code", "message")
                    ),
                }
            },
            description="The OCI distribution error envelope.",
        ),
        "Repositories": _obj({"repositories": _STRINGS}),
        "TagList": _obj(
            {
                "registry": _STRING,
                "imageName": _STRING,
                "tags": {
                    "type": "array",
                    "items": _obj(
                        {
                            "name": _STRING,
                            "digest": _STRING,
                            "createdTime": _DATE_TIME,
                            "lastUpdateTime": _DATE_TIME,
                            "signed": {"type": "boolean"},
                            "changeableAttributes": changeable,
                        }
                    ),
                },
            }
        ),
        "ManifestList": _obj(
            {
                "registry": _STRING,
                "imageName": _STRING,
                "manifests": {
                    "type": "array",
                    "items": _obj(
                        {
                            "digest": _STRING,
                            "imageSize": _INT,
                            "createdTime": _DATE_TIME,
                            "lastUpdateTime": _DATE_TIME,
                            "mediaType": _STRING,
                            "architecture": _STRING,
                            "os": _STRING,
                            "tags": _STRINGS,
                            "changeableAttributes": changeable,
                        },
                        (
                            "digest",
                            "imageSize",
                            "createdTime",
                            "lastUpdateTime",
                            "mediaType",
                            "tags",
                            "changeableAttributes",
                        ),
                    ),
                },
            }
        ),
        "DeletedRepository": _obj({"manifestsDeleted": _STRINGS, "tagsDeleted": _STRINGS}),
    }


def _form_schemas() -> dict[str, Any]:
    """The form bodies (`application/x-www-form-urlencoded`) of the token endpoints. Every
    field is text; fields not named are ignored."""
    return {
        "TokenRequest": {
            "type": "object",
            "properties": {
                "grant_type": {"enum": ["client_credentials", "password"]},
                "client_id": {**_STRING, "description": "The service principal's client (app) id."},
                "client_secret": {
                    **_STRING,
                    "description": "Its secret; without one, HTTP Basic client id and secret are used.",
                },
                "scope": {
                    **_STRING,
                    "description": "`<resource>/.default`: the audience of the token (this service's URL for "
                    "the management API, https://containerregistry.azure.net for /oauth2/exchange).",
                },
                "resource": {
                    **_STRING,
                    "description": "The v1 form of `scope`: the resource alone.",
                },
                "username": {**_STRING, "description": "A user's name (password grant)."},
                "password": {**_STRING, "description": "The user's password (password grant)."},
            },
            "required": ["grant_type"],
            "description": "An Entra token request: client credentials, or a user's password.",
        },
        "RegistryTokenRequest": {
            "type": "object",
            "properties": {
                "grant_type": {"enum": ["password", "refresh_token"]},
                "service": {**_STRING, "description": "The registry's login server (not checked)."},
                "scope": {
                    **_STRING,
                    "description": "Space-separated `repository:<name>:<actions>` or `registry:catalog:*`.",
                },
                "username": {**_STRING, "description": "The password grant's user name."},
                "password": {**_STRING, "description": "The password grant's password."},
                "refresh_token": {
                    **_STRING,
                    "description": "An ACR refresh token (refresh_token grant).",
                },
                "client_id": _STRING,
                "access_type": _STRING,
            },
            "required": ["grant_type"],
            "description": "A registry access token request: a registry credential (admin user, registry "
            "token, service principal or user) or an ACR refresh token.",
        },
        "RegistryExchangeRequest": {
            "type": "object",
            "properties": {
                "grant_type": {"enum": ["access_token", "access_token_refresh_token"]},
                "service": {**_STRING, "description": "The registry's login server (not checked)."},
                "tenant": {
                    **_STRING,
                    "description": "The tenant the token must come from, if given.",
                },
                "access_token": {
                    **_STRING,
                    "description": "An Entra access token of this service (for https://containerregistry.azure.net "
                    "or a management audience).",
                },
            },
            "required": ["grant_type"],
            "description": "An exchange of an Entra access token for an ACR refresh token.",
        },
    }


# -- parameters, headers, responses --------------------------------------------------------
def _path_parameter(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or _STRING,
    }


_RESOURCE_NAME = {"pattern": "^[a-zA-Z0-9-]*$", "minLength": 5, "maxLength": 50}

_PARAMETERS: dict[str, Any] = {
    "SubscriptionId": _path_parameter(
        "subscriptionId", "A subscription of the caller's tenant (see /subscriptions)."
    ),
    "ResourceGroupName": _path_parameter(
        "resourceGroupName", "The resource group (case-insensitive)."
    ),
    "RegistryName": _path_parameter(
        "registryName",
        "A registry's name: 5-50 alphanumerics (ACR's rule).",
        pattern="^[a-zA-Z0-9]*$",
        minLength=5,
        maxLength=50,
    ),
    "AnyRegistryName": _path_parameter(
        "registryName",
        "A registry's name; deleting one that does not exist answers 204, whatever the name.",
    ),
    "Location": _path_parameter(
        "location", "The location of the registry the operation imports into."
    ),
    "OperationId": _path_parameter("operationId", "The id of an import operation (32 hex digits)."),
    "ScopeMapName": _path_parameter(
        "scopeMapName",
        "A scope map: a built-in one (`_repositories_pull`, …) or one of the registry's.",
    ),
    "NewScopeMapName": _path_parameter(
        "scopeMapName",
        "The scope map's name: 5-50 letters, digits and '-' (the built-in ones cannot be changed).",
        **_RESOURCE_NAME,
    ),
    "TokenName": _path_parameter("tokenName", "A token of the registry."),
    "NewTokenName": _path_parameter(
        "tokenName", "The token's name: 5-50 letters, digits and '-'.", **_RESOURCE_NAME
    ),
    "NewTenantId": _path_parameter("tenantId", "The new tenant's id: a GUID."),
    "NewSubscriptionId": _path_parameter("subscriptionId", "The new subscription's id: a GUID."),
    "PrincipalId": _path_parameter(
        "principalId",
        "A principal of the caller's tenant: its object id, client (app) id or user name.",
    ),
    "ScopeRegistryName": _path_parameter(
        "registryName",
        "A registry's name. Not checked: any name makes a scope, whether the registry exists or not.",
    ),
    "ManagementGroupId": _path_parameter(
        "managementGroupId", "A tenant's root management group: the tenant id."
    ),
    "RoleDefinitionId": _path_parameter(
        "roleDefinitionId",
        "A role definition: its GUID, or a role's name (read and delete).",
    ),
    "RoleAssignmentName": _path_parameter("roleAssignmentName", "A role assignment's GUID."),
    "Tenant": _path_parameter(
        "tenant",
        "A tenant id. A segment of other characters than letters, digits and '-', or longer "
        "than 64, routes nowhere (404).",
        pattern="^[0-9A-Za-z-]{1,64}$",
    ),
    "ApiVersion": _query(
        "api-version", "Accepted whatever its value (clients send 2025-04-01 and the like)."
    ),
    "Repository": _path_parameter(
        "repository",
        "A repository name of the OCI grammar; it may contain '/'.",
        pattern=f"^{REPOSITORY_PATTERN.pattern}$",
        maxLength=MAX_REPOSITORY_LENGTH,
    ),
    "PageSize": _query("n", "Items per page (default 100).", {"type": "integer", "minimum": 0}),
    "PageLast": _query("last", "Answer the items after this one."),
    "Top": _query(
        "$top",
        "Operations per page, 1 to 1000 (default 100); `nextLink` continues.",
        {"type": "integer", "minimum": 1, "maximum": 1000},
    ),
    "SkipToken": _query(
        "$skipToken",
        "Where the page starts: taken from a previous page's `nextLink`.",
        {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    ),
    "OrderBy": _query(
        "orderby",
        "`timedesc` or `timeasc` (by lastUpdateTime); anything else orders by name or digest.",
    ),
    "ResourceFilter": _query(
        "$filter",
        "OData filter; only `resourceType eq '<type>'` is read, and any other type than "
        "Microsoft.ContainerRegistry/registries selects nothing.",
    ),
    "RoleDefinitionFilter": _query(
        "$filter",
        "`roleName eq '<name>'` selects the role of that name; anything else, every role.",
    ),
    "RoleAssignmentFilter": _query(
        "$filter",
        "`principalId eq '<id>'` or `assignedTo('<id>')` selects one principal's assignments, "
        "`atScope()` only those at or above the scope; anything else is ignored.",
    ),
    "TokenScope": {
        "name": "scope",
        "in": "query",
        "required": False,
        "description": "`repository:<name>:<actions>` or `registry:catalog:*`; repeatable.",
        "schema": {"type": "array", "items": _STRING},
        "style": "form",
        "explode": True,
    },
    "TokenService": _query("service", "The registry's login server (not checked)."),
}

_HEADERS: dict[str, Any] = {
    "RequestId": {"description": "A new id per request.", "required": True, "schema": _STRING},
    "CorrelationRequestId": {
        "description": "The request's `x-ms-correlation-request-id`, else the request id.",
        "required": True,
        "schema": _STRING,
    },
    "Location": {
        "description": "The operation's result URL (operationResults).",
        "required": True,
        "schema": _STRING,
    },
    "AzureAsyncOperation": {
        "description": "The operation's status URL (operationStatuses).",
        "required": True,
        "schema": _STRING,
    },
    "RetryAfter": {
        "description": "Seconds to wait before polling.",
        "required": True,
        "schema": {"type": "integer"},
    },
    "Link": {
        "description": 'The next page: `<path?last=…&n=…>; rel="next"`.',
        "required": False,
        "schema": _STRING,
    },
    "NoStore": {
        "description": "`no-store`: token responses are not cached.",
        "required": True,
        "schema": {"const": "no-store"},
    },
    "RegistryChallenge": {
        "description": 'Bearer realm="<origin>/oauth2/token",service="<login server>"[,scope="…"][,error="…"]',
        "required": True,
        "schema": _STRING,
    },
}
_ARM_HEADERS = {
    "x-ms-request-id": _ref("RequestId", "headers"),
    "x-ms-correlation-request-id": _ref("CorrelationRequestId", "headers"),
}


def _arm(
    description: str, schema: str | None = None, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A management API response, with the request id headers every one carries."""
    response: dict[str, Any] = {
        "description": description,
        "headers": {**_ARM_HEADERS, **(headers or {})},
    }
    if schema is not None:
        response["content"] = {JSON: {"schema": _ref(schema)}}
    return response


def _arm_error(description: str) -> dict[str, Any]:
    return _arm(description, "ArmError")


def _json(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": _ref(schema)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _oci(
    description: str, schema: str = "OciError", headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    return _json(description, schema, headers)


_NO_STORE = {"Cache-Control": _ref("NoStore", "headers")}

_RESPONSES: dict[str, Any] = {
    "Unauthorized": _arm(
        "AuthenticationFailed (no or a wrong credential), InvalidAuthenticationToken, "
        "ExpiredAuthenticationToken or InvalidAuthenticationTokenAudience (with a Bearer challenge), "
        "or InvalidAuthenticationTokenTenant: the subscription or management group is another tenant's.",
        "ArmError",
        {
            "WWW-Authenticate": {
                "description": 'Bearer authorization_uri="<origin>/common/oauth2/authorize", error="invalid_token"',
                "required": False,
                "schema": _STRING,
            }
        },
    ),
    "Forbidden": _arm_error(
        "AuthorizationFailed: the caller's roles do not allow the action here."
    ),
    "NotFound": _arm_error(
        "SubscriptionNotFound, ResourceGroupNotFound, ResourceNotFound or OperationNotFound."
    ),
    "InvalidParameter": _arm_error(
        "InvalidParameter (`target` names the field), InvalidRequestContent (not JSON) or another "
        "validation error."
    ),
    "Conflict": _arm_error("The resource conflicts with another or cannot be changed."),
    "RequestTooLarge": _arm_error("RequestTooLarge: the body is larger than the configured limit."),
    "OAuthBadRequest": _json(
        "invalid_tenant (no such tenant), invalid_request, invalid_scope, unsupported_grant_type or "
        "invalid_grant (a user's name or password is wrong).",
        "OAuthError",
        _NO_STORE,
    ),
    "OAuthUnauthorized": _json(
        "invalid_client: the client id or secret is wrong, or the client is of another tenant.",
        "OAuthError",
        _NO_STORE,
    ),
    "NoRoute": {
        "description": "The path routes nowhere (the tenant segment is not 1-64 letters, digits and '-').",
        "content": {"text/plain": {"schema": _STRING}},
    },
    "OciBadRequest": _oci("NAME_INVALID or PAGINATION_NUMBER_INVALID."),
    "OciNotFound": _oci("NAME_UNKNOWN: no such repository."),
    "OciUnauthorized": _oci(
        "UNAUTHORIZED: no credential (where one is needed), an invalid one, or one whose grant "
        'lacks the action (the challenge then carries error="insufficient_scope").',
        headers={"WWW-Authenticate": _ref("RegistryChallenge", "headers")},
    ),
    "OciDenied": _oci(
        "DENIED: the registry's network rules refuse the client's address, or HTTP Basic credentials "
        "that lack the action."
    ),
    "TokenUnsupported": _oci(
        "UNSUPPORTED: the grant_type is not supported, or the body is not a readable form."
    ),
    "TokenUnauthorized": _oci("UNAUTHORIZED: the credential or token is not valid."),
}


_EXAMPLES: dict[str, Any] = {
    "RegistryBody": {"premium": {"value": {"location": "local", "sku": {"name": "Premium"}}}},
    "ImportImageParameters": {
        "fromDockerHub": {
            "summary": "From a remote registry, under another name",
            "value": {
                "source": {"registryUri": "docker.io", "sourceImage": "library/hello-world:latest"},
                "targetTags": ["hello-world:v1"],
                "mode": "Force",
            },
        },
        "fromRegistryOfThisService": {
            "summary": "From another registry of this service (linked, not copied), untagged",
            "value": {
                "source": {
                    "resourceId": "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/source",
                    "sourceImage": "team/app@sha256:" + "0" * 64,
                },
                "untaggedTargetRepositories": ["team/app"],
            },
        },
    },
    "ScopeMapBody": {
        "pullOne": {
            "summary": "Pull and read one repository",
            "value": {
                "properties": {
                    "description": "CI pulls",
                    "actions": [
                        "repositories/team/app/content/read",
                        "repositories/team/app/metadata/read",
                    ],
                }
            },
        }
    },
    "TokenBody": {
        "pull": {
            "value": {
                "properties": {"scopeMapId": "_repositories_pull", "status": "enabled"},
            }
        }
    },
    "RoleAssignmentBody": {
        "reader": {
            "summary": "Reader (by its role definition id) for a principal",
            "value": {
                "properties": {
                    "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
                    "principalId": "00000000-0000-0000-0000-000000000000",
                }
            },
        }
    },
    "RoleDefinitionBody": {
        "puller": {
            "value": {
                "properties": {
                    "roleName": "Registry puller",
                    "description": "Reads registries and pulls from them.",
                    "permissions": [
                        {
                            "actions": [
                                "Microsoft.ContainerRegistry/registries/read",
                                "Microsoft.ContainerRegistry/registries/pull/read",
                            ]
                        }
                    ],
                    "assignableScopes": ["/subscriptions/00000000-0000-0000-0000-000000000000"],
                }
            }
        }
    },
}


# -- operations ----------------------------------------------------------------------------
def _op(
    operation_id: str,
    summary: str,
    parameters: list[str],
    responses: dict[str, Any],
    *,
    tags: list[str],
    body: str | None = None,
    body_required: bool = False,
    media_type: str = JSON,
    security: list[Any] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": tags,
        "parameters": [_ref(name, "parameters") for name in parameters],
        "responses": responses,
    }
    if description is not None:
        operation["description"] = description
    if body is not None:
        media: dict[str, Any] = {"schema": _ref(body)}
        if body in _EXAMPLES:
            media["examples"] = _EXAMPLES[body]
        operation["requestBody"] = {"required": body_required, "content": {media_type: media}}
    if security is not None:
        operation["security"] = security
    return operation


def _errors(*statuses: int) -> dict[str, Any]:
    """The management API's error responses of these statuses."""
    names = {
        400: "InvalidParameter",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        413: "RequestTooLarge",
    }
    return {str(status): _ref(names[status], "responses") for status in statuses}


_NAMES = {
    "sub": "{subscriptionId}",
    "rg": "{resourceGroupName}",
    "name": "{registryName}",
    "location": "{location}",
}
_MGMT = ["Management"]
_ACCESS = ["Registry access"]
_TENANCY = ["Tenancy"]
_DIRECTORY = ["Directory"]
_AUTHORIZATION = ["Authorization"]
_IDENTITY = ["Identity"]
_DATA_PLANE_AUTH = ["Data-plane tokens"]
_ACR = ["ACR data plane"]
_COMMON = ["SubscriptionId", "ApiVersion"]
_IN_GROUP = [*_COMMON, "ResourceGroupName", "RegistryName"]


def _registry_paths() -> dict[str, Any]:
    registries_in_subscription = (arm.SUBSCRIPTION + "/" + arm.PROVIDER + "/registries").format(
        **_NAMES
    )
    registries_in_group = arm.REGISTRIES_IN_GROUP.format(**_NAMES)
    registry = arm.REGISTRY.format(**_NAMES)
    location = arm.LOCATION.format(**_NAMES)
    on_operation = [*_COMMON, "Location", "OperationId"]
    registry_list = {
        "200": _arm("The registries the caller may read.", "RegistryList"),
        **_errors(401, 404),
    }
    status = {"200": _arm("The operation's status.", "OperationStatus"), **_errors(401, 404)}
    credentials = _arm("The admin user's name and passwords.", "RegistryCredentials")
    return {
        "/transship/v1/info": {
            "get": _op(
                "Service_GetInfo",
                "The caller, its tenant and first subscription, and the service's defaults.",
                [],
                {"200": _arm("The service.", "ServiceInfo"), **_errors(401)},
                tags=["Service"],
            )
        },
        registries_in_subscription: {
            "get": _op(
                "Registries_List",
                "The registries of the subscription.",
                _COMMON,
                registry_list,
                tags=_MGMT,
            )
        },
        registries_in_group: {
            "get": _op(
                "Registries_ListByResourceGroup",
                "The registries of a resource group.",
                [*_COMMON, "ResourceGroupName"],
                registry_list,
                tags=_MGMT,
            )
        },
        registry: {
            "get": _op(
                "Registries_Get",
                "A registry.",
                _IN_GROUP,
                {"200": _arm("The registry.", "Registry"), **_errors(401, 403, 404)},
                tags=_MGMT,
            ),
            "put": _op(
                "Registries_Create",
                "Create a registry (or answer the existing one, with the access properties given applied).",
                _IN_GROUP,
                {
                    "200": _arm("The registry already existed.", "Registry"),
                    "201": _arm("The registry was created.", "Registry"),
                    **_errors(400, 401, 403, 404, 409, 413),
                },
                tags=_MGMT,
                body="RegistryBody",
            ),
            "patch": _op(
                "Registries_Update",
                "Change a registry's access properties: admin user, anonymous pull, network rules.",
                _IN_GROUP,
                {
                    "200": _arm("The registry.", "Registry"),
                    **_errors(400, 401, 403, 404, 413),
                },
                tags=_MGMT,
                body="RegistryBody",
            ),
            "delete": _op(
                "Registries_Delete",
                "Delete a registry with its repositories.",
                [*_COMMON, "ResourceGroupName", "AnyRegistryName"],
                {
                    "200": _arm("Deleted."),
                    "204": _arm("There was no such registry."),
                    **_errors(401, 403, 404, 409),
                },
                tags=_MGMT,
            ),
        },
        registry + "/listCredentials": {
            "post": _op(
                "Registries_ListCredentials",
                "The admin user's name and passwords.",
                _IN_GROUP,
                {
                    "200": credentials,
                    "400": _arm_error("AdminUserDisabled: the registry's admin user is disabled."),
                    **_errors(401, 403, 404),
                },
                tags=_MGMT,
            )
        },
        registry + "/regenerateCredential": {
            "post": _op(
                "Registries_RegenerateCredential",
                "A new value for one of the admin user's passwords.",
                _IN_GROUP,
                {
                    "200": credentials,
                    "400": _arm_error(
                        "InvalidParameter, or AdminUserDisabled: the registry's admin user is disabled."
                    ),
                    **_errors(401, 403, 404, 413),
                },
                tags=_MGMT,
                body="RegenerateCredentialBody",
                body_required=True,
            )
        },
        registry + "/importImage": {
            "post": _op(
                "Registries_ImportImage",
                "Import an image into the registry (asynchronous).",
                _IN_GROUP,
                {
                    "202": _arm(
                        "Accepted: poll Azure-AsyncOperation for the status, Location for the result.",
                        "OperationStatus",
                        {
                            "Location": _ref("Location", "headers"),
                            "Azure-AsyncOperation": _ref("AzureAsyncOperation", "headers"),
                            "Retry-After": _ref("RetryAfter", "headers"),
                        },
                    ),
                    **_errors(400, 401),
                    "403": _arm_error(
                        "AuthorizationFailed: the caller may not import into the registry, or not read the source."
                    ),
                    **_errors(404, 413),
                },
                tags=_MGMT,
                body="ImportImageParameters",
                body_required=True,
            )
        },
        registry + "/importOperations": {
            "get": _op(
                "Registries_ListImportOperations",
                "The registry's import operations, newest first, paged (a Transship extension).",
                [*_IN_GROUP, "Top", "SkipToken"],
                {
                    "200": _arm("The operations.", "OperationStatusList"),
                    **_errors(400, 401, 403, 404),
                },
                tags=_MGMT,
            )
        },
        location + "/operationResults/{operationId}": {
            "get": _op(
                "Operations_GetResult",
                "The result of an import operation.",
                on_operation,
                {
                    "200": _arm("Succeeded.", "OperationResult"),
                    "202": _arm(
                        "Still queued or running.",
                        headers={
                            "Location": _ref("Location", "headers"),
                            "Retry-After": _ref("RetryAfter", "headers"),
                        },
                    ),
                    "400": _arm_error("The import failed (the failure's code and details)."),
                    **_errors(401),
                    "404": _arm_error(
                        "SubscriptionNotFound, OperationNotFound, or the import failed: ManifestUnknown, BlobUnknown…"
                    ),
                    "409": _arm_error("The import was canceled, or failed with TagAlreadyExists."),
                },
                tags=_MGMT,
            )
        },
        location + "/operationStatuses/{operationId}": {
            "get": _op(
                "Operations_GetStatus",
                "The status of an import operation.",
                on_operation,
                status,
                tags=_MGMT,
            )
        },
        location + "/operationStatuses/{operationId}/cancel": {
            "post": _op(
                "Operations_Cancel",
                "Cancel an import operation (a Transship extension).",
                on_operation,
                status,
                tags=_MGMT,
            )
        },
    }


def _access_paths() -> dict[str, Any]:
    """Scope maps, tokens and their passwords."""
    registry = arm.REGISTRY.format(**_NAMES)
    scope_maps = registry + "/scopeMaps"
    tokens = registry + "/tokens"
    return {
        scope_maps: {
            "get": _op(
                "ScopeMaps_List",
                "The registry's scope maps, built-in ones first.",
                _IN_GROUP,
                {"200": _arm("The scope maps.", "ScopeMapList"), **_errors(401, 403, 404)},
                tags=_ACCESS,
            )
        },
        scope_maps + "/{scopeMapName}": {
            "get": _op(
                "ScopeMaps_Get",
                "A scope map.",
                [*_IN_GROUP, "ScopeMapName"],
                {"200": _arm("The scope map.", "ScopeMap"), **_errors(401, 403, 404)},
                tags=_ACCESS,
            ),
            "put": _op(
                "ScopeMaps_Create",
                "Create or replace a scope map.",
                [*_IN_GROUP, "NewScopeMapName"],
                {
                    "200": _arm("Replaced.", "ScopeMap"),
                    "201": _arm("Created.", "ScopeMap"),
                    **_errors(400, 401, 403, 404),
                    "409": _arm_error(
                        "SystemScopeMapReadOnly: a built-in scope map; or a concurrent create."
                    ),
                    **_errors(413),
                },
                tags=_ACCESS,
                body="ScopeMapBody",
                body_required=True,
            ),
            "patch": _op(
                "ScopeMaps_Update",
                "Change a scope map's description or actions; what is not given stays.",
                [*_IN_GROUP, "ScopeMapName"],
                {
                    "200": _arm("Changed.", "ScopeMap"),
                    **_errors(400, 401, 403),
                    "404": _arm_error("The registry or the scope map does not exist."),
                    "409": _arm_error("SystemScopeMapReadOnly: a built-in scope map."),
                    **_errors(413),
                },
                tags=_ACCESS,
                body="ScopeMapPatchBody",
                body_required=True,
            ),
            "delete": _op(
                "ScopeMaps_Delete",
                "Delete a scope map.",
                [*_IN_GROUP, "ScopeMapName"],
                {
                    "200": _arm("Deleted."),
                    "204": _arm("There was no such scope map."),
                    **_errors(401, 403, 404),
                    "409": _arm_error(
                        "SystemScopeMapReadOnly (a built-in scope map) or ScopeMapInUse (a token uses it)."
                    ),
                },
                tags=_ACCESS,
            ),
        },
        tokens: {
            "get": _op(
                "Tokens_List",
                "The registry's tokens.",
                _IN_GROUP,
                {"200": _arm("The tokens.", "TokenList"), **_errors(401, 403, 404)},
                tags=_ACCESS,
            )
        },
        tokens + "/{tokenName}": {
            "get": _op(
                "Tokens_Get",
                "A token.",
                [*_IN_GROUP, "TokenName"],
                {"200": _arm("The token.", "Token"), **_errors(401, 403, 404)},
                tags=_ACCESS,
            ),
            "put": _op(
                "Tokens_Create",
                "Create or change a token: its scope map and status. Passwords come from generateCredentials.",
                [*_IN_GROUP, "NewTokenName"],
                {
                    "200": _arm("Changed.", "Token"),
                    "201": _arm("Created.", "Token"),
                    **_errors(400, 401, 403),
                    "404": _arm_error("The registry or the scope map does not exist."),
                    **_errors(409, 413),
                },
                tags=_ACCESS,
                body="TokenBody",
                body_required=True,
            ),
            "patch": _op(
                "Tokens_Update",
                "Move a token to another scope map, or enable or disable it; what is not given stays.",
                [*_IN_GROUP, "TokenName"],
                {
                    "200": _arm("Changed.", "Token"),
                    **_errors(400, 401, 403),
                    "404": _arm_error("The registry, the token or the scope map does not exist."),
                    **_errors(409, 413),
                },
                tags=_ACCESS,
                body="TokenPatchBody",
                body_required=True,
            ),
            "delete": _op(
                "Tokens_Delete",
                "Delete a token.",
                [*_IN_GROUP, "TokenName"],
                {
                    "200": _arm("Deleted."),
                    "204": _arm("There was no such token."),
                    **_errors(401, 403, 404),
                },
                tags=_ACCESS,
            ),
        },
        registry + "/generateCredentials": {
            "post": _op(
                "Registries_GenerateCredentials",
                "New passwords for a token (both, or the one named), shown once.",
                _IN_GROUP,
                {
                    "200": _arm("The passwords.", "GeneratedCredentials"),
                    **_errors(400, 401, 403),
                    "404": _arm_error("The registry or the token does not exist."),
                    **_errors(413),
                },
                tags=_ACCESS,
                body="GenerateCredentialsBody",
                body_required=True,
            )
        },
    }


def _tenancy_paths() -> dict[str, Any]:
    """ARM's tenants, subscriptions, resources and resource groups."""
    subscription = "/subscriptions/{subscriptionId}"
    out: dict[str, Any] = {
        "/tenants": {
            "get": _op(
                "Tenants_List",
                "The caller's tenant.",
                ["ApiVersion"],
                {"200": _arm("The tenant.", "TenantList"), **_errors(401)},
                tags=_TENANCY,
            )
        },
        "/subscriptions": {
            "get": _op(
                "Subscriptions_List",
                "The subscriptions of the caller's tenant on which it holds a role.",
                ["ApiVersion"],
                {"200": _arm("The subscriptions.", "SubscriptionList"), **_errors(401)},
                tags=_TENANCY,
            )
        },
        subscription: {
            "get": _op(
                "Subscriptions_Get",
                "A subscription of the caller's tenant.",
                _COMMON,
                {"200": _arm("The subscription.", "Subscription"), **_errors(401, 404)},
                tags=_TENANCY,
            )
        },
        subscription + "/resources": {
            "get": _op(
                "Resources_List",
                "The subscription's resources (registries) the caller may read.",
                [*_COMMON, "ResourceFilter"],
                {"200": _arm("The resources.", "GenericResourceList"), **_errors(401, 404)},
                tags=_TENANCY,
            )
        },
        subscription + "/resourceGroups/{resourceGroupName}/resources": {
            "get": _op(
                "Resources_ListByResourceGroup",
                "The resource group's resources (registries) the caller may read.",
                [*_COMMON, "ResourceGroupName", "ResourceFilter"],
                {"200": _arm("The resources.", "GenericResourceList"), **_errors(401, 404)},
                tags=_TENANCY,
            )
        },
    }
    # ARM's spelling is resourcegroups; the Azure CLI and SDKs send either.
    for groups, suffix in (("resourceGroups", ""), ("resourcegroups", "_Lowercase")):
        group = f"{subscription}/{groups}/{{resourceGroupName}}"
        alias = "" if not suffix else " (the same, spelled `resourcegroups`)"
        out[f"{subscription}/{groups}"] = {
            "get": _op(
                f"ResourceGroups_List{suffix}",
                "The subscription's resource groups the caller may read" + alias + ".",
                _COMMON,
                {"200": _arm("The resource groups.", "ResourceGroupList"), **_errors(401, 404)},
                tags=_TENANCY,
            )
        }
        group_parameters = [*_COMMON, "ResourceGroupName"]
        out[group] = {
            "get": _op(
                f"ResourceGroups_Get{suffix}",
                "A resource group" + alias + ".",
                group_parameters,
                {"200": _arm("The resource group.", "ResourceGroup"), **_errors(401, 403, 404)},
                tags=_TENANCY,
            ),
            "head": _op(
                f"ResourceGroups_CheckExistence{suffix}",
                "Whether a resource group exists" + alias + ".",
                group_parameters,
                {
                    "204": _arm("It exists."),
                    **{
                        status: _arm(f"{what} (no body).")
                        for status, what in (
                            ("401", "Not authenticated"),
                            ("403", "Not authorized"),
                            ("404", "No such subscription or resource group"),
                        )
                    },
                },
                tags=_TENANCY,
            ),
            "put": _op(
                f"ResourceGroups_CreateOrUpdate{suffix}",
                "Create a resource group (or answer the existing one)" + alias + ".",
                group_parameters,
                {
                    "200": _arm("It existed.", "ResourceGroup"),
                    "201": _arm("Created.", "ResourceGroup"),
                    **_errors(400, 401, 403, 404, 413),
                },
                tags=_TENANCY,
                body="ResourceGroupBody",
            ),
            "delete": _op(
                f"ResourceGroups_Delete{suffix}",
                "Delete an empty resource group" + alias + ".",
                group_parameters,
                {
                    "200": _arm("Deleted."),
                    "204": _arm("There was no such resource group."),
                    **_errors(401, 403, 404),
                    "409": _arm_error("ResourceGroupNotEmpty: registries remain in it."),
                },
                tags=_TENANCY,
            ),
        }
    return out


def _directory_paths() -> dict[str, Any]:
    """The service's directory API (standing in for Microsoft Graph)."""
    base = "/transship/v1"
    out: dict[str, Any] = {
        f"{base}/tenants/{{tenantId}}": {
            "put": _op(
                "Directory_CreateTenant",
                "A new tenant with a subscription, a `default` resource group and an owner service "
                "principal (whose secret is in this answer only). Root tenant administrators only.",
                ["NewTenantId"],
                {
                    "201": _arm("Created.", "CreatedTenant"),
                    **_errors(400, 401, 403),
                    "409": _arm_error("The tenant or the subscription exists."),
                    **_errors(413),
                },
                tags=_DIRECTORY,
                body="TenantBody",
                body_required=True,
            )
        },
        f"{base}/subscriptions/{{subscriptionId}}": {
            "put": _op(
                "Directory_CreateSubscription",
                "A new subscription of the caller's tenant (or, for root tenant administrators, of another).",
                ["NewSubscriptionId"],
                {
                    "201": _arm("Created.", "Subscription"),
                    **_errors(400, 401, 403),
                    "404": _arm_error("No such tenant."),
                    "409": _arm_error("The subscription exists."),
                    **_errors(413),
                },
                tags=_DIRECTORY,
                body="SubscriptionBody",
                body_required=True,
            )
        },
    }
    for kind, plural, body in (
        ("service principal", "servicePrincipals", "ServicePrincipalBody"),
        ("user", "users", "UserBody"),
    ):
        name = "ServicePrincipals" if plural == "servicePrincipals" else "Users"
        created = (
            _arm("Created, with its secret (shown this once).", "PrincipalWithSecret")
            if body == "ServicePrincipalBody"
            else _arm("Created.", "Principal")
        )
        out[f"{base}/{plural}"] = {
            "get": _op(
                f"{name}_List",
                f"The {kind}s of the caller's tenant.",
                [],
                {"200": _arm(f"The {kind}s.", "PrincipalList"), **_errors(401, 403)},
                tags=_DIRECTORY,
            ),
            "post": _op(
                f"{name}_Create",
                f"Create a {kind} in the caller's tenant.",
                [],
                {
                    "201": created,
                    **_errors(400, 401, 403),
                    "409": _arm_error("The name is taken."),
                    **_errors(413),
                },
                tags=_DIRECTORY,
                body=body,
                body_required=True,
            ),
        }
        out[f"{base}/{plural}/{{principalId}}"] = {
            "get": _op(
                f"{name}_Get",
                "A principal of the caller's tenant (a service principal with its secrets' key ids, "
                "hints and expiry).",
                ["PrincipalId"],
                {
                    "200": _arm("The principal.", "Principal"),
                    **_errors(401, 403),
                    "404": _arm_error("PrincipalNotFound."),
                },
                tags=_DIRECTORY,
            ),
            "delete": _op(
                f"{name}_Delete",
                "Delete a principal with its secrets and role assignments.",
                ["PrincipalId"],
                {
                    "204": _arm("Deleted."),
                    **_errors(401, 403),
                    "404": _arm_error("PrincipalNotFound."),
                    "409": _arm_error("CannotDeleteSelf: the caller is that principal."),
                },
                tags=_DIRECTORY,
            ),
        }
    out[f"{base}/servicePrincipals/{{principalId}}/credentials/reset"] = {
        "post": _op(
            "ServicePrincipals_ResetCredential",
            "A new secret for a service principal; without `append` its other secrets stop working.",
            ["PrincipalId"],
            {
                "200": _arm("The new secret (shown this once).", "PrincipalWithSecret"),
                "400": _arm_error("InvalidParameter: a bad body, or the principal is a user."),
                **_errors(401, 403),
                "404": _arm_error("PrincipalNotFound."),
                **_errors(413),
            },
            tags=_DIRECTORY,
            body="CredentialResetBody",
        )
    }
    return out


# The scopes the role routes accept, as path prefixes with their parameters.
ROLE_SCOPES: dict[str, tuple[str, list[str]]] = {
    "Root": ("", []),
    "ManagementGroup": (
        "/providers/Microsoft.Management/managementGroups/{managementGroupId}",
        ["ManagementGroupId"],
    ),
    "Subscription": ("/subscriptions/{subscriptionId}", ["SubscriptionId"]),
    "ResourceGroup": (
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}",
        ["SubscriptionId", "ResourceGroupName"],
    ),
    "Registry": (
        arm.REGISTRY.format(**_NAMES),
        ["SubscriptionId", "ResourceGroupName", "ScopeRegistryName"],
    ),
}


def _authorization_paths() -> dict[str, Any]:
    out: dict[str, Any] = {}
    scope_errors = "InvalidScope, or another invalid parameter."
    for label, (prefix, scope_parameters) in ROLE_SCOPES.items():
        at = "" if label == "Root" else f"At{label}"
        where = "the service root" if label == "Root" else f"a {label[0].lower()}{label[1:]}"
        parameters = [*scope_parameters, "ApiVersion"]
        definitions = f"{prefix}/{_AUTHZ}/roleDefinitions"
        assignments = f"{prefix}/{_AUTHZ}/roleAssignments"
        out[definitions] = {
            "get": _op(
                f"RoleDefinitions_List{at}",
                f"The roles of the caller's tenant, built-in and custom, read at {where}.",
                [*parameters, "RoleDefinitionFilter"],
                {
                    "200": _arm("The roles.", "RoleDefinitionList"),
                    "400": _arm_error(scope_errors),
                    **_errors(401, 403, 404),
                },
                tags=_AUTHORIZATION,
            )
        }
        out[definitions + "/{roleDefinitionId}"] = {
            "get": _op(
                f"RoleDefinitions_Get{at}",
                f"A role, read at {where}.",
                [*parameters, "RoleDefinitionId"],
                {
                    "200": _arm("The role.", "RoleDefinition"),
                    "400": _arm_error(scope_errors),
                    **_errors(401, 403),
                    "404": _arm_error("RoleDefinitionDoesNotExist, or no such subscription."),
                },
                tags=_AUTHORIZATION,
            ),
            "put": _op(
                f"RoleDefinitions_CreateOrUpdate{at}",
                "Create or replace a custom role; the caller needs roleDefinitions/write on every "
                f"assignable scope (the path's scope, {where}, is not checked).",
                [*parameters, "RoleDefinitionId"],
                {
                    "200": _arm("Replaced.", "RoleDefinition"),
                    "201": _arm("Created.", "RoleDefinition"),
                    "400": _arm_error(
                        "InvalidParameter, InvalidRoleDefinition, InvalidRoleDefinitionId (not a GUID) or InvalidScope."
                    ),
                    **_errors(401, 403, 404),
                    "409": _arm_error(
                        "RoleDefinitionConflict (a built-in role's name or id, or another tenant's id) or "
                        "RoleDefinitionWithSameNameExists."
                    ),
                    **_errors(413),
                },
                tags=_AUTHORIZATION,
                body="RoleDefinitionBody",
                body_required=True,
            ),
            "delete": _op(
                f"RoleDefinitions_Delete{at}",
                f"Delete a custom role, at {where}.",
                [*parameters, "RoleDefinitionId"],
                {
                    "200": _arm("Deleted: the role it was.", "RoleDefinition"),
                    "204": _arm("There was no such role."),
                    "400": _arm_error("CannotDeleteBuiltInRole, or InvalidScope."),
                    **_errors(401, 403, 404),
                    "409": _arm_error("RoleDefinitionHasAssignments."),
                },
                tags=_AUTHORIZATION,
            ),
        }
        out[assignments] = {
            "get": _op(
                f"RoleAssignments_List{at}",
                f"The role assignments of the caller's tenant at, above and below {where}.",
                [*parameters, "RoleAssignmentFilter"],
                {
                    "200": _arm("The role assignments.", "RoleAssignmentList"),
                    "400": _arm_error(scope_errors),
                    **_errors(401, 403, 404),
                },
                tags=_AUTHORIZATION,
            )
        }
        out[assignments + "/{roleAssignmentName}"] = {
            "get": _op(
                f"RoleAssignments_Get{at}",
                f"A role assignment made at {where}.",
                [*parameters, "RoleAssignmentName"],
                {
                    "200": _arm("The role assignment.", "RoleAssignment"),
                    "400": _arm_error(scope_errors),
                    **_errors(401, 403),
                    "404": _arm_error("RoleAssignmentNotFound, or no such subscription."),
                },
                tags=_AUTHORIZATION,
            ),
            "put": _op(
                f"RoleAssignments_Create{at}",
                f"Assign a role to a principal of the caller's tenant at {where}.",
                [*parameters, "RoleAssignmentName"],
                {
                    "201": _arm("Created (or the same assignment existed).", "RoleAssignment"),
                    "400": _arm_error(
                        "InvalidParameter, RoleDefinitionDoesNotExist, PrincipalNotFound, InvalidRoleAssignmentId "
                        "(not a GUID), InvalidRoleAssignment (not assignable here) or InvalidScope."
                    ),
                    **_errors(401, 403, 404),
                    "409": _arm_error(
                        "RoleAssignmentExists (the same role for the same principal at the same scope) or "
                        "RoleAssignmentUpdateNotPermitted (the id is another assignment's)."
                    ),
                    **_errors(413),
                },
                tags=_AUTHORIZATION,
                body="RoleAssignmentBody",
                body_required=True,
            ),
            "delete": _op(
                f"RoleAssignments_Delete{at}",
                f"Delete a role assignment made at {where}.",
                [*parameters, "RoleAssignmentName"],
                {
                    "200": _arm("Deleted: the assignment it was.", "RoleAssignment"),
                    "204": _arm("There was no such assignment here."),
                    "400": _arm_error(scope_errors),
                    **_errors(401, 403),
                    "404": _arm_error(
                        "SubscriptionNotFound: the scope's subscription does not exist."
                    ),
                },
                tags=_AUTHORIZATION,
            ),
        }
    return out


def _identity_paths() -> dict[str, Any]:
    tenant = ["Tenant"]
    oauth_errors = {
        "400": _ref("OAuthBadRequest", "responses"),
        "404": _ref("NoRoute", "responses"),
    }
    out: dict[str, Any] = {
        "/metadata/endpoints": {
            "get": _op(
                "Cloud_GetMetadata",
                "The cloud metadata document `az cloud register` reads.",
                ["ApiVersion"],
                {"200": _json("The endpoints.", "CloudMetadata")},
                tags=_IDENTITY,
                security=ANONYMOUS,
            )
        }
    }
    for prefix, suffix in (("/{tenant}/v2.0", ""), ("/{tenant}", "_V1")):
        out[prefix + "/.well-known/openid-configuration"] = {
            "get": _op(
                f"Identity_OpenIdConfiguration{suffix}",
                "The tenant's OpenID Connect discovery document.",
                tenant,
                {"200": _json("The discovery document.", "OpenIdConfiguration"), **oauth_errors},
                tags=_IDENTITY,
                security=ANONYMOUS,
            )
        }
    for version, suffix in (("/v2.0", ""), ("", "_V1")):
        out[f"/{{tenant}}/discovery{version}/keys"] = {
            "get": _op(
                f"Identity_Keys{suffix}",
                "The token signing keys (JWKS).",
                tenant,
                {"200": _json("The keys.", "JsonWebKeySet"), **oauth_errors},
                tags=_IDENTITY,
                security=ANONYMOUS,
            )
        }
        out[f"/{{tenant}}/oauth2{version}/token"] = {
            "post": _op(
                f"Identity_Token{suffix}",
                "The token endpoint: a client-credentials grant (the secret in the form, or the client "
                "id and secret with HTTP Basic: client_secret_basic) or a user's password grant.",
                tenant,
                {
                    "200": _json(
                        "The access token.",
                        "AccessToken",
                        {"Cache-Control": _ref("NoStore", "headers")},
                    ),
                    **oauth_errors,
                    "401": _ref("OAuthUnauthorized", "responses"),
                },
                tags=_IDENTITY,
                body="TokenRequest",
                body_required=True,
                media_type=FORM,
                security=ANONYMOUS,
            )
        }
    return out


def _data_plane_paths() -> dict[str, Any]:
    token_errors = {
        "401": _ref("TokenUnauthorized", "responses"),
        "403": _ref("OciDenied", "responses"),
    }
    token_ok = _oci(
        "The access token.", "RegistryAccessToken", {"Cache-Control": _ref("NoStore", "headers")}
    )
    auth_errors = {
        "401": _ref("OciUnauthorized", "responses"),
        "403": _ref("OciDenied", "responses"),
    }
    listing_errors = {
        "400": _ref("OciBadRequest", "responses"),
        **auth_errors,
        "404": _ref("OciNotFound", "responses"),
    }
    link = {"Link": _ref("Link", "headers")}
    # Anonymous callers may read repositories' listings when the registry allows anonymous pull.
    pull = [*REGISTRY_SECURITY, {}]
    return {
        "/oauth2/token": {
            "get": _op(
                "Registry_GetAccessToken",
                "A registry access token for the HTTP Basic credential (or, without one, anonymous).",
                ["TokenService", "TokenScope"],
                {"200": token_ok, **token_errors},
                tags=_DATA_PLANE_AUTH,
                security=[{"registryBasic": []}, {}],
            ),
            "post": _op(
                "Registry_PostAccessToken",
                "A registry access token for a password or refresh_token grant.",
                [],
                {
                    "200": token_ok,
                    "400": _ref("TokenUnsupported", "responses"),
                    **token_errors,
                },
                tags=_DATA_PLANE_AUTH,
                body="RegistryTokenRequest",
                body_required=True,
                media_type=FORM,
                security=ANONYMOUS,
            ),
        },
        "/oauth2/exchange": {
            "post": _op(
                "Registry_ExchangeAccessToken",
                "An ACR refresh token for an Entra access token of the registry's tenant.",
                [],
                {
                    "200": _oci(
                        "The refresh token.",
                        "RegistryRefreshToken",
                        {"Cache-Control": _ref("NoStore", "headers")},
                    ),
                    "400": _ref("TokenUnsupported", "responses"),
                    **token_errors,
                },
                tags=_DATA_PLANE_AUTH,
                body="RegistryExchangeRequest",
                body_required=True,
                media_type=FORM,
                security=ANONYMOUS,
            )
        },
        "/acr/v1/_catalog": {
            "get": _op(
                "Acr_Catalog",
                "The repositories of the registry the Host header names.",
                ["PageSize", "PageLast"],
                {
                    "200": _oci("The repositories.", "Repositories", link),
                    "400": _ref("OciBadRequest", "responses"),
                    **auth_errors,
                },
                tags=_ACR,
                security=REGISTRY_SECURITY,
            )
        },
        "/acr/v1/{repository}": {
            "delete": _op(
                "Acr_DeleteRepository",
                "Delete a repository: its tags and manifests.",
                ["Repository"],
                {"202": _oci("Deleted.", "DeletedRepository"), **listing_errors},
                tags=_ACR,
                security=REGISTRY_SECURITY,
            )
        },
        "/acr/v1/{repository}/_tags": {
            "get": _op(
                "Acr_ListTags",
                "The tags of a repository.",
                ["Repository", "PageSize", "PageLast", "OrderBy"],
                {"200": _oci("The tags.", "TagList", link), **listing_errors},
                tags=_ACR,
                security=pull,
            )
        },
        "/acr/v1/{repository}/_manifests": {
            "get": _op(
                "Acr_ListManifests",
                "The manifests of a repository, with their tags, size and platform.",
                ["Repository", "PageSize", "PageLast", "OrderBy"],
                {"200": _oci("The manifests.", "ManifestList", link), **listing_errors},
                tags=_ACR,
                security=pull,
            )
        },
    }


def _paths() -> dict[str, Any]:
    document = {
        OPENAPI_PATH: {
            "get": _op(
                "OpenApi_Get",
                "This document.",
                [],
                {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
                tags=["Service"],
                security=ANONYMOUS,
            )
        }
    }
    return {
        **document,
        **_registry_paths(),
        **_access_paths(),
        **_tenancy_paths(),
        **_directory_paths(),
        **_authorization_paths(),
        **_identity_paths(),
        **_data_plane_paths(),
    }


_DESCRIPTION = """\
The management API follows Azure Resource Manager shapes (ACR's registries, scope maps and \
tokens; resource groups; Microsoft.Authorization's role definitions and assignments); any \
`api-version` is accepted, and errors use the ARM envelope. It authenticates with a bearer \
token from the tenant's token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client \
credentials or a user's password, for this service's URL as the resource), or with a service \
principal's client id and secret over HTTP Basic; the first start writes the owner service \
principal's to `<data-dir>/owner-credential.json` (tenantId, subscriptionId, resourceGroup, \
clientId, clientSecret). Every action is then checked against the caller's role assignments.

`/transship/v1` is the service's own directory API (tenants, subscriptions, service \
principals, users), standing in for Microsoft Graph.

Without credentials: this document, `/metadata/endpoints`, each tenant's OpenID Connect \
discovery document and keys, and the token endpoints (which take the credentials in the form, \
or as HTTP Basic). Token endpoint errors use the OAuth 2.0 envelope.

The ACR data plane (`/acr/v1`, and `/v2`, documented by the OCI distribution specification) \
is routed by the Host header. It takes the registry credentials of the Docker token \
specification: HTTP Basic (the admin user, a registry token, a service principal or a user), \
or a bearer access token from `/oauth2/token`; an ACR refresh token comes from \
`/oauth2/exchange`. Its errors use the OCI envelope.
"""


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh dict each call)."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Transship management API, identity endpoints and ACR data plane",
            "version": __version__,
            "description": _DESCRIPTION,
        },
        "tags": [
            {"name": "Service"},
            {"name": "Management", "description": "ARM shapes; errors use the ARM envelope."},
            {"name": "Registry access", "description": "ACR scope maps and tokens."},
            {
                "name": "Tenancy",
                "description": "ARM tenants, subscriptions, resources and resource groups.",
            },
            {"name": "Directory", "description": "The service's directory API."},
            {"name": "Authorization", "description": "Role definitions and assignments."},
            {
                "name": "Identity",
                "description": "The Entra-compatible token service; errors use the OAuth 2.0 envelope.",
            },
            {"name": "Data-plane tokens", "description": "Docker token specification; OCI errors."},
            {"name": "ACR data plane", "description": "Errors use the OCI envelope."},
        ],
        "security": MANAGEMENT_SECURITY,
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from POST /{tenant}/oauth2/v2.0/token whose audience "
                    "is this service's URL (or a configured management audience).",
                },
                "servicePrincipal": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A service principal's client id and secret; the owner's are in "
                    "<data-dir>/owner-credential.json (clientId, clientSecret).",
                },
                "registryBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A registry credential: the admin user, a registry token, a service "
                    "principal (client id and secret), a user, or user "
                    "00000000-0000-0000-0000-000000000000 with an ACR refresh token.",
                },
                "registryBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A registry access token from /oauth2/token.",
                },
            },
            "schemas": {
                **request_schemas(),
                **_form_schemas(),
                **_arm_response_schemas(),
                **_identity_response_schemas(),
                **_data_plane_response_schemas(),
            },
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
            "responses": _RESPONSES,
        },
    }
    return copy.deepcopy(document)


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(build_document()).encode()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type=JSON)


def add_routes(app: web.Application) -> None:
    app.router.add_get(OPENAPI_PATH, openapi_json)
