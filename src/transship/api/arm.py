"""The ARM management surface: registries, importImage and its async operations."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import MISSING

from transship import __version__
from transship.api.answers import json_answer
from transship.api.arm_models import parse_body
from transship.api.auth import CALLER, authorize, caller, subscription_of
from transship.api.envelopes import ArmError
from transship.api.import_dry_run import dry_run_error, dry_run_json
from transship.api.query_numbers import nonnegative
from transship.api.services import Services
from transship.api.v2 import SERVICES
from transship.errors import NotFound, Unsupported
from transship.identity.model import Principal
from transship.identity.rbac import Actions
from transship.identity.registry_access import AccessSettings
from transship.imports.errors import ImportFailure
from transship.imports.intake import ImportParameters, intake
from transship.imports.model import ImportRequest, ImportResult
from transship.imports.ports import Credentials
from transship.imports.ratelimit import waiting_message
from transship.metadata.records import ImportJobRecord, RegistryRecord
from transship.metadata.scope import QueryScope
from transship.registry.registries import parse_registry_id, registry_id_of
from transship.wire import arm as resources
from transship.wire.base import Answer
from transship.wire.bodies import (
    CheckNameBody,
    ImportImageParameters,
    RegenerateCredentialBody,
    RegistryBody,
    RegistryProperties,
)

PROVIDER = "providers/Microsoft.ContainerRegistry"
SUBSCRIPTION = "/subscriptions/{sub}"
REGISTRIES_IN_GROUP = SUBSCRIPTION + "/resourceGroups/{rg}/" + PROVIDER + "/registries"
REGISTRY = REGISTRIES_IN_GROUP + "/{name}"
LOCATION = SUBSCRIPTION + "/" + PROVIDER + "/locations/{location}"
_OPERATION_ID = re.compile(r"[0-9a-f]{32}")
# Text the databases cannot store (PostgreSQL refuses NUL; lone surrogates cannot be encoded).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_STATUS = {
    "queued": "InProgress",
    "running": "InProgress",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "canceled": "Canceled",
}
# The HTTP status a failed operation's result URL answers with, by failure code; any other
# code is 400, as ACR answers a failed import (its `InvalidParameters`). Not 404 for content
# missing at the source: az reads a 404 there as "resource not found" (exit 3), as if the
# registry itself were missing.
_FAILURE_STATUS = {
    "TagAlreadyExists": 409,
    "InternalServerError": 500,
}
# ACR asks for 10 s between polls; imports here often end within one second, and every
# client honours the value (azure-core would otherwise wait its default 30 s).
_RETRY_AFTER = "1"


def _iso(value: Any) -> str | None:
    return None if value is None else _at(value)


def _at(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def registry_json(record: RegistryRecord, access: AccessSettings) -> resources.Registry:
    network = access.network
    retention = record.retention
    return resources.Registry(
        id=registry_id_of(record),
        name=record.name,
        location=record.location,
        tags=dict(record.tags),
        sku=resources.Sku(name=record.sku, tier=record.sku),
        properties=resources.RegistryInfo(
            login_server=record.login_server,
            creation_date=_iso(record.created_at),
            admin_user_enabled=access.admin_user_enabled,
            anonymous_pull_enabled=access.anonymous_pull,
            public_network_access=network.public_network_access,
            network_rule_bypass_options=network.bypass,
            network_rule_set=resources.NetworkRules(
                default_action=network.default_action,
                ip_rules=[resources.IpRuleInfo(value=rule) for rule in network.ip_rules],
            ),
            policies=resources.Policies(
                retention_policy=resources.RetentionPolicyInfo(
                    days=retention.days,
                    last_updated_time=_iso(retention.updated_at),
                    status="enabled" if retention.enabled else "disabled",
                )
            ),
        ),
    )


async def registry_json_of(services: Services, record: RegistryRecord) -> resources.Registry:
    return registry_json(record, await services.registry_access.settings(record))


async def authorize_registry_path(
    request: web.Request, *actions: str
) -> tuple[Services, str, str, str]:
    """(services, subscription, group, name) of the registry the path addresses, after
    checking the caller may do one of `actions` there (the registry need not exist yet).
    Raises ArmError 401/403/404."""
    services = request.app[SERVICES]
    sub, rg, name = request.match_info["sub"], request.match_info["rg"], request.match_info["name"]
    await authorize(
        request,
        services,
        f"/subscriptions/{sub}/resourceGroups/{rg}/{PROVIDER}/registries/{name}",
        *actions,
    )
    return services, sub, rg, name


async def registry_in_scope(request: web.Request, *actions: str) -> tuple[Services, RegistryRecord]:
    """The registry addressed by the path, after checking the caller may do one of
    `actions` on it. Raises ArmError 401/403/404."""
    services, sub, rg, name = await authorize_registry_path(request, *actions)
    return services, await services.registries.require(sub, rg, name)


async def json_body(request: web.Request, *, required: bool = False) -> Any:
    """The JSON body, read up to the configured limit; an absent (or blank) body reads as
    `{}` unless `required`. Raises ArmError 413 (too large) or 400 InvalidRequestContent
    (not JSON, or absent where `required`)."""
    limit = request.app[SERVICES].settings.max_request_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ArmError(413, "RequestTooLarge", f"The request body is larger than {limit} bytes.")
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise ArmError(
                413, "RequestTooLarge", f"The request body is larger than {limit} bytes."
            )
    if not data.strip():
        if required:
            # An update whose fields are all optional would otherwise change nothing and
            # answer 200, where the operation's document requires a body.
            raise ArmError(400, "InvalidRequestContent", "The request body is required.")
        return {}
    try:
        document = json.loads(bytes(data))
    except (ValueError, RecursionError):
        raise ArmError(
            400, "InvalidRequestContent", "The request content is not valid JSON."
        ) from None
    _refuse_unstorable(document, "")
    return document


def _refuse_unstorable(value: Any, path: str) -> None:
    """Raises ArmError 400 naming the field whose text holds NUL or a lone surrogate."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ArmError(
                400,
                "InvalidParameter",
                f"The parameter '{path or 'body'}' holds characters that are not allowed.",
                target=path or "body",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key, path or "body")
            _refuse_unstorable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unstorable(item, f"{path}[{index}]")


def arm_json(
    body: Answer, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return json_answer(body, status, headers)


# -- service info ----------------------------------------------------------------------------
async def info(request: web.Request) -> web.Response:
    """Where the caller's things are: its tenant, first subscription and default group."""
    services = request.app[SERVICES]
    principal = await caller(request, services)
    subscriptions = await services.directory.subscriptions(principal.tenant_id)
    identity = services.identity
    return arm_json(
        resources.ServiceInfo(
            version=__version__,
            tenant_id=principal.tenant_id,
            subscription_id=subscriptions[0].id if subscriptions else None,
            resource_group=identity.resource_group,
            location=identity.location,
            login_server_suffix=services.settings.effective_login_server_suffix,
            caller=resources.Caller(
                object_id=principal.object_id,
                kind=principal.kind,
                name=principal.name,
                app_id=principal.app_id,
            ),
        )
    )


# -- registries ------------------------------------------------------------------------------
async def registry_get(request: web.Request) -> web.Response:
    services, record = await registry_in_scope(request, Actions.REGISTRIES_READ)
    return arm_json(await registry_json_of(services, record))


async def _apply_access(
    services: Services,
    record: RegistryRecord,
    properties: RegistryProperties | None,
    within: QueryScope | None = None,
) -> None:
    """Write the access settings `properties` gives, in `within` (the caller's
    transaction) when given. Raises ArmError 400 naming an invalid field."""
    if properties is None:
        return
    rules = properties.network_rule_set
    await services.registry_access.update(
        record,
        within=within,
        admin_user_enabled=properties.admin_user_enabled,
        anonymous_pull=properties.anonymous_pull_enabled,
        public_network_access=properties.public_network_access,
        default_action=None if rules is None else rules.default_action,
        ip_rules=None
        if rules is None or rules.ip_rules is None
        else [r.value for r in rules.ip_rules],
        bypass=properties.network_rule_bypass_options,
    )


def _refuse_unsupported(properties: RegistryProperties | None) -> None:
    """Raises Unsupported (reason "feature") for a property asking for something Transship
    does not do, rather than accepting and dropping it."""
    if properties is None:
        return
    if properties.data_endpoint_enabled:
        raise _feature(
            "Dedicated data endpoints are not supported by Transship: blobs are served by the "
            "registry's login server.",
            "properties.dataEndpointEnabled",
        )
    policies = properties.policies
    if policies is None:
        return
    refused = {
        "quarantinePolicy": (policies.quarantine_policy, "enabled", "Quarantine"),
        "trustPolicy": (policies.trust_policy, "enabled", "Content trust"),
        "exportPolicy": (policies.export_policy, "disabled", "Disabling exports"),
        "softDeletePolicy": (policies.soft_delete_policy, "enabled", "Soft delete"),
    }
    for field, (policy, status, feature) in refused.items():
        if policy is not None and policy.status == status:
            raise _feature(
                f"{feature} is not supported by Transship.", f"properties.policies.{field}"
            )
    soft_delete = policies.soft_delete_policy
    if soft_delete is not None and soft_delete.retention_days not in (None, 7):
        raise _feature(
            "Soft delete is not supported by Transship: its retention days cannot be set.",
            "properties.policies.softDeletePolicy.retentionDays",
        )


def _feature(message: str, field: str) -> Unsupported:
    return Unsupported(message, subject="registry", reason="feature", field=field)


async def _apply_properties(
    services: Services, record: RegistryRecord, body: RegistryBody, within: QueryScope
) -> RegistryRecord:
    """Write the SKU, tags and retention policy `body` gives, in the caller's transaction.
    Raises Invalid naming the field."""
    retention = (
        None
        if body.properties is None or body.properties.policies is None
        else body.properties.policies.retention_policy
    )
    return await services.registries.update_properties(
        record,
        sku=None if body.sku is None else body.sku.name,
        tags=body.tags,
        retention_enabled=None
        if retention is None or retention.status is None
        else retention.status == "enabled",
        retention_days=None if retention is None else retention.days,
        within=within,
    )


async def registry_put(request: web.Request) -> web.Response:
    services, sub, rg, name = await authorize_registry_path(request, Actions.REGISTRIES_WRITE)
    body = parse_body(RegistryBody, await json_body(request))
    record, created = await put_registry(services, sub, rg, name, body)
    return arm_json(await registry_json_of(services, record), status=201 if created else 200)


async def put_registry(
    services: Services, sub: str, rg: str, name: str, body: RegistryBody
) -> tuple[RegistryRecord, bool]:
    """Create the registry (or update it, as ARM's PUT does) after the caller was
    authorized for `registries/write` on its path; (record, created). Raises ArmError or a
    domain error naming the refused field; nothing is written then."""
    _refuse_unsupported(body.properties)
    group = await services.directory.require_resource_group(sub, rg)
    # One transaction: a registry whose settings are refused (an invalid IP rule, tag or
    # retention) is not created, and an existing one keeps all its settings.
    async with services.meta.writing() as q:
        record, created = await services.registries.create(
            sub,
            group.name,
            name,
            body.location or group.location,
            body.properties.login_server if body.properties else None,
            sku=body.sku.name if body.sku is not None else "Premium",
            tags=body.tags,
            within=q,
        )
        await _apply_access(services, record, body.properties, within=q)
        record = await _apply_properties(services, record, body, q)
    await services.resolver.refresh()
    return record, created


async def registry_patch(request: web.Request) -> web.Response:
    services, record = await registry_in_scope(request, Actions.REGISTRIES_WRITE)
    body = parse_body(RegistryBody, await json_body(request))
    record = await patch_registry(services, record, body)
    return arm_json(await registry_json_of(services, record))


async def patch_registry(
    services: Services, record: RegistryRecord, body: RegistryBody
) -> RegistryRecord:
    """Change the settings `body` gives, after the caller was authorized for
    `registries/write`; the registry as it now is. Raises ArmError or a domain error naming
    the refused field; nothing changes then."""
    if body.properties is not None:
        services.registries.check_login_server(record.name, body.properties.login_server)
    _refuse_unsupported(body.properties)
    # One transaction: a refused property (an invalid IP rule, tag or retention) leaves
    # every other one as it was.
    async with services.meta.writing() as q:
        await _apply_access(services, record, body.properties, within=q)
        record = await _apply_properties(services, record, body, q)
    return record


async def check_name(request: web.Request) -> web.Response:
    """Whether a registry name is free: names are unique across the service, so a name
    taken in any tenant is not available (the answer says no more than ACR's does)."""
    services = request.app[SERVICES]
    principal = await caller(request, services)
    await subscription_of(request, services, principal, request.match_info["sub"])
    body = parse_body(CheckNameBody, await json_body(request))
    found = await services.registries.name_availability(body.name)
    return arm_json(
        resources.NameAvailability(
            name_available=found.available,
            available_login_server_name=services.registries.login_server_for(body.name)
            if found.available
            else MISSING,
            reason=MISSING if found.reason is None else found.reason,
            message=MISSING if found.message is None else found.message,
        )
    )


async def list_usages(request: web.Request) -> web.Response:
    services, record = await registry_in_scope(request, Actions.REGISTRIES_READ)
    usage = await services.registries.usage(record)
    webhooks, webhook_limit = await services.webhooks.usage(record)
    return arm_json(
        resources.UsageList(
            value=[
                resources.UsageInfo(
                    name="Size",
                    limit=usage.storage_limit,
                    current_value=usage.storage_bytes,
                    unit="Bytes",
                ),
                resources.UsageInfo(
                    name="Webhooks", limit=webhook_limit, current_value=webhooks, unit="Count"
                ),
                resources.UsageInfo(
                    name="ScopeMaps",
                    limit=usage.scope_map_limit,
                    current_value=usage.scope_maps,
                    unit="Count",
                ),
                resources.UsageInfo(
                    name="Tokens", limit=usage.token_limit, current_value=usage.tokens, unit="Count"
                ),
            ]
        )
    )


async def replications_list(request: web.Request) -> web.Response:
    """No replications: Transship does not replicate (`az acr show-endpoints` reads this
    list when the registry has no dedicated data endpoint)."""
    await registry_in_scope(request, Actions.REGISTRIES_READ)
    return arm_json(resources.ReplicationList())


# ARM child resources and actions of a registry that Transship does not offer, with what
# the refusal names.
UNSUPPORTED_FEATURES = {
    "replications": "Geo-replication (az acr replication)",
    "tasks": "ACR Tasks (az acr task)",
    "taskRuns": "ACR Tasks (az acr taskrun)",
    "runs": "ACR Tasks runs (az acr task list-runs, logs, cancel-run)",
    "scheduleRun": "ACR Tasks runs (az acr run, az acr build)",
    "listBuildSourceUploadUrl": "ACR Tasks builds (az acr build, az acr run)",
    "agentPools": "Agent pools (az acr agentpool)",
    "privateEndpointConnections": "Private endpoints (az acr private-endpoint-connection)",
    "privateLinkResources": "Private link resources (az acr private-link-resource)",
    "connectedRegistries": "Connected registries (az acr connected-registry)",
    "pipelineRuns": "Transfer pipelines (az acr pipeline-run)",
    "importPipelines": "Transfer pipelines (az acr import-pipeline)",
    "exportPipelines": "Transfer pipelines (az acr export-pipeline)",
}
FEATURE = "{feature:(?:" + "|".join(UNSUPPORTED_FEATURES) + ")}"


async def unsupported_feature(request: web.Request) -> web.Response:
    """Any request on a feature Transship does not offer, on a registry the caller may
    read: ARM's error naming the feature, not a route-not-found."""
    await registry_in_scope(request, Actions.REGISTRIES_READ)
    feature = UNSUPPORTED_FEATURES[request.match_info["feature"]]
    raise Unsupported(
        f"{feature} is not supported by Transship.",
        subject="registry",
        reason="feature",
    )


async def registry_delete(request: web.Request) -> web.Response:
    services, sub, rg, name = await authorize_registry_path(request, Actions.REGISTRIES_DELETE)
    deleted = await delete_registry(services, sub, rg, name)
    return web.Response(status=200 if deleted else 204)


async def delete_registry(services: Services, sub: str, rg: str, name: str) -> bool:
    """Delete the registry at that path after the caller was authorized for
    `registries/delete`; False when there was none there."""
    record = await services.registries.get(name)
    if (
        record is None
        or record.subscription_id != sub
        or (record.resource_group or "").lower() != rg.lower()
    ):
        return False
    await services.registries.delete(record)
    await services.resolver.refresh()
    return True


async def registries_list(request: web.Request) -> web.Response:
    """The registries of the subscription (or group) the caller may read."""
    services = request.app[SERVICES]
    principal = await caller(request, services)
    sub = request.match_info["sub"]
    await subscription_of(request, services, principal, sub)
    visible = await visible_registries(services, principal, sub, request.match_info.get("rg"))
    return arm_json(
        resources.RegistryList(value=[await registry_json_of(services, r) for r in visible])
    )


async def visible_registries(
    services: Services,
    principal: Principal,
    sub: str,
    rg: str | None = None,
    actions: tuple[str, ...] = (Actions.REGISTRIES_READ,),
) -> list[RegistryRecord]:
    """The registries of the subscription (or group) on which `principal` may do one of
    `actions` (ARM's listing: read); the caller checked the subscription is of the
    principal's tenant."""
    records = await services.registries.list(sub, rg)
    return [r for r in records if await _may_any(services, principal, actions, registry_id_of(r))]


async def _may_any(
    services: Services, principal: Principal, actions: tuple[str, ...], scope: str
) -> bool:
    for action in actions:
        if await services.access.allowed(principal, action, scope):
            return True
    return False


async def list_credentials(request: web.Request) -> web.Response:
    services, record = await registry_in_scope(request, Actions.LIST_CREDENTIALS)
    return arm_json(
        _credentials_json(record, await services.registry_access.admin_credentials(record))
    )


async def regenerate_credential(request: web.Request) -> web.Response:
    services, record = await registry_in_scope(request, Actions.REGENERATE_CREDENTIAL)
    body = parse_body(RegenerateCredentialBody, await json_body(request))
    return arm_json(
        _credentials_json(
            record, await services.registry_access.regenerate_admin_password(record, body.name)
        )
    )


def _credentials_json(
    record: RegistryRecord, passwords: dict[str, str]
) -> resources.RegistryCredentials:
    return resources.RegistryCredentials(
        username=record.name,
        passwords=[resources.AdminPassword(name=n, value=v) for n, v in passwords.items()],
    )


# -- import ----------------------------------------------------------------------------------
def _operation_urls(request: web.Request, job_id: str, location: str) -> tuple[str, str]:
    """(result URL, status URL) of an import operation."""
    subscription = request.match_info["sub"]
    base = f"{request.url.origin()}/subscriptions/{subscription}/{PROVIDER}/locations/{location}"
    query = urlencode({"api-version": request.query.get("api-version", "2025-04-01")})
    return (
        f"{base}/operationResults/{job_id}?{query}",
        f"{base}/operationStatuses/{job_id}?{query}",
    )


def operation_json(
    job: ImportJobRecord,
    registry: RegistryRecord,
    subscription: str,
    names: dict[int, str] | None = None,
) -> resources.OperationStatus:
    """The operation status body; `names` maps registry ids to names for same-service sources."""
    request = ImportRequest.from_json(job.request)
    return resources.OperationStatus(
        id=f"/subscriptions/{subscription}/{PROVIDER}/locations/{registry.location}/operationStatuses/{job.id}",
        name=job.id,
        status=_STATUS[job.state],
        start_time=_at(job.created_at),
        end_time=MISSING if job.ended_at is None else _at(job.ended_at),
        error=resources.OperationError(code=job.error_code, message=job.error_message)
        if job.error_code is not None
        else MISSING,
        properties=resources.ImportOperationInfo(
            registry=registry.name,
            state=job.state,
            source=request.source.describe(
                (names or {}).get(request.source.registry_id or -1)
                if request.source.is_local
                else None
            ),
            target_tags=[str(t) for t in request.target_tags],
            untagged_target_repositories=list(request.untagged_repositories),
            mode="Force" if request.force else "NoForce",
            attempts=job.attempts,
            progress=resources.ImportProgress(
                bytes_total=job.bytes_total,
                bytes_done=job.bytes_done,
                bytes_fetched=job.bytes_fetched,
                blobs_total=job.blobs_total,
                blobs_done=job.blobs_done,
                manifests_total=job.manifests_total,
                manifests_done=job.manifests_done,
            ),
            failure=resources.ImportFailure(
                step=job.error_step,
                object=job.error_object,
                upstream_status=job.error_upstream_status,
            )
            if job.error_code is not None
            else MISSING,
            waiting=_waiting(job),
            **_subset_fields(request),
            **_referrer_fields(request, job.result),
        ),
    )


def _waiting(job: ImportJobRecord) -> resources.RateLimitWait | Any:
    """The rate-limit wait of a running job, MISSING when it is not waiting."""
    if job.state != "running" or job.waiting_until is None:
        return MISSING
    host = job.waiting_for or "the upstream"
    return resources.RateLimitWait(
        host=host,
        until=_at(job.waiting_until),
        message=waiting_message(host, job.waiting_until),
    )


def _subset_fields(request: ImportRequest) -> dict[str, Any]:
    """The platform-subset fields of an operation's properties (none for a full import)."""
    subset = request.platform_subset
    if subset is None:
        return {}
    return {
        "platforms": [str(p) for p in subset.platforms],
        "platform_mode": subset.mode.value,
        "include_attestations": subset.include_attestations,
    }


def _referrer_fields(request: ImportRequest, result: str | None) -> dict[str, Any]:
    """The referrer fields of an operation's properties (none unless asked for); what was
    copied once the import succeeded."""
    if request.referrers is None:
        return {}
    fields: dict[str, Any] = {
        "include_referrers": True,
        "referrer_artifact_types": list(request.referrers.artifact_types),
    }
    if result is not None:
        copied = ImportResult.from_json(result)
        fields["referrers"] = resources.ImportReferrers(
            count=len(copied.referrers),
            digests=[str(d) for d in copied.referrers],
            tags=[
                resources.ImportReferrerTag(tag=tag, digest=str(digest))
                for tag, digest in copied.referrer_tags
            ],
        )
    return fields


async def _operation(
    services: Any, job: ImportJobRecord, registry: RegistryRecord, subscription: str
) -> resources.OperationStatus:
    return operation_json(job, registry, subscription, await _source_names(services, [job]))


async def _source_names(services: Any, jobs: list[ImportJobRecord]) -> dict[int, str]:
    """The names of the same-service source registries of `jobs`, by id, looked up by key
    (never a scan of every registry on each operation poll)."""
    return await _source_names_of(services, [ImportRequest.from_json(j.request) for j in jobs])


async def _source_names_of(services: Any, requests: list[ImportRequest]) -> dict[int, str]:
    sources = (r.source.registry_id for r in requests)
    async with services.meta.reading() as q:
        found = await q.registries_by_id(rid for rid in sources if rid is not None)
    return {rid: r.login_server or r.name for rid, r in found.items()}


async def admit_import(
    request: web.Request,
    services: Services,
    registry: RegistryRecord,
    body: ImportImageParameters,
) -> tuple[ImportRequest, Credentials | None]:
    """Validate one import body and check the caller may run it (the source's rights, the
    import policy), as importImage does; the caller's rights on the target registry are
    checked before. Raises ArmError or a domain error (Invalid naming the field, Denied,
    NotFound…)."""
    params = ImportParameters(
        resource_id=body.source.resource_id,
        registry_uri=body.source.registry_uri,
        credentials_given=body.source.credentials is not None,
        username=body.source.credentials.username if body.source.credentials else None,
        password=body.source.credentials.password if body.source.credentials else None,
        source_image=body.source.source_image,
        target_tags=tuple(body.target_tags) if body.target_tags is not None else None,
        untagged_repositories=tuple(body.untagged_target_repositories)
        if body.untagged_target_repositories
        else None,
        force=body.mode == "Force",
        platforms=tuple(body.platforms) if body.platforms is not None else None,
        platform_mode=body.platform_mode,
        include_attestations=body.include_attestations,
        include_referrers=body.include_referrers,
        referrer_artifact_types=tuple(body.referrer_artifact_types)
        if body.referrer_artifact_types is not None
        else None,
    )
    if params.resource_id is not None and not params.credentials_given:
        # Before the intake looks the registry up: its NotFound would tell a caller of
        # another tenant which registries exist there.
        await services.import_policy.check_source_id(request[CALLER], params.resource_id)
    try:
        import_request, credentials = await intake(params, services.registries)
    except NotFound as exc:
        # With made-up credentials, a caller of another tenant would otherwise tell a
        # missing registry (404) from an existing one (credentials refused).
        if (
            exc.subject == "registry"
            and params.resource_id is not None
            and params.credentials_given
            and await services.import_policy.outside_tenant(request[CALLER], params.resource_id)
        ):
            raise services.import_policy.credentials_refused(exc.name) from None
        raise
    source = import_request.source
    await services.import_policy.check(
        request[CALLER],
        registry,
        None if source.registry_id is None else await services.registries.by_id(source.registry_id),
        source.repository,
        (params.username or "", params.password)
        if params.credentials_given and params.password
        else None,
        source_name=_source_name(params.resource_id),
    )
    return import_request, credentials


async def import_image(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, *IMPORT_ACTIONS)
    body = parse_body(ImportImageParameters, await json_body(request))
    if body.dry_run:
        return arm_json(await plan_import(request, services, registry, body))
    job = await submit_import(request, services, registry, body)
    result_url, _ = _operation_urls(request, job.id, registry.location)
    # As ACR: Location and Retry-After, no Azure-AsyncOperation, so Azure clients follow the
    # result URL and a failed import reaches them with that URL's status and error (ACR's
    # body is `null`; ours is the operation status, which they ignore and whose `id` is the
    # status URL for clients that want progress).
    headers = {"Location": result_url, "Retry-After": _RETRY_AFTER}
    answer = await _operation(services, job, registry, request.match_info["sub"])
    return arm_json(answer, status=202, headers=headers)


# Who may import into a registry: importImage, or registries/write (as ACR).
IMPORT_ACTIONS = (Actions.IMPORT_IMAGE, Actions.REGISTRIES_WRITE)


async def plan_import(
    request: web.Request,
    services: Services,
    registry: RegistryRecord,
    body: ImportImageParameters,
) -> Answer:
    """The dry run of an import body: checked and authorized as the import itself, planned
    now, written nowhere. The caller's `IMPORT_ACTIONS` on `registry` were checked before.
    Raises ArmError or a domain error as `admit_import` does."""
    import_request, credentials = await admit_import(request, services, registry, body)
    source = import_request.source
    try:
        report = await services.dry_runs.plan(registry.id, import_request, credentials)
    except ImportFailure as exc:
        raise dry_run_error(exc, _FAILURE_STATUS) from None
    names = await _source_names_of(services, [import_request])
    described = source.describe(names.get(source.registry_id or -1))
    return dry_run_json(report, described)


async def submit_import(
    request: web.Request,
    services: Services,
    registry: RegistryRecord,
    body: ImportImageParameters,
) -> ImportJobRecord:
    """Queue the import a body asks for (its checks are `admit_import`'s); the job. The
    caller's `IMPORT_ACTIONS` on `registry` were checked before."""
    import_request, credentials = await admit_import(request, services, registry, body)
    return await services.imports.submit(registry.id, import_request, credentials)


def _source_name(resource_id: str | None) -> str | None:
    """The registry name a source resource id gives, as written."""
    parts = None if resource_id is None else parse_registry_id(resource_id)
    return None if parts is None else parts[2]


async def _may_see_operations(
    services: Services, principal: Principal, registry: RegistryRecord
) -> bool:
    """Readers of the registry, and whoever may import into it (a role holding only
    importImage must be able to follow the operations it starts)."""
    scope = registry_id_of(registry)
    for action in (Actions.REGISTRIES_READ, Actions.IMPORT_IMAGE):
        if await services.access.allowed(principal, action, scope):
            return True
    return False


async def _job_and_registry(request: web.Request) -> tuple[Any, ImportJobRecord, RegistryRecord]:
    services = request.app[SERVICES]
    principal = await caller(request, services)
    await subscription_of(request, services, principal, request.match_info["sub"])
    job_id = request.match_info["operation"]
    job = await services.imports.get(job_id) if _OPERATION_ID.fullmatch(job_id) else None
    registry = None
    if job is not None:
        registry = await services.registries.by_id(job.registry_id)
    if (
        job is None
        or registry is None
        or registry.subscription_id != request.match_info["sub"]
        or not await _may_see_operations(services, principal, registry)
    ):
        raise ArmError(404, "OperationNotFound", f"The operation '{job_id}' could not be found.")
    return services, job, registry


async def operation_status(request: web.Request) -> web.Response:
    services, job, registry = await _job_and_registry(request)
    # Without Retry-After, azure-core's poller waits its default 30 s between polls.
    headers = {"Retry-After": _RETRY_AFTER} if job.state in ("queued", "running") else None
    return arm_json(
        await _operation(services, job, registry, request.match_info["sub"]), headers=headers
    )


async def operation_result(request: web.Request) -> web.Response:
    _, job, registry = await _job_and_registry(request)
    if job.state in ("queued", "running"):
        result_url, _ = _operation_urls(request, job.id, registry.location)
        return arm_json(
            resources.OperationPending(),
            status=202,
            headers={"Location": result_url, "Retry-After": _RETRY_AFTER},
        )
    if job.state == "succeeded":
        return arm_json(resources.OperationResult())
    if job.state == "canceled":
        raise ArmError(409, "OperationCanceled", f"The import operation '{job.id}' was canceled.")
    code = job.error_code or "InternalServerError"
    details = [
        {
            "code": "ImportStep",
            "message": (
                f"step={job.error_step} object={job.error_object} "
                f"upstreamStatus={job.error_upstream_status}"
            ),
        }
    ]
    raise ArmError(
        _FAILURE_STATUS.get(code, 400),
        code,
        job.error_message or "The import failed.",
        details=details,
    )


async def operation_cancel(request: web.Request) -> web.Response:
    services, job, registry = await _job_and_registry(request)
    updated = await services.imports.cancel(job.id)
    return arm_json(await _operation(services, updated or job, registry, request.match_info["sub"]))


async def import_operations(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(
        request, Actions.REGISTRIES_READ, Actions.IMPORT_IMAGE
    )
    top = nonnegative(request.query.get("$top", "100"), ceiling=1001)
    if top is None or not 1 <= top <= 1000:
        raise ArmError(
            400, "InvalidParameter", "$top must be an integer from 1 to 1000.", target="$top"
        )
    after = request.query.get("$skipToken")
    if after is not None and not _OPERATION_ID.fullmatch(after):
        raise ArmError(
            400,
            "InvalidParameter",
            "$skipToken is not a token this API issued.",
            target="$skipToken",
        )
    jobs = await services.imports.list(registry.id, top + 1, after)
    names = await _source_names(services, jobs[:top])
    value = [operation_json(j, registry, request.match_info["sub"], names) for j in jobs[:top]]
    next_link: str | MISSING = MISSING
    if len(jobs) > top:
        query = urlencode(
            {
                "api-version": request.query.get("api-version", "2025-04-01"),
                "$top": top,
                "$skipToken": jobs[top - 1].id,
            }
        )
        next_link = f"{request.url.origin()}{request.path}?{query}"
    return arm_json(resources.OperationStatusList(value=value, next_link=next_link))


@web.middleware
async def request_ids(request: web.Request, handler: Any) -> web.StreamResponse:
    """ARM clients expect request and correlation ids on every response."""
    response: web.StreamResponse = await handler(request)
    if not request.path.startswith("/v2"):
        request_id = str(uuid.uuid4())
        response.headers.setdefault("x-ms-request-id", request_id)
        response.headers.setdefault(
            "x-ms-correlation-request-id",
            request.headers.get("x-ms-correlation-request-id", request_id),
        )
    return response
