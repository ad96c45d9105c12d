"""The parts of the OpenAPI document that are not routes: the shared parameters, headers and
answers operations refer to by name, the security schemes, the tags, the request examples
and the document's description."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from transship.api.routes import Reply, arm
from transship.oci.reference import MAX_REPOSITORY_LENGTH, REPOSITORY_PATTERN
from transship.wire import acr, identity
from transship.wire import arm as resources
from transship.wire.bodies import (
    ImportImageParameters,
    RegistryBody,
    RoleAssignmentBody,
    RoleDefinitionBody,
    ScopeMapBody,
    TokenBody,
)

TITLE = "Transship management API, identity endpoints and ACR data plane"
_STRING = {"type": "string"}


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

PARAMETERS: dict[str, Any] = {
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
    "BatchId": _path_parameter("batchId", "The id of an import batch (32 hex digits)."),
    "SyncRegistryName": _path_parameter(
        "registryName", "A registry's name (registry names are unique across the service)."
    ),
    "SyncRuleName": _path_parameter(
        "ruleName",
        "A sync rule of the registry: 3-50 letters, digits and '-', starting and ending with a "
        "letter or digit.",
    ),
    "SyncRunId": _path_parameter("runId", "The id of a sync run (32 hex digits)."),
    "UnsupportedFeature": _path_parameter(
        "feature",
        "A registry feature of ACR that Transship does not offer (tasks, replications…).",
        enum=[
            "tasks",
            "taskRuns",
            "runs",
            "scheduleRun",
            "listBuildSourceUploadUrl",
            "agentPools",
            "privateEndpointConnections",
            "privateLinkResources",
            "connectedRegistries",
            "pipelineRuns",
            "importPipelines",
            "exportPipelines",
            "replications",
        ],
    ),
    "FeatureItem": _path_parameter("item", "An item of that feature (a task's name…)."),
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
    "WebhookName": _path_parameter("webhookName", "A webhook of the registry."),
    "NewWebhookName": _path_parameter(
        "webhookName",
        "The webhook's name: 5-50 letters and digits (ACR's rule).",
        pattern="^[a-zA-Z0-9]*$",
        minLength=5,
        maxLength=50,
    ),
    "CacheRuleName": _path_parameter("cacheRuleName", "A cache rule of the registry."),
    "NewCacheRuleName": _path_parameter(
        "cacheRuleName", "The cache rule's name: 5-50 letters, digits and '-'.", **_RESOURCE_NAME
    ),
    "CredentialSetName": _path_parameter("credentialSetName", "A credential set of the registry."),
    "NewCredentialSetName": _path_parameter(
        "credentialSetName",
        "The credential set's name: 5-50 letters, digits and '-'.",
        **_RESOURCE_NAME,
    ),
    "SecretIdentifier": _query(
        "identifier",
        "A Key Vault secret identifier (`https://<vault>.vault.azure.net/secrets/<name>`).",
    ),
    "EventsSkipToken": _query(
        "$skipToken",
        "Where the page of the delivery log starts: taken from a previous page's `nextLink`.",
        {"type": "string", "pattern": "^[0-9]+$"},
    ),
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
        "A registry's name. Not checked: any name makes a scope, whether the registry "
        "exists or not.",
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
    "Tag": _path_parameter("tag", "A tag of the repository."),
    "ManifestDigest": _path_parameter(
        "digest",
        "A manifest's digest (`algorithm:encoded`).",
        pattern="^[a-z0-9]+:[a-zA-Z0-9=_-]+$",
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
    "WaitSeconds": _query(
        "waitSeconds",
        "With If-None-Match: how long to wait for the operation to change, 0 to 30 seconds "
        "(default 0: answer at once).",
        {"type": "number", "minimum": 0, "maximum": 30},
    ),
    "IfNoneMatchVersion": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "The ETag of the version the caller already has.",
        "schema": _STRING,
    },
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

HEADERS: dict[str, Any] = {
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
    "SyncRunUrl": {
        "description": "The sync run's URL.",
        "required": True,
        "schema": _STRING,
    },
    "AzureAsyncOperation": {
        "description": "The operation's status URL (operationStatuses).",
        "required": True,
        "schema": _STRING,
    },
    "BatchUrl": {
        "description": "The import batch's status URL (importBatches/{batchId}).",
        "required": True,
        "schema": _STRING,
    },
    "RetryAfter": {
        "description": "Seconds to wait before polling.",
        "required": True,
        "schema": {"type": "integer"},
    },
    "OperationVersion": {
        "description": "The version of the operation's status (send it back in If-None-Match).",
        "required": True,
        "schema": _STRING,
    },
    "Link": {
        "description": 'The next page: `<path?last=…&n=…>; rel="next"`.',
        "required": False,
        "schema": _STRING,
    },
    "NoStore": {
        "description": "`no-store`: the answer is not cached (tokens, live statuses).",
        "required": True,
        "schema": {"const": "no-store"},
    },
    "RegistryChallenge": {
        "description": (
            'Bearer realm="<origin>/oauth2/token",service="<login server>"[,scope="…"][,error="…"]'
        ),
        "required": True,
        "schema": _STRING,
    },
    "ArmChallenge": {
        "description": (
            'Bearer authorization_uri="<origin>/common/oauth2/authorize", error="invalid_token"'
        ),
        "required": False,
        "schema": _STRING,
    },
}

_NO_STORE = {"Cache-Control": "NoStore"}
# Shared answers, by component name.
RESPONSES: dict[str, Reply] = {
    "Unauthorized": arm(
        "AuthenticationFailed (no or a wrong credential), InvalidAuthenticationToken, "
        "ExpiredAuthenticationToken or InvalidAuthenticationTokenAudience (with a Bearer "
        "challenge), or InvalidAuthenticationTokenTenant: the subscription or management "
        "group is another tenant's.",
        resources.ArmError,
        {"WWW-Authenticate": "ArmChallenge"},
    ),
    "Forbidden": arm(
        "AuthorizationFailed: the caller's roles do not allow the action here.", resources.ArmError
    ),
    "NotFound": arm(
        "SubscriptionNotFound, ResourceGroupNotFound, ResourceNotFound or OperationNotFound.",
        resources.ArmError,
    ),
    "InvalidParameter": arm(
        "InvalidParameter (`target` names the field), InvalidRequestContent (not JSON) or another "
        "validation error.",
        resources.ArmError,
    ),
    "Conflict": arm(
        "The resource conflicts with another or cannot be changed.", resources.ArmError
    ),
    "RequestTooLarge": arm(
        "RequestTooLarge: the body is larger than the configured limit.", resources.ArmError
    ),
    "OAuthBadRequest": Reply(
        "invalid_tenant (no such tenant), invalid_request, invalid_scope, "
        "unsupported_grant_type or invalid_grant (a user's name or password is wrong).",
        identity.OAuthError,
        _NO_STORE,
    ),
    "OAuthUnauthorized": Reply(
        "invalid_client: the client id or secret is wrong, or the client is of another tenant.",
        identity.OAuthError,
        _NO_STORE,
    ),
    "NoRoute": Reply(
        "The path routes nowhere (the tenant segment is not 1-64 letters, digits and '-').",
        media_type="text/plain",
    ),
    "OciBadRequest": Reply("NAME_INVALID or PAGINATION_NUMBER_INVALID.", acr.OciError),
    "OciNotFound": Reply("NAME_UNKNOWN: no such repository.", acr.OciError),
    "OciUnauthorized": Reply(
        "UNAUTHORIZED: no credential (where one is needed), an invalid one, or one whose grant "
        'lacks the action (the challenge then carries error="insufficient_scope").',
        acr.OciError,
        {"WWW-Authenticate": "RegistryChallenge"},
    ),
    "OciDenied": Reply(
        "DENIED: the registry's network rules refuse the client's address, or HTTP Basic "
        "credentials that lack the action.",
        acr.OciError,
    ),
    "TokenUnsupported": Reply(
        "UNSUPPORTED: the grant_type is not supported, or the body is not a readable form.",
        acr.OciError,
    ),
    "TokenUnauthorized": Reply("UNAUTHORIZED: the credential or token is not valid.", acr.OciError),
}
# The management API's shared error answers, by status.
ARM_ERRORS = {
    400: "InvalidParameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "RequestTooLarge",
}


def errors(*statuses: int) -> dict[int, Reply | str]:
    """The management API's shared error answers of these statuses."""
    return {status: ARM_ERRORS[status] for status in statuses}


EXAMPLES: dict[type[BaseModel], Any] = {
    RegistryBody: {"premium": {"value": {"location": "local", "sku": {"name": "Premium"}}}},
    ImportImageParameters: {
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
                    "resourceId": (
                        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
                        "/providers/Microsoft.ContainerRegistry/registries/source"
                    ),
                    "sourceImage": "team/app@sha256:" + "0" * 64,
                },
                "untaggedTargetRepositories": ["team/app"],
            },
        },
        "dryRun": {
            "summary": "Plan only (a Transship extension): what would be copied and moved",
            "value": {
                "source": {"registryUri": "docker.io", "sourceImage": "library/alpine:3.20"},
                "targetTags": ["alpine:3.20"],
                "mode": "NoForce",
                "dryRun": True,
            },
        },
    },
    ScopeMapBody: {
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
    TokenBody: {
        "pull": {
            "value": {
                "properties": {"scopeMapId": "_repositories_pull", "status": "enabled"},
            }
        }
    },
    RoleAssignmentBody: {
        "reader": {
            "summary": "Reader (by its role definition id) for a principal",
            "value": {
                "properties": {
                    "roleDefinitionId": (
                        "/providers/Microsoft.Authorization/roleDefinitions/"
                        "acdd72a7-3385-48ef-bd42-f606fba81ae7"
                    ),
                    "principalId": "00000000-0000-0000-0000-000000000000",
                }
            },
        }
    },
    RoleDefinitionBody: {
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


SECURITY_SCHEMES: dict[str, Any] = {
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
}

TAGS: list[dict[str, str]] = [
    {"name": "Service"},
    {"name": "Management", "description": "ARM shapes; errors use the ARM envelope."},
    {"name": "Registry access", "description": "ACR scope maps and tokens."},
    {
        "name": "Artifact cache",
        "description": "ACR cache rules and credential sets (pull through from upstreams).",
    },
    {
        "name": "Scheduled sync",
        "description": "Sync rules and their runs (Transship's own); errors use the ARM envelope.",
    },
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
]

DESCRIPTION = """\
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
