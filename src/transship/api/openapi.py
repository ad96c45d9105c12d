"""The OpenAPI 3.1 document of the management API (ARM shapes) and the ACR data plane
(`/acr/v1`), built in code and served unauthenticated at `GET /openapi.json`.

Request bodies come from the pydantic models that validate them (`arm_models`), and paths
from the route templates of `arm`, so the document cannot drift from what the server
checks. `tests/unit/api/test_openapi.py` holds it to every route of the application, and
`tests/integration/test_schemathesis.py` holds the server to it.
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
from transship.api.arm_models import ImportImageParameters, RegistryBody
from transship.oci.reference import MAX_REPOSITORY_LENGTH, REPOSITORY_PATTERN

OPENAPI_PATH = "/openapi.json"
# The request models of the management API: component name → pydantic model.
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "ImportImageParameters": ImportImageParameters,
    "RegistryBody": RegistryBody,
}
_REF = "#/components/schemas/{model}"
JSON = "application/json"


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema; every property is required unless `required` says otherwise."""
    names = list(properties) if required is None else list(required)
    return {"type": "object", "properties": properties, "required": names, **extra}


_STRING = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_DATE_TIME = {"type": "string", "format": "date-time"}
_STRINGS = {"type": "array", "items": _STRING}


def request_schemas() -> dict[str, Any]:
    """The JSON Schemas of the request models (pydantic's, by alias), with nested models
    hoisted to top-level components."""
    schemas: dict[str, Any] = {}
    for name, model in REQUEST_MODELS.items():
        schema = model.model_json_schema(by_alias=True, ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


def _response_schemas() -> dict[str, Any]:
    changeable = _obj(
        {name: {"type": "boolean"} for name in ("deleteEnabled", "writeEnabled", "readEnabled", "listEnabled")}
    )
    return {
        "ArmError": _obj(
            {
                "error": _obj(
                    {
                        "code": _STRING,
                        "message": _STRING,
                        "target": _STRING,
                        "details": {"type": "array", "items": _obj({"code": _STRING, "message": _STRING})},
                    },
                    ("code", "message"),
                )
            },
            description="The ARM error envelope.",
        ),
        "OciError": _obj(
            {
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": _obj({"code": _STRING, "message": _STRING, "detail": {}}, ("code", "message")),
                }
            },
            description="The OCI distribution error envelope.",
        ),
        "ServiceInfo": _obj(
            {
                "version": _STRING,
                "subscriptionId": _STRING,
                "resourceGroup": _STRING,
                "location": _STRING,
                "loginServerSuffix": _STRING,
            }
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
                        "provisioningState": {"enum": ["Succeeded"]},
                        "adminUserEnabled": {"type": "boolean"},
                        "publicNetworkAccess": {"enum": ["Enabled", "Disabled"]},
                        "networkRuleBypassOptions": {"enum": ["AzureServices", "None"]},
                        "networkRuleSet": _obj(
                            {"defaultAction": {"enum": ["Allow", "Deny"]}, "ipRules": {"type": "array"}}
                        ),
                        "zoneRedundancy": {"enum": ["Enabled", "Disabled"]},
                        "dataEndpointEnabled": {"type": "boolean"},
                        "policies": {"type": "object"},
                    }
                ),
            },
            description="ACR's Registry resource.",
        ),
        "RegistryList": _obj({"value": {"type": "array", "items": _ref("Registry")}}),
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
        "OperationStatusList": _obj(
            {"value": {"type": "array", "items": _ref("OperationStatus")}, "nextLink": _STRING},
            required=("value",),
        ),
        "OperationResult": {"type": "object", "maxProperties": 0, "description": "An operation that succeeded."},
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
                        ("digest", "imageSize", "createdTime", "lastUpdateTime", "mediaType", "tags", "changeableAttributes"),
                    ),
                },
            }
        ),
        "DeletedRepository": _obj({"manifestsDeleted": _STRINGS, "tagsDeleted": _STRINGS}),
    }


# -- parameters, headers, responses --------------------------------------------------------
def _path_parameter(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string", **schema}}


_PARAMETERS: dict[str, Any] = {
    "SubscriptionId": _path_parameter("subscriptionId", "The service's subscription (see /transship/v1/info)."),
    "ResourceGroupName": _path_parameter("resourceGroupName", "The resource group (case-insensitive)."),
    "RegistryName": _path_parameter(
        "registryName",
        "A registry's name: 5-50 alphanumerics (ACR's rule).",
        pattern="^[a-zA-Z0-9]*$",
        minLength=5,
        maxLength=50,
    ),
    "AnyRegistryName": _path_parameter(
        "registryName", "A registry's name; deleting one that does not exist answers 204, whatever the name."
    ),
    "Location": _path_parameter("location", "The location of the registry the operation imports into."),
    "OperationId": _path_parameter("operationId", "The id of an import operation (32 hex digits)."),
    "ApiVersion": {
        "name": "api-version",
        "in": "query",
        "required": False,
        "description": "Accepted whatever its value (clients send 2025-04-01).",
        "schema": _STRING,
    },
    "Repository": _path_parameter(
        "repository",
        "A repository name of the OCI grammar; it may contain '/'.",
        pattern=f"^{REPOSITORY_PATTERN.pattern}$",
        maxLength=MAX_REPOSITORY_LENGTH,
    ),
    "PageSize": {
        "name": "n",
        "in": "query",
        "required": False,
        "description": "Items per page (default 100).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "PageLast": {
        "name": "last",
        "in": "query",
        "required": False,
        "description": "Answer the items after this one.",
        "schema": _STRING,
    },
    "Top": {
        "name": "$top",
        "in": "query",
        "required": False,
        "description": "Operations per page, 1 to 1000 (default 100); `nextLink` continues.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "SkipToken": {
        "name": "$skipToken",
        "in": "query",
        "required": False,
        "description": "Where the page starts: taken from a previous page's `nextLink`.",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    },
    "OrderBy": {
        "name": "orderby",
        "in": "query",
        "required": False,
        "description": "`timedesc` or `timeasc` (by lastUpdateTime); anything else orders by name or digest.",
        "schema": _STRING,
    },
}

_HEADERS: dict[str, Any] = {
    "RequestId": {"description": "A new id per request.", "required": True, "schema": _STRING},
    "CorrelationRequestId": {
        "description": "The request's `x-ms-correlation-request-id`, else the request id.",
        "required": True,
        "schema": _STRING,
    },
    "Location": {"description": "The operation's result URL (operationResults).", "required": True, "schema": _STRING},
    "AzureAsyncOperation": {
        "description": "The operation's status URL (operationStatuses).",
        "required": True,
        "schema": _STRING,
    },
    "RetryAfter": {"description": "Seconds to wait before polling.", "required": True, "schema": {"type": "integer"}},
    "Link": {"description": "The next page: `<path?last=…&n=…>; rel=\"next\"`.", "required": False, "schema": _STRING},
}
_ARM_HEADERS = {"x-ms-request-id": _ref("RequestId", "headers"), "x-ms-correlation-request-id": _ref("CorrelationRequestId", "headers")}


def _arm(description: str, schema: str | None = None, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A management API response, with the request id headers every one carries."""
    response: dict[str, Any] = {"description": description, "headers": {**_ARM_HEADERS, **(headers or {})}}
    if schema is not None:
        response["content"] = {JSON: {"schema": _ref(schema)}}
    return response


def _arm_error(description: str) -> dict[str, Any]:
    return _arm(description, "ArmError")


def _oci(description: str, schema: str = "OciError", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref(schema)}}}
    if headers:
        response["headers"] = headers
    return response


_RESPONSES: dict[str, Any] = {
    "Unauthorized": {
        **_arm_error("AuthenticationFailed: the admin credential is missing or wrong."),
        "headers": {
            **_ARM_HEADERS,
            "WWW-Authenticate": {"description": 'Basic realm="transship"', "required": True, "schema": _STRING},
        },
    },
    "NotFound": _arm_error("ResourceNotFound, SubscriptionNotFound or OperationNotFound."),
    "InvalidParameter": _arm_error(
        "InvalidParameter (`target` names the field), InvalidRequestContent (not JSON) or InvalidRegistryName."
    ),
    "Conflict": _arm_error("The registry name or login server is in use elsewhere, or the registry is the default one."),
    "OciBadRequest": _oci("NAME_INVALID or PAGINATION_NUMBER_INVALID."),
    "OciNotFound": _oci("NAME_UNKNOWN: no such repository."),
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
    security: list[Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": tags,
        "parameters": [_ref(name, "parameters") for name in parameters],
        "responses": responses,
    }
    if body is not None:
        media: dict[str, Any] = {"schema": _ref(body)}
        if body in _EXAMPLES:
            media["examples"] = _EXAMPLES[body]
        operation["requestBody"] = {"required": body_required, "content": {JSON: media}}
    if security is not None:
        operation["security"] = security
    return operation


def _paths() -> dict[str, Any]:
    names = {
        "sub": "{subscriptionId}",
        "rg": "{resourceGroupName}",
        "name": "{registryName}",
        "location": "{location}",
    }
    registries_in_subscription = (arm.SUBSCRIPTION + "/" + arm.PROVIDER + "/registries").format(**names)
    registries_in_group = arm.REGISTRIES_IN_GROUP.format(**names)
    registry = arm.REGISTRY.format(**names)
    location = arm.LOCATION.format(**names)
    unauthorized = _ref("Unauthorized", "responses")
    not_found = _ref("NotFound", "responses")
    common = ["SubscriptionId", "ApiVersion"]
    in_group = [*common, "ResourceGroupName", "RegistryName"]
    on_operation = [*common, "Location", "OperationId"]
    mgmt = ["Management"]
    acr = ["ACR data plane"]
    anonymous: list[Any] = []
    registry_list = {"200": _arm("The registries.", "RegistryList"), "401": unauthorized, "404": not_found}
    status = {"200": _arm("The operation's status.", "OperationStatus"), "401": unauthorized, "404": not_found}
    listing_errors = {"400": _ref("OciBadRequest", "responses"), "404": _ref("OciNotFound", "responses")}
    link = {"Link": _ref("Link", "headers")}
    return {
        OPENAPI_PATH: {
            "get": _op(
                "OpenApi_Get",
                "This document.",
                [],
                {"200": {"description": "The OpenAPI document.", "content": {JSON: {"schema": {"type": "object"}}}}},
                tags=["Service"],
                security=anonymous,
            )
        },
        "/transship/v1/info": {
            "get": _op(
                "Service_GetInfo",
                "The service's subscription, resource group, location and login server suffix.",
                [],
                {"200": _arm("The service.", "ServiceInfo"), "401": unauthorized},
                tags=["Service"],
            )
        },
        registries_in_subscription: {
            "get": _op("Registries_List", "The registries of the subscription.", common, registry_list, tags=mgmt)
        },
        registries_in_group: {
            "get": _op(
                "Registries_ListByResourceGroup",
                "The registries of a resource group.",
                [*common, "ResourceGroupName"],
                registry_list,
                tags=mgmt,
            )
        },
        registry: {
            "get": _op(
                "Registries_Get",
                "A registry.",
                in_group,
                {"200": _arm("The registry.", "Registry"), "401": unauthorized, "404": not_found},
                tags=mgmt,
            ),
            "put": _op(
                "Registries_Create",
                "Create a registry (or answer the existing one).",
                in_group,
                {
                    "200": _arm("The registry already existed.", "Registry"),
                    "201": _arm("The registry was created.", "Registry"),
                    "400": _ref("InvalidParameter", "responses"),
                    "401": unauthorized,
                    "404": not_found,
                    "409": _ref("Conflict", "responses"),
                },
                tags=mgmt,
                body="RegistryBody",
            ),
            "delete": _op(
                "Registries_Delete",
                "Delete a registry with its repositories.",
                [*common, "ResourceGroupName", "AnyRegistryName"],
                {
                    "200": _arm("Deleted."),
                    "204": _arm("There was no such registry."),
                    "401": unauthorized,
                    "404": not_found,
                    "409": _ref("Conflict", "responses"),
                },
                tags=mgmt,
            ),
        },
        registry + "/importImage": {
            "post": _op(
                "Registries_ImportImage",
                "Import an image into the registry (asynchronous).",
                in_group,
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
                    "400": _ref("InvalidParameter", "responses"),
                    "401": unauthorized,
                    "404": not_found,
                },
                tags=mgmt,
                body="ImportImageParameters",
                body_required=True,
            )
        },
        registry + "/importOperations": {
            "get": _op(
                "Registries_ListImportOperations",
                "The registry's import operations, newest first, paged (a Transship extension).",
                [*in_group, "Top", "SkipToken"],
                {
                    "200": _arm("The operations.", "OperationStatusList"),
                    "400": _ref("InvalidParameter", "responses"),
                    "401": unauthorized,
                    "404": not_found,
                },
                tags=mgmt,
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
                        headers={"Location": _ref("Location", "headers"), "Retry-After": _ref("RetryAfter", "headers")},
                    ),
                    "400": _arm_error("The import failed (the failure's code and details)."),
                    "401": unauthorized,
                    "404": _arm_error("OperationNotFound, or the import failed: ManifestUnknown, BlobUnknown…"),
                    "409": _arm_error("The import was canceled, or failed with TagAlreadyExists."),
                },
                tags=mgmt,
            )
        },
        location + "/operationStatuses/{operationId}": {
            "get": _op("Operations_GetStatus", "The status of an import operation.", on_operation, status, tags=mgmt)
        },
        location + "/operationStatuses/{operationId}/cancel": {
            "post": _op(
                "Operations_Cancel",
                "Cancel an import operation (a Transship extension).",
                on_operation,
                status,
                tags=mgmt,
            )
        },
        "/acr/v1/_catalog": {
            "get": _op(
                "Acr_Catalog",
                "The repositories of the registry the Host header names.",
                ["PageSize", "PageLast"],
                {"200": _oci("The repositories.", "Repositories", link), "400": _ref("OciBadRequest", "responses")},
                tags=acr,
                security=anonymous,
            )
        },
        "/acr/v1/{repository}": {
            "delete": _op(
                "Acr_DeleteRepository",
                "Delete a repository: its tags and manifests.",
                ["Repository"],
                {"202": _oci("Deleted.", "DeletedRepository"), **listing_errors},
                tags=acr,
                security=anonymous,
            )
        },
        "/acr/v1/{repository}/_tags": {
            "get": _op(
                "Acr_ListTags",
                "The tags of a repository.",
                ["Repository", "PageSize", "PageLast", "OrderBy"],
                {"200": _oci("The tags.", "TagList", link), **listing_errors},
                tags=acr,
                security=anonymous,
            )
        },
        "/acr/v1/{repository}/_manifests": {
            "get": _op(
                "Acr_ListManifests",
                "The manifests of a repository, with their tags, size and platform.",
                ["Repository", "PageSize", "PageLast", "OrderBy"],
                {"200": _oci("The manifests.", "ManifestList", link), **listing_errors},
                tags=acr,
                security=anonymous,
            )
        },
    }


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh dict each call)."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Transship management API and ACR data plane",
            "version": __version__,
            "description": (
                "The management API follows Azure Resource Manager shapes (ACR's registries and "
                "importImage); any `api-version` is accepted. It authenticates with the bootstrap "
                "admin credential (HTTP Basic). The ACR data plane (`/acr/v1`) is routed by the Host "
                "header, like `/v2`, and needs no credential yet."
            ),
        },
        "tags": [
            {"name": "Service"},
            {"name": "Management", "description": "ARM shapes; errors use the ARM envelope."},
            {"name": "ACR data plane", "description": "Errors use the OCI envelope."},
        ],
        "security": [{"adminBasic": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "adminBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The admin credential of <data-dir>/admin-credential.json.",
                }
            },
            "schemas": {**request_schemas(), **_response_schemas()},
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

