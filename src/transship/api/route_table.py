"""The route table: every route of the application, in registration order, with the
operations the OpenAPI document describes. `app.create_app` registers it and
`openapi.build_document` describes it (see `routes` for the shapes)."""

from __future__ import annotations

from aiohttp import web

from transship.api import (
    acr,
    arm_access,
    arm_authorization,
    arm_cache,
    arm_tenancy,
    arm_webhooks,
    dataplane_auth,
    graph,
    identity,
    import_batch,
    import_follow,
    ops,
    secrets,
    sync_rules,
    upstream_budgets,
    v2,
)
from transship.api import arm as management
from transship.api.arm import (
    FEATURE,
    LOCATION,
    PROVIDER,
    REGISTRIES_IN_GROUP,
    REGISTRY,
    SUBSCRIPTION,
)
from transship.api.arm_authorization import AUTHZ, ROLE_SCOPE
from transship.api.identity import TENANT
from transship.api.openapi import OPENAPI_PATH, openapi_json
from transship.api.openapi_components import errors
from transship.api.routes import (
    ANONYMOUS,
    FORM,
    REGISTRY_SECURITY,
    Operation,
    Reply,
    Route,
    arm,
    route,
)
from transship.wire import acr as acr_wire
from transship.wire import arm as resources
from transship.wire import batch as batch_wire
from transship.wire import bodies, forms
from transship.wire import cache as cache_wire
from transship.wire import dry_run as dry_run_wire
from transship.wire import identity as identity_wire
from transship.wire import sync as sync_wire
from transship.wire import webhooks as webhooks_wire
from transship.wire.service import OpenApiDocument

_MGMT = ("Management",)
_ACCESS = ("Registry access",)
_WEBHOOK_TAG = ("Webhooks",)
_CACHE_TAG = ("Artifact cache",)
_TENANCY = ("Tenancy",)
_DIRECTORY = ("Directory",)
_AUTHORIZATION = ("Authorization",)
_IDENTITY = ("Identity",)
_DATA_PLANE_AUTH = ("Data-plane tokens",)
_ACR = ("ACR data plane",)
_COMMON = ("SubscriptionId", "ApiVersion")
_IN_GROUP = (*_COMMON, "ResourceGroupName", "RegistryName")
# A registry's path as the document names its parameters (for operations given a `path`).
_DOCUMENTED_REGISTRY = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/"
    + PROVIDER
    + "/registries/{registryName}"
)


async def merge_leading_slashes(request: web.Request) -> web.StreamResponse:
    """`az cloud register --endpoint-resource-manager https://host/` appends its paths to the
    URL as given: `//metadata/endpoints`. Redirect such requests to the path with one slash,
    query kept. A route (registered last, so only such paths reach it), not a middleware:
    nothing is added to every other request's path."""
    target = request.rel_url.with_path("/" + request.path.lstrip("/")).with_query(
        request.rel_url.query
    )
    raise web.HTTPPermanentRedirect(target)


def _arm_error(description: str) -> Reply:
    return arm(description, resources.ArmError)


# -- the OCI distribution API (its own specification documents it) ---------------------------
_V2 = (
    route("GET", "/v2/", v2.base),
    route("GET", "/v2", v2.base),
    route("GET", "/v2/_catalog", v2.catalog),
    route("*", r"/v2/{tail:[\s\S]+}", v2.dispatch),
)


# -- the ACR data plane ----------------------------------------------------------------------
_AUTH_ERRORS: dict[int, Reply | str] = {401: "OciUnauthorized", 403: "OciDenied"}
_LISTING_ERRORS: dict[int, Reply | str] = {
    400: "OciBadRequest",
    **_AUTH_ERRORS,
    404: "OciNotFound",
}
_LINK = {"Link": "Link"}
_OCI_TOO_LARGE = Reply("SIZE_INVALID: the body is larger than the limit.", acr_wire.OciError)
_LOCKED = Reply(
    "REGISTRY_DISALLOWED_OPERATION: the repository, or something in it, is locked "
    "(deleteEnabled or writeEnabled false).",
    acr_wire.OciError,
)
# Anonymous callers may read repositories' listings when the registry allows anonymous pull.
_PULL = (*REGISTRY_SECURITY, {})
_ACR_ROUTES = (
    route(
        "GET",
        "/acr/v1/_catalog",
        acr.catalog,
        Operation(
            "Acr_Catalog",
            "The repositories of the registry the Host header names.",
            _ACR,
            {
                200: Reply("The repositories.", acr_wire.Repositories, _LINK),
                400: "OciBadRequest",
                **_AUTH_ERRORS,
            },
            ("PageSize", "PageLast"),
            security=REGISTRY_SECURITY,
        ),
    ),
    # One route serves the repository, its listings and their items; the document names
    # each operation's own path.
    route(
        "*",
        r"/acr/v1/{tail:[\s\S]+}",
        acr.dispatch,
        Operation(
            "Acr_DeleteRepository",
            "Delete a repository: its tags and manifests.",
            _ACR,
            {
                202: Reply("Deleted.", acr_wire.DeletedRepository),
                **_LISTING_ERRORS,
                405: _LOCKED,
            },
            ("Repository",),
            security=REGISTRY_SECURITY,
            path="/acr/v1/{repository}",
            method="DELETE",
        ),
        Operation(
            "Acr_GetRepositoryAttributes",
            "A repository: its counts, times and changeable attributes.",
            _ACR,
            {200: Reply("The repository.", acr_wire.RepositoryAttributes), **_LISTING_ERRORS},
            ("Repository",),
            security=_PULL,
            path="/acr/v1/{repository}",
            method="GET",
        ),
        Operation(
            "Acr_UpdateRepositoryAttributes",
            "Lock or unlock a repository: set its changeable attributes (deleteEnabled, "
            "writeEnabled, readEnabled, listEnabled), which apply to everything in it.",
            _ACR,
            {
                200: Reply("The repository as updated.", acr_wire.RepositoryAttributes),
                **_LISTING_ERRORS,
                413: _OCI_TOO_LARGE,
            },
            ("Repository",),
            request=acr_wire.ChangeableAttributesUpdate,
            security=REGISTRY_SECURITY,
            path="/acr/v1/{repository}",
            method="PATCH",
        ),
        Operation(
            "Acr_GetTagAttributes",
            "A tag: its digest, times and changeable attributes.",
            _ACR,
            {200: Reply("The tag.", acr_wire.TagItem), **_LISTING_ERRORS},
            ("Repository", "Tag"),
            security=_PULL,
            path="/acr/v1/{repository}/_tags/{tag}",
            method="GET",
        ),
        Operation(
            "Acr_UpdateTagAttributes",
            "Lock or unlock a tag: set its changeable attributes.",
            _ACR,
            {
                200: Reply("The tag as updated.", acr_wire.TagItem),
                **_LISTING_ERRORS,
                413: _OCI_TOO_LARGE,
            },
            ("Repository", "Tag"),
            request=acr_wire.ChangeableAttributesUpdate,
            security=REGISTRY_SECURITY,
            path="/acr/v1/{repository}/_tags/{tag}",
            method="PATCH",
        ),
        Operation(
            "Acr_GetManifestAttributes",
            "A manifest: its tags, size, platform and changeable attributes.",
            _ACR,
            {200: Reply("The manifest.", acr_wire.ManifestItem), **_LISTING_ERRORS},
            ("Repository", "ManifestDigest"),
            security=_PULL,
            path="/acr/v1/{repository}/_manifests/{digest}",
            method="GET",
        ),
        Operation(
            "Acr_UpdateManifestAttributes",
            "Lock or unlock a manifest: set its changeable attributes.",
            _ACR,
            {
                200: Reply("The manifest as updated.", acr_wire.ManifestItem),
                **_LISTING_ERRORS,
                413: _OCI_TOO_LARGE,
            },
            ("Repository", "ManifestDigest"),
            request=acr_wire.ChangeableAttributesUpdate,
            security=REGISTRY_SECURITY,
            path="/acr/v1/{repository}/_manifests/{digest}",
            method="PATCH",
        ),
        Operation(
            "Acr_ListTags",
            "The tags of a repository.",
            _ACR,
            {200: Reply("The tags.", acr_wire.TagList, _LINK), **_LISTING_ERRORS},
            ("Repository", "PageSize", "PageLast", "OrderBy"),
            security=_PULL,
            path="/acr/v1/{repository}/_tags",
            method="GET",
        ),
        Operation(
            "Acr_ListManifests",
            "The manifests of a repository, with their tags, size and platform.",
            _ACR,
            {200: Reply("The manifests.", acr_wire.ManifestList, _LINK), **_LISTING_ERRORS},
            ("Repository", "PageSize", "PageLast", "OrderBy"),
            security=_PULL,
            path="/acr/v1/{repository}/_manifests",
            method="GET",
        ),
    ),
)


# -- registries and import operations --------------------------------------------------------
_REGISTRY_LIST = {200: arm("The registries the caller may read.", resources.RegistryList)}
_STATUS = {200: arm("The operation's status.", resources.OperationStatus), **errors(401, 404)}
_CREDENTIALS = arm("The admin user's name and passwords.", resources.RegistryCredentials)
_ON_OPERATION = (*_COMMON, "Location", "OperationId")
_VERSIONED = {"ETag": "OperationVersion", "Cache-Control": "NoStore"}
_REGISTRIES = (
    route(
        "GET",
        "/transship/v1/info",
        management.info,
        Operation(
            "Service_GetInfo",
            "The caller, its tenant and first subscription, and the service's defaults.",
            ("Service",),
            {200: arm("The service.", resources.ServiceInfo), **errors(401)},
        ),
    ),
    route(
        "GET",
        "/transship/v1/upstreamBudgets",
        upstream_budgets.upstream_budgets,
        Operation(
            "Service_ListUpstreamBudgets",
            "The rate-limit budget of each upstream host and credential user that imports "
            "share (a Transship extension); callers outside the root tenant see the "
            "anonymous budgets only.",
            ("Service",),
            {200: arm("The budgets.", resources.UpstreamBudgetList), **errors(401)},
        ),
    ),
    route(
        "GET",
        SUBSCRIPTION + "/" + PROVIDER + "/registries",
        management.registries_list,
        Operation(
            "Registries_List",
            "The registries of the subscription.",
            _MGMT,
            {**_REGISTRY_LIST, **errors(401, 404)},
            _COMMON,
        ),
    ),
    route(
        "GET",
        REGISTRIES_IN_GROUP,
        management.registries_list,
        Operation(
            "Registries_ListByResourceGroup",
            "The registries of a resource group.",
            _MGMT,
            {**_REGISTRY_LIST, **errors(401, 404)},
            (*_COMMON, "ResourceGroupName"),
        ),
    ),
    route(
        "GET",
        REGISTRY,
        management.registry_get,
        Operation(
            "Registries_Get",
            "A registry.",
            _MGMT,
            {200: arm("The registry.", resources.Registry), **errors(401, 403, 404)},
            _IN_GROUP,
        ),
    ),
    route(
        "PUT",
        REGISTRY,
        management.registry_put,
        Operation(
            "Registries_Create",
            "Create a registry (or answer the existing one, with the access properties given "
            "applied).",
            _MGMT,
            {
                200: arm("The registry already existed.", resources.Registry),
                201: arm("The registry was created.", resources.Registry),
                **errors(400, 401, 403, 404, 409, 413),
            },
            _IN_GROUP,
            request=bodies.RegistryBody,
        ),
    ),
    route(
        "PATCH",
        REGISTRY,
        management.registry_patch,
        Operation(
            "Registries_Update",
            "Change a registry's properties: SKU, tags, admin user, anonymous pull, network "
            "rules, retention policy.",
            _MGMT,
            {200: arm("The registry.", resources.Registry), **errors(400, 401, 403, 404, 413)},
            _IN_GROUP,
            request=bodies.RegistryBody,
        ),
    ),
    route(
        "DELETE",
        REGISTRY,
        management.registry_delete,
        Operation(
            "Registries_Delete",
            "Delete a registry with its repositories.",
            _MGMT,
            {
                200: arm("Deleted."),
                204: arm("There was no such registry."),
                **errors(401, 403, 404, 409),
            },
            (*_COMMON, "ResourceGroupName", "AnyRegistryName"),
        ),
    ),
    route(
        "POST",
        REGISTRY + "/listCredentials",
        management.list_credentials,
        Operation(
            "Registries_ListCredentials",
            "The admin user's name and passwords.",
            _MGMT,
            {
                200: _CREDENTIALS,
                400: _arm_error("AdminUserDisabled: the registry's admin user is disabled."),
                **errors(401, 403, 404),
            },
            _IN_GROUP,
        ),
    ),
    route(
        "POST",
        REGISTRY + "/regenerateCredential",
        management.regenerate_credential,
        Operation(
            "Registries_RegenerateCredential",
            "A new value for one of the admin user's passwords.",
            _MGMT,
            {
                200: _CREDENTIALS,
                400: _arm_error(
                    "InvalidParameter, or AdminUserDisabled: the registry's admin user is disabled."
                ),
                **errors(401, 403, 404, 413),
            },
            _IN_GROUP,
            request=bodies.RegenerateCredentialBody,
            request_required=True,
        ),
    ),
    route(
        "POST",
        REGISTRY + "/importImage",
        management.import_image,
        Operation(
            "Registries_ImportImage",
            "Import an image into the registry (asynchronous); with `dryRun: true` (a "
            "Transship extension), plan it without writing anything and answer the plan.",
            _MGMT,
            {
                200: arm(
                    "Dry run (`dryRun: true`): the plan, computed now; no operation was started "
                    "and nothing written. A failure of the plan step (ManifestUnknown, egress "
                    "refusals, UpstreamUnauthorized, the import limits) is answered at once, "
                    "with the status and code the import's operation would end with.",
                    dry_run_wire.ImportDryRun,
                ),
                202: arm(
                    "Accepted: poll Location for the result (as ACR); the body's `id` is the "
                    "operation's status URL.",
                    resources.OperationStatus,
                    {"Location": "Location", "Retry-After": "RetryAfter"},
                ),
                **errors(400, 401),
                403: _arm_error(
                    "AuthorizationFailed: the caller may not import into the registry, or not read "
                    "the source."
                ),
                **errors(404, 413),
            },
            _IN_GROUP,
            request=bodies.ImportImageParameters,
            request_required=True,
        ),
    ),
    route(
        "GET",
        REGISTRY + "/importOperations",
        management.import_operations,
        Operation(
            "Registries_ListImportOperations",
            "The registry's import operations, newest first, paged (a Transship extension).",
            _MGMT,
            {
                200: arm("The operations.", resources.OperationStatusList),
                **errors(400, 401, 403, 404),
            },
            (*_IN_GROUP, "Top", "SkipToken"),
        ),
    ),
    route(
        "POST",
        REGISTRY + "/importImages",
        import_batch.import_images,
        Operation(
            "Registries_ImportImages",
            "Import many images in one batch operation (asynchronous; a Transship extension): "
            "every item is validated and authorized first, and nothing is queued unless all "
            "pass; the items then run concurrently within the import limits, and one item's "
            "failure does not stop the others.",
            _MGMT,
            {
                202: arm(
                    "Accepted: follow the batch at Azure-AsyncOperation (also Location).",
                    batch_wire.ImportBatchStatus,
                    {
                        "Azure-AsyncOperation": "BatchUrl",
                        "Location": "BatchUrl",
                        "Retry-After": "RetryAfter",
                    },
                ),
                400: _arm_error(
                    "InvalidParameter (or another import refusal) naming the item's field as "
                    "`images[i].field`; nothing was queued."
                ),
                **errors(401),
                403: _arm_error(
                    "AuthorizationFailed: the caller may not import into the registry, or an "
                    "item's source may not be read (naming `images[i]`)."
                ),
                **errors(404, 413),
            },
            _IN_GROUP,
            request=batch_wire.ImportImagesParameters,
            request_required=True,
        ),
    ),
    route(
        "GET",
        REGISTRY + "/importBatches/{batch}",
        import_batch.import_batch,
        Operation(
            "Registries_GetImportBatch",
            "An import batch's status, per item (a Transship extension); with If-None-Match "
            "and waitSeconds, a long poll answered when the batch changes or the wait ends.",
            _MGMT,
            {
                200: arm("The batch's status.", batch_wire.ImportBatchStatus, _VERSIONED),
                304: arm("The batch did not change during the wait.", headers=_VERSIONED),
                **errors(400, 401, 403, 404),
            },
            (*_IN_GROUP, "BatchId", "WaitSeconds", "IfNoneMatchVersion"),
        ),
    ),
    route(
        "POST",
        REGISTRY + "/importBatches/{batch}/cancel",
        import_batch.import_batch_cancel,
        Operation(
            "Registries_CancelImportBatch",
            "Cancel an import batch (a Transship extension): its queued items at once, its "
            "running ones at their next heartbeat.",
            _MGMT,
            {
                200: arm("The batch's status after the request.", batch_wire.ImportBatchStatus),
                **errors(401, 403, 404),
            },
            (*_IN_GROUP, "BatchId"),
        ),
    ),
    route(
        "POST",
        SUBSCRIPTION + "/" + PROVIDER + "/checkNameAvailability",
        management.check_name,
        Operation(
            "Registries_CheckNameAvailability",
            "Whether a registry name is available (names are unique across the service).",
            _MGMT,
            {
                200: arm("The name's availability.", resources.NameAvailability),
                **errors(400, 401, 404, 413),
            },
            _COMMON,
            request=bodies.CheckNameBody,
            request_required=True,
        ),
    ),
    route(
        "GET",
        REGISTRY + "/listUsages",
        management.list_usages,
        Operation(
            "Registries_ListUsages",
            "The registry's storage (bytes of its distinct blobs), scope maps and tokens, "
            "with ACR's limits for its SKU (not enforced).",
            _MGMT,
            {200: arm("The usages.", resources.UsageList), **errors(401, 403, 404)},
            _IN_GROUP,
        ),
    ),
    route(
        "GET",
        REGISTRY + "/replications",
        management.replications_list,
        Operation(
            "Replications_List",
            "The registry's replications: none (Transship does not replicate).",
            _MGMT,
            {200: arm("No replications.", resources.ReplicationList), **errors(401, 403, 404)},
            _IN_GROUP,
        ),
    ),
    route(
        "*",
        REGISTRY + "/" + FEATURE,
        management.unsupported_feature,
        Operation(
            "Registries_UnsupportedFeature",
            "A feature of ACR that Transship does not offer (tasks, runs, builds…): "
            "FeatureNotSupported, on every method.",
            _MGMT,
            {
                400: _arm_error("FeatureNotSupported: the feature is not offered."),
                **errors(401, 403, 404),
            },
            (*_IN_GROUP, "UnsupportedFeature"),
            path=_DOCUMENTED_REGISTRY + "/{feature}",
            method="POST",
        ),
    ),
    route(
        "*",
        REGISTRY + "/" + FEATURE + "/{item:.+}",
        management.unsupported_feature,
        Operation(
            "Registries_UnsupportedFeatureItem",
            "An item of a feature of ACR that Transship does not offer (a replication, a "
            "task, a cache rule…): FeatureNotSupported, on every method.",
            _MGMT,
            {
                400: _arm_error("FeatureNotSupported: the feature is not offered."),
                **errors(401, 403, 404),
            },
            (*_IN_GROUP, "UnsupportedFeature", "FeatureItem"),
            path=_DOCUMENTED_REGISTRY + "/{feature}/{item}",
            method="PUT",
        ),
    ),
    route(
        "GET",
        LOCATION + "/operationResults/{operation}",
        management.operation_result,
        Operation(
            "Operations_GetResult",
            "The result of an import operation.",
            _MGMT,
            {
                200: arm("Succeeded.", resources.OperationResult),
                202: arm(
                    "Still queued or running.",
                    resources.OperationPending,
                    {"Location": "Location", "Retry-After": "RetryAfter"},
                ),
                400: _arm_error("The import failed (the failure's code and details)."),
                **errors(401),
                404: _arm_error(
                    "SubscriptionNotFound, OperationNotFound, or the import failed: "
                    "ManifestUnknown, BlobUnknown…"
                ),
                409: _arm_error("The import was canceled, or failed with TagAlreadyExists."),
            },
            _ON_OPERATION,
        ),
    ),
    route(
        "GET",
        LOCATION + "/operationStatuses/{operation}",
        management.operation_status,
        Operation(
            "Operations_GetStatus",
            "The status of an import operation.",
            _MGMT,
            _STATUS,
            _ON_OPERATION,
        ),
    ),
    route(
        "POST",
        LOCATION + "/operationStatuses/{operation}/cancel",
        management.operation_cancel,
        Operation(
            "Operations_Cancel",
            "Cancel an import operation (a Transship extension).",
            _MGMT,
            _STATUS,
            _ON_OPERATION,
        ),
    ),
    route(
        "GET",
        "/transship/v1" + SUBSCRIPTION + "/importOperations/{operation}",
        import_follow.follow_operation,
        Operation(
            "Operations_Follow",
            "An import operation's status as a long poll (a Transship extension): with "
            "If-None-Match and waitSeconds, answered when the operation changes or the wait "
            "ends.",
            _MGMT,
            {
                200: arm(
                    "The operation's status, a version other than If-None-Match names.",
                    resources.OperationStatus,
                    _VERSIONED,
                ),
                304: arm("The operation did not change during the wait.", headers=_VERSIONED),
                **errors(400, 401, 404),
            },
            ("SubscriptionId", "OperationId", "WaitSeconds", "IfNoneMatchVersion"),
        ),
    ),
)


# -- webhooks ----------------------------------------------------------------------------------
_WEBHOOK_PATH = REGISTRY + "/webhooks"
_ON_WEBHOOK = (*_IN_GROUP, "WebhookName")
_WEBHOOK_MISSING = _arm_error("The registry or the webhook does not exist.")
_WEBHOOKS = (
    route(
        "GET",
        _WEBHOOK_PATH,
        arm_webhooks.webhooks_list,
        Operation(
            "Webhooks_List",
            "The registry's webhooks (without their URIs and headers: see getCallbackConfig).",
            _WEBHOOK_TAG,
            {200: arm("The webhooks.", webhooks_wire.WebhookList), **errors(401, 403, 404)},
            _IN_GROUP,
        ),
    ),
    route(
        "GET",
        _WEBHOOK_PATH + "/{webhook}",
        arm_webhooks.webhook_get,
        Operation(
            "Webhooks_Get",
            "A webhook.",
            _WEBHOOK_TAG,
            {
                200: arm("The webhook.", webhooks_wire.Webhook),
                **errors(401, 403),
                404: _WEBHOOK_MISSING,
            },
            _ON_WEBHOOK,
        ),
    ),
    route(
        "PUT",
        _WEBHOOK_PATH + "/{webhook}",
        arm_webhooks.webhook_put,
        Operation(
            "Webhooks_Create",
            "Create a webhook, or replace every setting of one (its signing secret stays).",
            _WEBHOOK_TAG,
            {
                200: arm("Replaced.", webhooks_wire.Webhook),
                201: arm("Created.", webhooks_wire.Webhook),
                400: _arm_error(
                    "InvalidParameter (naming the field: serviceUri, actions, scope, "
                    "customHeaders, webhookName) or QuotaExceeded (webhooks per registry)."
                ),
                **errors(401, 403, 404, 409, 413),
            },
            (*_IN_GROUP, "NewWebhookName"),
            request=webhooks_wire.WebhookCreateBody,
            request_required=True,
        ),
    ),
    route(
        "PATCH",
        _WEBHOOK_PATH + "/{webhook}",
        arm_webhooks.webhook_patch,
        Operation(
            "Webhooks_Update",
            "Change a webhook; what is not given stays (`customHeaders: {}` clears them).",
            _WEBHOOK_TAG,
            {
                200: arm("Changed.", webhooks_wire.Webhook),
                **errors(400, 401, 403),
                404: _WEBHOOK_MISSING,
                **errors(413),
            },
            _ON_WEBHOOK,
            request=webhooks_wire.WebhookUpdateBody,
            request_required=True,
        ),
    ),
    route(
        "DELETE",
        _WEBHOOK_PATH + "/{webhook}",
        arm_webhooks.webhook_delete,
        Operation(
            "Webhooks_Delete",
            "Delete a webhook with its delivery log; undelivered events are dropped.",
            _WEBHOOK_TAG,
            {
                200: arm("Deleted."),
                204: arm("There was no such webhook."),
                **errors(401, 403, 404),
            },
            _ON_WEBHOOK,
        ),
    ),
    route(
        "POST",
        _WEBHOOK_PATH + "/{webhook}/ping",
        arm_webhooks.webhook_ping,
        Operation(
            "Webhooks_Ping",
            "Send the webhook a ping event (delivered and logged like any event).",
            _WEBHOOK_TAG,
            {
                200: arm("The ping event's id.", webhooks_wire.EventInfo),
                **errors(401, 403),
                404: _WEBHOOK_MISSING,
            },
            _ON_WEBHOOK,
        ),
    ),
    route(
        "POST",
        _WEBHOOK_PATH + "/{webhook}/getCallbackConfig",
        arm_webhooks.webhook_callback_config,
        Operation(
            "Webhooks_GetCallbackConfig",
            "Where the webhook posts, its custom headers and the key of its signature.",
            _WEBHOOK_TAG,
            {
                200: arm("The callback configuration.", webhooks_wire.CallbackConfig),
                **errors(401, 403),
                404: _WEBHOOK_MISSING,
            },
            _ON_WEBHOOK,
        ),
    ),
    *(
        route(
            method,
            _WEBHOOK_PATH + "/{webhook}/listEvents",
            arm_webhooks.webhook_events,
            Operation(
                f"Webhooks_ListEvents{suffix}",
                summary,
                _WEBHOOK_TAG,
                {
                    200: arm("The deliveries, newest first.", webhooks_wire.EventList),
                    **errors(400, 401, 403),
                    404: _WEBHOOK_MISSING,
                },
                (*_ON_WEBHOOK, "EventsSkipToken"),
            ),
        )
        for method, suffix, summary in (
            ("POST", "", "The webhook's delivery log, newest first, paged."),
            ("GET", "_NextPage", "A further page of the delivery log (a nextLink)."),
        )
    ),
)


# -- the artifact cache: cache rules, credential sets, the secret store ---------------------
_CACHE_RULES = REGISTRY + "/cacheRules"
_CREDENTIAL_SETS = REGISTRY + "/credentialSets"
_ON_RULE = (*_IN_GROUP, "CacheRuleName")
_ON_SET = (*_IN_GROUP, "CredentialSetName")
_RULE_MISSING = _arm_error("The registry or the cache rule does not exist.")
_SET_MISSING = _arm_error("The registry or the credential set does not exist.")
_RULE_INVALID = _arm_error(
    "InvalidParameter naming the field (sourceRepository, targetRepository — a target "
    "another rule has, or a wildcard overlapping another wildcard rule —, "
    "credentialSetResourceId, identity, cacheRuleName) or QuotaExceeded (1000 rules)."
)
_SET_INVALID = _arm_error(
    "InvalidParameter naming the field (loginServer, "
    "authCredentials.usernameSecretIdentifier, authCredentials.passwordSecretIdentifier, "
    "identity.type, credentialSetName) or QuotaExceeded."
)
_SECRETS = "/transship/v1/secrets"
_CACHE = (
    route(
        "GET",
        _CACHE_RULES,
        arm_cache.cache_rules_list,
        Operation(
            "CacheRules_List",
            "The registry's cache rules.",
            _CACHE_TAG,
            {200: arm("The cache rules.", cache_wire.CacheRuleList), **errors(401, 403, 404)},
            _IN_GROUP,
        ),
    ),
    route(
        "GET",
        _CACHE_RULES + "/{rule}",
        arm_cache.cache_rule_get,
        Operation(
            "CacheRules_Get",
            "A cache rule.",
            _CACHE_TAG,
            {
                200: arm("The cache rule.", cache_wire.CacheRule),
                **errors(401, 403),
                404: _RULE_MISSING,
            },
            _ON_RULE,
        ),
    ),
    route(
        "PUT",
        _CACHE_RULES + "/{rule}",
        arm_cache.cache_rule_put,
        Operation(
            "CacheRules_Create",
            "Create a cache rule (done when answered: provisioningState Succeeded); on an "
            "existing rule, set its credential set (its repositories cannot change).",
            _CACHE_TAG,
            {
                200: arm("Changed.", cache_wire.CacheRule),
                201: arm("Created.", cache_wire.CacheRule),
                400: _RULE_INVALID,
                **errors(401, 403, 404, 409, 413),
            },
            (*_IN_GROUP, "NewCacheRuleName"),
            request=cache_wire.CacheRuleCreateBody,
            request_required=True,
        ),
    ),
    route(
        "PATCH",
        _CACHE_RULES + "/{rule}",
        arm_cache.cache_rule_patch,
        Operation(
            "CacheRules_Update",
            "Set (an id) or remove (null) the rule's credential set.",
            _CACHE_TAG,
            {
                200: arm("Changed.", cache_wire.CacheRule),
                400: _RULE_INVALID,
                **errors(401, 403),
                404: _RULE_MISSING,
                **errors(413),
            },
            _ON_RULE,
            request=cache_wire.CacheRuleUpdateBody,
            request_required=True,
        ),
    ),
    route(
        "DELETE",
        _CACHE_RULES + "/{rule}",
        arm_cache.cache_rule_delete,
        Operation(
            "CacheRules_Delete",
            "Delete a cache rule; what it cached stays, as ordinary repositories.",
            _CACHE_TAG,
            {
                202: arm("Deleted (done when answered)."),
                204: arm("There was no such cache rule."),
                **errors(401, 403, 404),
            },
            _ON_RULE,
        ),
    ),
    route(
        "GET",
        _CREDENTIAL_SETS,
        arm_cache.credential_sets_list,
        Operation(
            "CredentialSets_List",
            "The registry's credential sets, with the health of their secrets.",
            _CACHE_TAG,
            {
                200: arm("The credential sets.", cache_wire.CredentialSetList),
                **errors(401, 403, 404),
            },
            _IN_GROUP,
        ),
    ),
    route(
        "GET",
        _CREDENTIAL_SETS + "/{set}",
        arm_cache.credential_set_get,
        Operation(
            "CredentialSets_Get",
            "A credential set: its login server, secret identifiers and their health.",
            _CACHE_TAG,
            {
                200: arm("The credential set.", cache_wire.CredentialSet),
                **errors(401, 403),
                404: _SET_MISSING,
            },
            _ON_SET,
        ),
    ),
    route(
        "PUT",
        _CREDENTIAL_SETS + "/{set}",
        arm_cache.credential_set_put,
        Operation(
            "CredentialSets_Create",
            "Create a credential set, or replace its login server and secret identifiers "
            "(done when answered: provisioningState Succeeded).",
            _CACHE_TAG,
            {
                200: arm("Replaced.", cache_wire.CredentialSet),
                201: arm("Created.", cache_wire.CredentialSet),
                400: _SET_INVALID,
                **errors(401, 403, 404, 409, 413),
            },
            (*_IN_GROUP, "NewCredentialSetName"),
            request=cache_wire.CredentialSetCreateBody,
            request_required=True,
        ),
    ),
    route(
        "PATCH",
        _CREDENTIAL_SETS + "/{set}",
        arm_cache.credential_set_patch,
        Operation(
            "CredentialSets_Update",
            "Change the secret identifiers given; the rest stays.",
            _CACHE_TAG,
            {
                200: arm("Changed.", cache_wire.CredentialSet),
                400: _SET_INVALID,
                **errors(401, 403),
                404: _SET_MISSING,
                **errors(413),
            },
            _ON_SET,
            request=cache_wire.CredentialSetUpdateBody,
            request_required=True,
        ),
    ),
    route(
        "DELETE",
        _CREDENTIAL_SETS + "/{set}",
        arm_cache.credential_set_delete,
        Operation(
            "CredentialSets_Delete",
            "Delete a credential set no cache rule uses (409 Conflict naming the rules otherwise).",
            _CACHE_TAG,
            {
                202: arm("Deleted (done when answered)."),
                204: arm("There was no such credential set."),
                **errors(401, 403, 404, 409),
            },
            _ON_SET,
        ),
    ),
    route(
        "GET",
        _SECRETS,
        secrets.secrets_list,
        Operation(
            "Secrets_List",
            "The identifiers of the secrets credential sets resolve against (never the "
            "values; a Transship extension for the root tenant's administrators).",
            ("Service",),
            {200: arm("The secrets' identifiers.", cache_wire.SecretList), **errors(401, 403)},
        ),
    ),
    route(
        "PUT",
        _SECRETS,
        secrets.secret_put,
        Operation(
            "Secrets_Set",
            "Set or replace a secret (sealed with the service key; its value is never answered).",
            ("Service",),
            {
                200: arm("Replaced.", cache_wire.Secret),
                201: arm("Created.", cache_wire.Secret),
                **errors(400, 401, 403, 413),
            },
            request=cache_wire.SecretBody,
            request_required=True,
        ),
    ),
    route(
        "DELETE",
        _SECRETS,
        secrets.secret_delete,
        Operation(
            "Secrets_Delete",
            "Delete a secret; credential sets naming it turn Unhealthy.",
            ("Service",),
            {
                200: arm("Deleted."),
                204: arm("There was no such secret."),
                **errors(400, 401, 403),
            },
            ("SecretIdentifier",),
        ),
    ),
)


# -- scope maps, tokens and their passwords --------------------------------------------------
_SCOPE_MAPS = REGISTRY + "/scopeMaps"
_TOKENS = REGISTRY + "/tokens"
_REGISTRY_ACCESS = (
    route(
        "GET",
        _SCOPE_MAPS,
        arm_access.scope_maps_list,
        Operation(
            "ScopeMaps_List",
            "The registry's scope maps, built-in ones first.",
            _ACCESS,
            {200: arm("The scope maps.", resources.ScopeMapList), **errors(401, 403, 404)},
            _IN_GROUP,
        ),
    ),
    route(
        "GET",
        _SCOPE_MAPS + "/{item}",
        arm_access.scope_map_get,
        Operation(
            "ScopeMaps_Get",
            "A scope map.",
            _ACCESS,
            {200: arm("The scope map.", resources.ScopeMap), **errors(401, 403, 404)},
            (*_IN_GROUP, "ScopeMapName"),
        ),
    ),
    route(
        "PUT",
        _SCOPE_MAPS + "/{item}",
        arm_access.scope_map_put,
        Operation(
            "ScopeMaps_Create",
            "Create or replace a scope map.",
            _ACCESS,
            {
                200: arm("Replaced.", resources.ScopeMap),
                201: arm("Created.", resources.ScopeMap),
                **errors(400, 401, 403, 404),
                409: _arm_error(
                    "SystemScopeMapReadOnly: a built-in scope map; or a concurrent create."
                ),
                **errors(413),
            },
            (*_IN_GROUP, "NewScopeMapName"),
            request=bodies.ScopeMapBody,
            request_required=True,
        ),
    ),
    route(
        "PATCH",
        _SCOPE_MAPS + "/{item}",
        arm_access.scope_map_patch,
        Operation(
            "ScopeMaps_Update",
            "Change a scope map's description or actions; what is not given stays.",
            _ACCESS,
            {
                200: arm("Changed.", resources.ScopeMap),
                **errors(400, 401, 403),
                404: _arm_error("The registry or the scope map does not exist."),
                409: _arm_error("SystemScopeMapReadOnly: a built-in scope map."),
                **errors(413),
            },
            (*_IN_GROUP, "ScopeMapName"),
            request=bodies.ScopeMapPatchBody,
            request_required=True,
        ),
    ),
    route(
        "DELETE",
        _SCOPE_MAPS + "/{item}",
        arm_access.scope_map_delete,
        Operation(
            "ScopeMaps_Delete",
            "Delete a scope map.",
            _ACCESS,
            {
                200: arm("Deleted."),
                204: arm("There was no such scope map."),
                **errors(401, 403, 404),
                409: _arm_error(
                    "SystemScopeMapReadOnly (a built-in scope map) or ScopeMapInUse "
                    "(a token uses it)."
                ),
            },
            (*_IN_GROUP, "ScopeMapName"),
        ),
    ),
    route(
        "GET",
        _TOKENS,
        arm_access.tokens_list,
        Operation(
            "Tokens_List",
            "The registry's tokens.",
            _ACCESS,
            {200: arm("The tokens.", resources.TokenList), **errors(401, 403, 404)},
            _IN_GROUP,
        ),
    ),
    route(
        "GET",
        _TOKENS + "/{item}",
        arm_access.token_get,
        Operation(
            "Tokens_Get",
            "A token.",
            _ACCESS,
            {200: arm("The token.", resources.Token), **errors(401, 403, 404)},
            (*_IN_GROUP, "TokenName"),
        ),
    ),
    route(
        "PUT",
        _TOKENS + "/{item}",
        arm_access.token_put,
        Operation(
            "Tokens_Create",
            "Create or change a token: its scope map and status. Passwords come from "
            "generateCredentials.",
            _ACCESS,
            {
                200: arm("Changed.", resources.Token),
                201: arm("Created.", resources.Token),
                **errors(400, 401, 403),
                404: _arm_error("The registry or the scope map does not exist."),
                **errors(409, 413),
            },
            (*_IN_GROUP, "NewTokenName"),
            request=bodies.TokenBody,
            request_required=True,
        ),
    ),
    route(
        "PATCH",
        _TOKENS + "/{item}",
        arm_access.token_patch,
        Operation(
            "Tokens_Update",
            "Move a token to another scope map, or enable or disable it; what is not given stays.",
            _ACCESS,
            {
                200: arm("Changed.", resources.Token),
                **errors(400, 401, 403),
                404: _arm_error("The registry, the token or the scope map does not exist."),
                **errors(409, 413),
            },
            (*_IN_GROUP, "TokenName"),
            request=bodies.TokenPatchBody,
            request_required=True,
        ),
    ),
    route(
        "DELETE",
        _TOKENS + "/{item}",
        arm_access.token_delete,
        Operation(
            "Tokens_Delete",
            "Delete a token.",
            _ACCESS,
            {
                200: arm("Deleted."),
                204: arm("There was no such token."),
                **errors(401, 403, 404),
            },
            (*_IN_GROUP, "TokenName"),
        ),
    ),
    route(
        "POST",
        REGISTRY + "/generateCredentials",
        arm_access.generate_credentials,
        Operation(
            "Registries_GenerateCredentials",
            "New passwords for a token (both, or the one named), shown once.",
            _ACCESS,
            {
                200: arm("The passwords.", resources.GeneratedCredentials),
                **errors(400, 401, 403),
                404: _arm_error("The registry or the token does not exist."),
                **errors(413),
            },
            _IN_GROUP,
            request=bodies.GenerateCredentialsBody,
            request_required=True,
        ),
    ),
)


# -- tenancy: tenants, subscriptions, resources and resource groups --------------------------
def _resource_groups(groups: str, suffix: str) -> tuple[Route, ...]:
    """ARM's spelling is resourcegroups; the Azure CLI and SDKs send either."""
    alias = "" if not suffix else " (the same, spelled `resourcegroups`)"
    group = f"/subscriptions/{{sub}}/{groups}/{{rg}}"
    parameters = (*_COMMON, "ResourceGroupName")
    return (
        route(
            "GET",
            f"/subscriptions/{{sub}}/{groups}",
            arm_tenancy.groups_list,
            Operation(
                f"ResourceGroups_List{suffix}",
                "The subscription's resource groups the caller may read" + alias + ".",
                _TENANCY,
                {
                    200: arm("The resource groups.", resources.ResourceGroupList),
                    **errors(401, 404),
                },
                _COMMON,
            ),
        ),
        route(
            "GET",
            group,
            arm_tenancy.group_get,
            Operation(
                f"ResourceGroups_Get{suffix}",
                "A resource group" + alias + ".",
                _TENANCY,
                {
                    200: arm("The resource group.", resources.ResourceGroup),
                    **errors(401, 403, 404),
                },
                parameters,
            ),
            Operation(
                f"ResourceGroups_CheckExistence{suffix}",
                "Whether a resource group exists" + alias + ".",
                _TENANCY,
                {
                    204: arm("It exists."),
                    401: arm("Not authenticated (no body)."),
                    403: arm("Not authorized (no body)."),
                    404: arm("No such subscription or resource group (no body)."),
                },
                parameters,
                method="HEAD",
            ),
        ),
        route(
            "PUT",
            group,
            arm_tenancy.group_put,
            Operation(
                f"ResourceGroups_CreateOrUpdate{suffix}",
                "Create a resource group (or answer the existing one)" + alias + ".",
                _TENANCY,
                {
                    200: arm("It existed.", resources.ResourceGroup),
                    201: arm("Created.", resources.ResourceGroup),
                    **errors(400, 401, 403, 404, 413),
                },
                parameters,
                request=bodies.ResourceGroupBody,
            ),
        ),
        route(
            "DELETE",
            group,
            arm_tenancy.group_delete,
            Operation(
                f"ResourceGroups_Delete{suffix}",
                "Delete an empty resource group" + alias + ".",
                _TENANCY,
                {
                    200: arm("Deleted."),
                    204: arm("There was no such resource group."),
                    **errors(401, 403, 404),
                    409: _arm_error("ResourceGroupNotEmpty: registries remain in it."),
                },
                parameters,
            ),
        ),
    )


_RESOURCES = {200: arm("The resources.", resources.GenericResourceList), **errors(401, 404)}
_TENANCY_ROUTES = (
    route(
        "GET",
        "/tenants",
        arm_tenancy.tenants_list,
        Operation(
            "Tenants_List",
            "The caller's tenant.",
            _TENANCY,
            {200: arm("The tenant.", resources.TenantList), **errors(401)},
            ("ApiVersion",),
        ),
    ),
    route(
        "GET",
        "/subscriptions",
        arm_tenancy.subscriptions_list,
        Operation(
            "Subscriptions_List",
            "The subscriptions of the caller's tenant on which it holds a role.",
            _TENANCY,
            {200: arm("The subscriptions.", resources.SubscriptionList), **errors(401)},
            ("ApiVersion",),
        ),
    ),
    route(
        "GET",
        "/subscriptions/{sub}",
        arm_tenancy.subscription_get,
        Operation(
            "Subscriptions_Get",
            "A subscription of the caller's tenant.",
            _TENANCY,
            {200: arm("The subscription.", resources.Subscription), **errors(401, 404)},
            _COMMON,
        ),
    ),
    route(
        "GET",
        "/subscriptions/{sub}/resources",
        arm_tenancy.resources_list,
        Operation(
            "Resources_List",
            "The subscription's resources (registries) the caller may read.",
            _TENANCY,
            _RESOURCES,
            (*_COMMON, "ResourceFilter"),
        ),
    ),
    route(
        "GET",
        "/subscriptions/{sub}/resourceGroups/{rg}/resources",
        arm_tenancy.resources_list,
        Operation(
            "Resources_ListByResourceGroup",
            "The resource group's resources (registries) the caller may read.",
            _TENANCY,
            _RESOURCES,
            (*_COMMON, "ResourceGroupName", "ResourceFilter"),
        ),
    ),
    *_resource_groups("resourcegroups", "_Lowercase"),
    *_resource_groups("resourceGroups", ""),
)


# -- the directory API -----------------------------------------------------------------------
def _principals(plural: str) -> tuple[Route, ...]:
    """The service principals or the users of the caller's tenant."""
    kind, name = (
        ("service principal", "ServicePrincipals")
        if plural == "servicePrincipals"
        else ("user", "Users")
    )
    created, body = (
        (
            arm("Created, with its secret (shown this once).", resources.PrincipalWithSecret),
            bodies.ServicePrincipalBody,
        )
        if plural == "servicePrincipals"
        else (arm("Created.", resources.Principal), bodies.UserBody)
    )
    base = f"/transship/v1/{plural}"
    return (
        route(
            "GET",
            base,
            arm_tenancy.principals_list,
            Operation(
                f"{name}_List",
                f"The {kind}s of the caller's tenant.",
                _DIRECTORY,
                {200: arm(f"The {kind}s.", resources.PrincipalList), **errors(401, 403)},
            ),
        ),
        route(
            "POST",
            base,
            arm_tenancy.service_principal_create
            if plural == "servicePrincipals"
            else arm_tenancy.user_create,
            Operation(
                f"{name}_Create",
                f"Create a {kind} in the caller's tenant.",
                _DIRECTORY,
                {
                    201: created,
                    **errors(400, 401, 403),
                    409: _arm_error("The name is taken."),
                    **errors(413),
                },
                request=body,
                request_required=True,
            ),
        ),
        route(
            "GET",
            base + "/{id}",
            arm_tenancy.principal_get,
            Operation(
                f"{name}_Get",
                "A principal of the caller's tenant (a service principal with its secrets' "
                "key ids, hints and expiry).",
                _DIRECTORY,
                {
                    200: arm("The principal.", resources.Principal),
                    **errors(401, 403),
                    404: _arm_error("PrincipalNotFound."),
                },
                ("PrincipalId",),
            ),
        ),
        route(
            "DELETE",
            base + "/{id}",
            arm_tenancy.principal_delete,
            Operation(
                f"{name}_Delete",
                "Delete a principal with its secrets and role assignments.",
                _DIRECTORY,
                {
                    204: arm("Deleted."),
                    **errors(401, 403),
                    404: _arm_error("PrincipalNotFound."),
                    409: _arm_error("CannotDeleteSelf: the caller is that principal."),
                },
                ("PrincipalId",),
            ),
        ),
    )


_service_principals = _principals("servicePrincipals")
_users = _principals("users")
_DIRECTORY_ROUTES = (
    route(
        "PUT",
        "/transship/v1/tenants/{tenant}",
        arm_tenancy.tenant_put,
        Operation(
            "Directory_CreateTenant",
            "A new tenant with a subscription, a `default` resource group and an owner service "
            "principal (whose secret is in this answer only). Root tenant administrators only.",
            _DIRECTORY,
            {
                201: arm("Created.", resources.CreatedTenant),
                **errors(400, 401, 403),
                409: _arm_error("The tenant or the subscription exists."),
                **errors(413),
            },
            ("NewTenantId",),
            request=bodies.TenantBody,
            request_required=True,
        ),
    ),
    route(
        "PUT",
        "/transship/v1/subscriptions/{sub}",
        arm_tenancy.subscription_put,
        Operation(
            "Directory_CreateSubscription",
            "A new subscription of the caller's tenant (or, for root tenant administrators, "
            "of another).",
            _DIRECTORY,
            {
                201: arm("Created.", resources.Subscription),
                **errors(400, 401, 403),
                404: _arm_error("No such tenant."),
                409: _arm_error("The subscription exists."),
                **errors(413),
            },
            ("NewSubscriptionId",),
            request=bodies.SubscriptionBody,
            request_required=True,
        ),
    ),
    *_service_principals,
    route(
        "POST",
        "/transship/v1/servicePrincipals/{id}/credentials/reset",
        arm_tenancy.credential_reset,
        Operation(
            "ServicePrincipals_ResetCredential",
            "A new secret for a service principal; without `append` its other secrets stop "
            "working.",
            _DIRECTORY,
            {
                200: arm("The new secret (shown this once).", resources.PrincipalWithSecret),
                400: _arm_error("InvalidParameter: a bad body, or the principal is a user."),
                **errors(401, 403),
                404: _arm_error("PrincipalNotFound."),
                **errors(413),
            },
            ("PrincipalId",),
            request=bodies.CredentialResetBody,
        ),
    ),
    *_users,
)


# -- role definitions and assignments --------------------------------------------------------
# The scopes the role routes accept, as documented path prefixes with their parameters: the
# router matches all but the root with one variable spanning segments (`ROLE_SCOPE`), which
# OpenAPI path parameters cannot express.
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
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/"
        + PROVIDER
        + "/registries/{registryName}",
        ["SubscriptionId", "ResourceGroupName", "ScopeRegistryName"],
    ),
}
_SCOPE_ERRORS = "InvalidScope, or another invalid parameter."


def _role_operations(label: str, suffix: str, item: str | None) -> dict[str, Operation]:
    """The role operations on `{scope}/{AUTHZ}/{suffix}[/{item}]` at one documented scope, by
    method."""
    prefix, scope_parameters = ROLE_SCOPES[label]
    at = "" if label == "Root" else f"At{label}"
    where = "the service root" if label == "Root" else f"a {label[0].lower()}{label[1:]}"
    parameters = (*scope_parameters, "ApiVersion")
    path = f"{prefix}/{AUTHZ}/{suffix}" + ("" if item is None else "/{" + item + "}")
    if suffix == "roleDefinitions" and item is None:
        return {
            "GET": Operation(
                f"RoleDefinitions_List{at}",
                f"The roles of the caller's tenant, built-in and custom, read at {where}.",
                _AUTHORIZATION,
                {
                    200: arm("The roles.", resources.RoleDefinitionList),
                    400: _arm_error(_SCOPE_ERRORS),
                    **errors(401, 403, 404),
                },
                (*parameters, "RoleDefinitionFilter"),
                path=path,
            )
        }
    if suffix == "roleDefinitions":
        on_item = (*parameters, "RoleDefinitionId")
        return {
            "GET": Operation(
                f"RoleDefinitions_Get{at}",
                f"A role, read at {where}.",
                _AUTHORIZATION,
                {
                    200: arm("The role.", resources.RoleDefinition),
                    400: _arm_error(_SCOPE_ERRORS),
                    **errors(401, 403),
                    404: _arm_error("RoleDefinitionDoesNotExist, or no such subscription."),
                },
                on_item,
                path=path,
            ),
            "PUT": Operation(
                f"RoleDefinitions_CreateOrUpdate{at}",
                "Create or replace a custom role; the caller needs roleDefinitions/write on every "
                f"assignable scope (the path's scope, {where}, is not checked).",
                _AUTHORIZATION,
                {
                    200: arm("Replaced.", resources.RoleDefinition),
                    201: arm("Created.", resources.RoleDefinition),
                    400: _arm_error(
                        "InvalidParameter, InvalidRoleDefinition, InvalidRoleDefinitionId "
                        "(not a GUID) or InvalidScope."
                    ),
                    **errors(401, 403, 404),
                    409: _arm_error(
                        "RoleDefinitionConflict (a built-in role's name or id, or another "
                        "tenant's id) or RoleDefinitionWithSameNameExists."
                    ),
                    **errors(413),
                },
                on_item,
                request=bodies.RoleDefinitionBody,
                request_required=True,
                path=path,
            ),
            "DELETE": Operation(
                f"RoleDefinitions_Delete{at}",
                f"Delete a custom role, at {where}.",
                _AUTHORIZATION,
                {
                    200: arm("Deleted: the role it was.", resources.RoleDefinition),
                    204: arm("There was no such role."),
                    400: _arm_error("CannotDeleteBuiltInRole, or InvalidScope."),
                    **errors(401, 403, 404),
                    409: _arm_error("RoleDefinitionHasAssignments."),
                },
                on_item,
                path=path,
            ),
        }
    if item is None:
        return {
            "GET": Operation(
                f"RoleAssignments_List{at}",
                f"The role assignments of the caller's tenant at, above and below {where}.",
                _AUTHORIZATION,
                {
                    200: arm("The role assignments.", resources.RoleAssignmentList),
                    400: _arm_error(_SCOPE_ERRORS),
                    **errors(401, 403, 404),
                },
                (*parameters, "RoleAssignmentFilter"),
                path=path,
            )
        }
    on_item = (*parameters, "RoleAssignmentName")
    return {
        "GET": Operation(
            f"RoleAssignments_Get{at}",
            f"A role assignment made at {where}.",
            _AUTHORIZATION,
            {
                200: arm("The role assignment.", resources.RoleAssignment),
                400: _arm_error(_SCOPE_ERRORS),
                **errors(401, 403),
                404: _arm_error("RoleAssignmentNotFound, or no such subscription."),
            },
            on_item,
            path=path,
        ),
        "PUT": Operation(
            f"RoleAssignments_Create{at}",
            f"Assign a role to a principal of the caller's tenant at {where}.",
            _AUTHORIZATION,
            {
                201: arm("Created (or the same assignment existed).", resources.RoleAssignment),
                400: _arm_error(
                    "InvalidParameter, RoleDefinitionDoesNotExist, PrincipalNotFound, "
                    "InvalidRoleAssignmentId (not a GUID), InvalidRoleAssignment (not assignable "
                    "here) or InvalidScope."
                ),
                **errors(401, 403, 404),
                409: _arm_error(
                    "RoleAssignmentExists (the same role for the same principal at the same "
                    "scope) or RoleAssignmentUpdateNotPermitted (the id is another assignment's)."
                ),
                **errors(413),
            },
            on_item,
            request=bodies.RoleAssignmentBody,
            request_required=True,
            path=path,
        ),
        "DELETE": Operation(
            f"RoleAssignments_Delete{at}",
            f"Delete a role assignment made at {where}.",
            _AUTHORIZATION,
            {
                200: arm("Deleted: the assignment it was.", resources.RoleAssignment),
                204: arm("There was no such assignment here."),
                400: _arm_error(_SCOPE_ERRORS),
                **errors(401, 403),
                404: _arm_error("SubscriptionNotFound: the scope's subscription does not exist."),
            },
            on_item,
            path=path,
        ),
    }


def _role_routes(root: bool) -> tuple[Route, ...]:
    """The role routes at the service root, or (`root` False) at every scope below it."""
    labels = ["Root"] if root else [label for label in ROLE_SCOPES if label != "Root"]
    prefix = "/" if root else "/" + ROLE_SCOPE
    handlers = {
        ("roleDefinitions", None): {"GET": arm_authorization.definitions_list},
        ("roleDefinitions", "roleDefinitionId"): {
            "GET": arm_authorization.definition_get,
            "PUT": arm_authorization.definition_put,
            "DELETE": arm_authorization.definition_delete,
        },
        ("roleAssignments", None): {"GET": arm_authorization.assignments_list},
        ("roleAssignments", "roleAssignmentName"): {
            "GET": arm_authorization.assignment_get,
            "PUT": arm_authorization.assignment_put,
            "DELETE": arm_authorization.assignment_delete,
        },
    }
    out = []
    for (suffix, item), by_method in handlers.items():
        path = f"{prefix}{AUTHZ}/{suffix}" + ("" if item is None else "/{id}")
        for method, handler in by_method.items():
            operations = tuple(_role_operations(label, suffix, item)[method] for label in labels)
            out.append(route(method, path, handler, *operations))
    return tuple(out)


# -- data-plane tokens -----------------------------------------------------------------------
_TOKEN_ERRORS: dict[int, Reply | str] = {401: "TokenUnauthorized", 403: "OciDenied"}
_NO_STORE = {"Cache-Control": "NoStore"}
_TOKEN_OK = Reply("The access token.", identity_wire.RegistryAccessToken, _NO_STORE)
_DATA_PLANE_TOKENS = (
    route(
        "GET",
        "/oauth2/token",
        dataplane_auth.token,
        Operation(
            "Registry_GetAccessToken",
            "A registry access token for the HTTP Basic credential (or, without one, anonymous).",
            _DATA_PLANE_AUTH,
            {200: _TOKEN_OK, **_TOKEN_ERRORS},
            ("TokenService", "TokenScope"),
            security=({"registryBasic": []}, {}),
        ),
    ),
    route(
        "POST",
        "/oauth2/token",
        dataplane_auth.token,
        Operation(
            "Registry_PostAccessToken",
            "A registry access token for a password or refresh_token grant.",
            _DATA_PLANE_AUTH,
            {200: _TOKEN_OK, 400: "TokenUnsupported", **_TOKEN_ERRORS},
            request=forms.RegistryTokenRequest,
            request_required=True,
            request_media_type=FORM,
            security=ANONYMOUS,
        ),
    ),
    route(
        "POST",
        "/oauth2/exchange",
        dataplane_auth.exchange,
        Operation(
            "Registry_ExchangeAccessToken",
            "An ACR refresh token for an Entra access token of the registry's tenant.",
            _DATA_PLANE_AUTH,
            {
                200: Reply("The refresh token.", identity_wire.RegistryRefreshToken, _NO_STORE),
                400: "TokenUnsupported",
                **_TOKEN_ERRORS,
            },
            request=forms.RegistryExchangeRequest,
            request_required=True,
            request_media_type=FORM,
            security=ANONYMOUS,
        ),
    ),
)

# -- the Microsoft Graph subset (Graph's own specification documents it) ---------------------
_GRAPH = (
    route("GET", "/v1.0/servicePrincipals", graph.service_principals),
    route("POST", "/v1.0/directoryObjects/getByIds", graph.get_by_ids),
)


# -- identity: cloud metadata, OIDC discovery, signing keys, the token endpoints -------------
_OAUTH_ERRORS: dict[int, Reply | str] = {400: "OAuthBadRequest", 404: "NoRoute"}


def _discovery(prefix: str, suffix: str) -> Route:
    return route(
        "GET",
        f"/{TENANT}{prefix}/.well-known/openid-configuration",
        identity.openid_configuration,
        Operation(
            f"Identity_OpenIdConfiguration{suffix}",
            "The tenant's OpenID Connect discovery document.",
            _IDENTITY,
            {
                200: Reply("The discovery document.", identity_wire.OpenIdConfiguration),
                **_OAUTH_ERRORS,
            },
            ("Tenant",),
            security=ANONYMOUS,
        ),
    )


def _keys(version: str, suffix: str) -> Route:
    return route(
        "GET",
        f"/{TENANT}/discovery{version}/keys",
        identity.jwks,
        Operation(
            f"Identity_Keys{suffix}",
            "The token signing keys (JWKS).",
            _IDENTITY,
            {200: Reply("The keys.", identity_wire.JsonWebKeySet), **_OAUTH_ERRORS},
            ("Tenant",),
            security=ANONYMOUS,
        ),
    )


def _token(version: str, suffix: str) -> Route:
    return route(
        "POST",
        f"/{TENANT}/oauth2{version}/token",
        identity.token,
        Operation(
            f"Identity_Token{suffix}",
            "The token endpoint: a client-credentials grant (the secret in the form, or the client "
            "id and secret with HTTP Basic: client_secret_basic) or a user's password grant.",
            _IDENTITY,
            {
                200: Reply("The access token.", identity_wire.AccessToken, _NO_STORE),
                **_OAUTH_ERRORS,
                401: "OAuthUnauthorized",
            },
            ("Tenant",),
            request=forms.TokenRequest,
            request_required=True,
            request_media_type=FORM,
            security=ANONYMOUS,
        ),
    )


_IDENTITY_ROUTES = (
    route(
        "GET",
        "/metadata/endpoints",
        identity.cloud_metadata,
        Operation(
            "Cloud_GetMetadata",
            "The cloud metadata document `az cloud register` reads.",
            _IDENTITY,
            {200: Reply("The endpoints.", identity_wire.CloudMetadata)},
            ("ApiVersion",),
            security=ANONYMOUS,
        ),
    ),
    _discovery("/v2.0", ""),
    _discovery("", "_V1"),
    _keys("/v2.0", ""),
    _keys("", "_V1"),
    _token("/v2.0", ""),
    _token("", "_V1"),
)

# -- operations endpoints, this document, and the `//…` redirect -----------------------------
_SERVICE = (
    route("GET", "/healthz", ops.healthz),
    route("GET", "/readyz", ops.readyz),
    route("GET", "/metrics", ops.metrics),
    route(
        "GET",
        OPENAPI_PATH,
        openapi_json,
        Operation(
            "OpenApi_Get",
            "This document.",
            ("Service",),
            {200: Reply("The OpenAPI document.", OpenApiDocument)},
            security=ANONYMOUS,
        ),
    ),
    # Last: only paths no other route matches reach it.
    route("*", "/{slashes:/.*}", merge_leading_slashes),
)

# -- scheduled sync (Transship's own; no ACR equivalent) ----------------------------------------
_SYNC_TAG = ("Scheduled sync",)
_SYNC_RULE = sync_rules.BASE + "/{rule}"
_ON_SYNC_REGISTRY = ("SyncRegistryName",)
_ON_SYNC_RULE = ("SyncRegistryName", "SyncRuleName")
_SYNC_RULE_MISSING = _arm_error("The registry (ResourceNotFound) or the rule (SyncRuleNotFound).")
_SYNC_ROUTES = (
    route(
        "GET",
        sync_rules.BASE,
        sync_rules.sync_rules_list,
        Operation(
            "SyncRules_List",
            "The registry's sync rules, each with its last run.",
            _SYNC_TAG,
            {200: arm("The rules.", sync_wire.SyncRuleList), **errors(401, 403, 404)},
            _ON_SYNC_REGISTRY,
        ),
    ),
    route(
        "PUT",
        _SYNC_RULE,
        sync_rules.sync_rule_put,
        Operation(
            "SyncRules_CreateOrReplace",
            "Create or replace a sync rule: mirror upstream repositories into the registry, on "
            "a schedule or on demand, copying only the tags that changed.",
            _SYNC_TAG,
            {
                200: arm("Replaced.", sync_wire.SyncRule),
                201: arm("Created.", sync_wire.SyncRule),
                400: _arm_error("InvalidParameter naming the field at fault."),
                **errors(401, 403, 404, 413),
            },
            _ON_SYNC_RULE,
            request=sync_wire.SyncRuleBody,
            request_required=True,
        ),
    ),
    route(
        "GET",
        _SYNC_RULE,
        sync_rules.sync_rule_get,
        Operation(
            "SyncRules_Get",
            "A sync rule, with its last run and next scheduled run.",
            _SYNC_TAG,
            {
                200: arm("The rule.", sync_wire.SyncRule),
                **errors(401, 403),
                404: _SYNC_RULE_MISSING,
            },
            _ON_SYNC_RULE,
        ),
    ),
    route(
        "PATCH",
        _SYNC_RULE,
        sync_rules.sync_rule_patch,
        Operation(
            "SyncRules_Update",
            "Change some fields of a sync rule (the fields given; `credentials: null` removes "
            "the credentials).",
            _SYNC_TAG,
            {
                200: arm("The rule after the change.", sync_wire.SyncRule),
                400: _arm_error("InvalidParameter naming the field at fault."),
                **errors(401, 403),
                404: _SYNC_RULE_MISSING,
                **errors(413),
            },
            _ON_SYNC_RULE,
            request=sync_wire.SyncRuleBody,
            request_required=True,
        ),
    ),
    route(
        "DELETE",
        _SYNC_RULE,
        sync_rules.sync_rule_delete,
        Operation(
            "SyncRules_Delete",
            "Delete a sync rule and its run history; the tags it copied stay.",
            _SYNC_TAG,
            {
                200: arm("Deleted."),
                204: arm("There was no such rule."),
                **errors(401, 403, 404),
            },
            _ON_SYNC_RULE,
        ),
    ),
    route(
        "POST",
        _SYNC_RULE + "/run",
        sync_rules.sync_rule_run,
        Operation(
            "SyncRules_Run",
            "Queue a run of the rule now (the run already queued, if any); follow it at Location.",
            _SYNC_TAG,
            {
                202: arm(
                    "Queued: the run (Location is its URL).",
                    sync_wire.SyncRun,
                    {"Location": "SyncRunUrl"},
                ),
                **errors(401, 403),
                404: _SYNC_RULE_MISSING,
            },
            _ON_SYNC_RULE,
        ),
    ),
    route(
        "GET",
        _SYNC_RULE + "/runs",
        sync_rules.sync_runs_list,
        Operation(
            "SyncRuns_List",
            "The rule's kept runs (setting sync_run_history), newest first, without their "
            "per-tag reports.",
            _SYNC_TAG,
            {
                200: arm("The runs.", sync_wire.SyncRunList),
                **errors(401, 403),
                404: _SYNC_RULE_MISSING,
            },
            _ON_SYNC_RULE,
        ),
    ),
    route(
        "GET",
        _SYNC_RULE + "/runs/{run}",
        sync_rules.sync_run_get,
        Operation(
            "SyncRuns_Get",
            "A run of the rule, with one entry per tag: unchanged, copying, copied, deleted or "
            "failed (with the reason and the import operation).",
            _SYNC_TAG,
            {
                200: arm("The run.", sync_wire.SyncRun),
                **errors(401, 403),
                404: _arm_error("The registry, the rule or the run does not exist."),
            },
            (*_ON_SYNC_RULE, "SyncRunId"),
        ),
    ),
)

ROUTES: tuple[Route, ...] = (
    *_V2,
    *_ACR_ROUTES,
    *_CACHE,
    *_REGISTRIES,
    *_REGISTRY_ACCESS,
    *_WEBHOOKS,
    *_SYNC_ROUTES,
    *_TENANCY_ROUTES,
    *_DIRECTORY_ROUTES,
    *_role_routes(root=True),
    *_role_routes(root=False),
    *_DATA_PLANE_TOKENS,
    *_GRAPH,
    *_IDENTITY_ROUTES,
    *_SERVICE,
)
