"""Sync rules over Transship's own API (scheduled sync has no ACR equivalent):

- `GET /transship/v1/registries/{name}/syncRules`: the registry's rules;
- `PUT|GET|PATCH|DELETE …/syncRules/{rule}`: create or replace, read, change some fields of,
  delete a rule (what it copied stays);
- `POST …/syncRules/{rule}/run`: queue a run now (202, the run; `Location` is its URL);
- `GET …/syncRules/{rule}/runs` and `…/runs/{run}`: the kept history, and one run with its
  per-tag report.

A registry is named as its login server's first label is (registry names are unique across
the service); the caller needs registries/read to read, registries/write to change a rule,
and importImage (or registries/write) to run one, on that registry. A registry of another
tenant is answered as one that does not exist. See `transship.cache.sync`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from transship.api.arm import arm_json, json_body
from transship.api.arm_models import parse_body
from transship.api.auth import CALLER, authorize
from transship.api.envelopes import ArmError
from transship.api.services import Services
from transship.api.v2 import SERVICES
from transship.cache import sync_rules as rules
from transship.cache.sync import (
    COPIED,
    COPYING,
    DELETED,
    FAILED_TAG,
    UNCHANGED,
    RuleView,
    RunView,
)
from transship.cache.sync_rules import SyncRuleSpec, check_rule_name
from transship.cache.tag_filters import TagFilter
from transship.errors import Invalid
from transship.identity.rbac import Actions
from transship.imports.intake import referrer_selection
from transship.imports.model import PlatformSubset
from transship.imports.ports import Credentials
from transship.imports.request_log import RequestCount
from transship.imports.subsets import platform_subset
from transship.metadata.records import RegistryRecord
from transship.metadata.sync_rules import SyncRunRecord
from transship.registry.registries import registry_id_of
from transship.wire import sync as wire

BASE = "/transship/v1/registries/{name}/syncRules"
_RUN_ID_LENGTH = 32


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _not_found(name: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"The registry '{name}' could not be found.")


async def _registry(request: web.Request, *actions: str) -> tuple[Services, RegistryRecord]:
    """The registry the path names, after checking the caller may do one of `actions`
    there. Raises ArmError 401, 403, 404 (also for a registry of another tenant)."""
    services = request.app[SERVICES]
    name = request.match_info["name"]
    record = await services.registries.get(name)
    if record is None or record.subscription_id is None:
        raise _not_found(name)
    try:
        await authorize(request, services, registry_id_of(record), *actions)
    except ArmError as exc:
        if exc.code == "InvalidAuthenticationTokenTenant":
            raise _not_found(name) from None
        raise
    return services, record


async def _rule(request: web.Request, *actions: str) -> tuple[Services, RegistryRecord, RuleView]:
    services, registry = await _registry(request, *actions)
    name = request.match_info["rule"]
    view = await services.sync.get(registry, name)
    if view is None:
        raise ArmError(
            404, "SyncRuleNotFound", f"The sync rule '{name}' of '{registry.name}' does not exist."
        )
    return services, registry, view


def rule_path(registry: str, rule: str) -> str:
    return f"/transship/v1/registries/{registry}/syncRules/{rule}"


def _summary(run: SyncRunRecord | None) -> wire.SyncRunSummary | None:
    if run is None:
        return None
    return wire.SyncRunSummary(
        name=run.id,
        trigger=run.trigger,
        state=run.state,
        created_time=_at(run.created_at) or "",
        end_time=_at(run.ended_at),
    )


def rule_json(services: Services, registry: RegistryRecord, view: RuleView) -> wire.SyncRule:
    spec, record = view.spec, view.record
    subset = spec.platform_subset
    referrers = spec.referrers
    username = services.sync.credentials_username(record)
    tags = spec.tag_filter
    return wire.SyncRule(
        id=rule_path(registry.name, record.name),
        name=record.name,
        registry=registry.name,
        properties=wire.SyncRuleProperties(
            source_registry=spec.source_host,
            source_repositories=list(spec.source_repositories),
            target_repository=spec.target_repository,
            tag_filter=wire.SyncTagFilterAnswer(
                include=tags.include, exclude=tags.exclude, semver=tags.semver, newest=tags.newest
            ),
            platforms=None if subset is None else [str(p) for p in subset.platforms],
            platform_mode=None if subset is None else subset.mode.value,
            include_attestations=subset is not None and subset.include_attestations,
            include_referrers=referrers is not None,
            referrer_artifact_types=(
                None
                if referrers is None or not referrers.artifact_types
                else list(referrers.artifact_types)
            ),
            interval_seconds=spec.interval_seconds,
            mirror_deletions=spec.mirror_deletions,
            credentials=None
            if record.credentials is None
            else wire.SyncRuleCredentials(username=username),
            next_run_time=_at(record.next_run_at),
            last_run=_summary(view.last_run),
            created_time=_at(record.created_at) or "",
            updated_time=_at(record.updated_at) or "",
        ),
    )


def run_json(registry: RegistryRecord, view: RunView, *, tags: bool = True) -> wire.SyncRun:
    record = view.record
    outcomes = [e.outcome for e in view.entries]
    extra: dict[str, Any] = {}
    if tags:
        extra["tags"] = [
            wire.SyncRunTag(
                source_repository=e.source_repository,
                tag=e.tag,
                target_repository=e.target_repository,
                outcome=e.outcome,
                upstream_digest=None if e.upstream_digest is None else str(e.upstream_digest),
                digest=None if e.digest is None else str(e.digest),
                reason=e.reason,
                operation=e.operation,
            )
            for e in view.entries
        ]
    return wire.SyncRun(
        id=f"{rule_path(registry.name, view.rule_name)}/runs/{record.id}",
        name=record.id,
        rule=view.rule_name,
        registry=registry.name,
        trigger=record.trigger,
        state=record.state,
        created_time=_at(record.created_at) or "",
        start_time=_at(record.started_at),
        end_time=_at(record.ended_at),
        import_batch=record.batch_id,
        error=None
        if record.error_code is None
        else wire.SyncRunError(code=record.error_code, message=record.error_message or ""),
        upstream_requests=_requests(record.requests),
        counts=wire.SyncRunCounts(
            total=len(outcomes),
            unchanged=outcomes.count(UNCHANGED),
            copying=outcomes.count(COPYING),
            copied=outcomes.count(COPIED),
            deleted=outcomes.count(DELETED),
            failed=outcomes.count(FAILED_TAG),
        ),
        **extra,
    )


def _requests(text: str | None) -> wire.SyncRequestCounts | None:
    if text is None:
        return None
    count = RequestCount(**json.loads(text))
    return wire.SyncRequestCounts(
        total=count.total,
        manifest_heads=count.manifest_heads,
        manifest_gets=count.manifest_gets,
        blob_gets=count.blob_gets,
        auth=count.auth,
        other=count.other,
        pulls=count.pulls,
    )


# -- building a rule from a body ---------------------------------------------------------------
def _merged(body: wire.SyncRuleBody, stored: SyncRuleSpec | None) -> dict[str, Any]:
    """The rule's fields as a PUT body would give them: `body`'s, over `stored`'s for a
    PATCH (None: a PUT, only `body`); a PATCH's tagFilter changes only the parts it
    names."""
    given = body.model_dump(exclude_unset=True)
    if stored is None:
        return given
    subset = stored.platform_subset
    base: dict[str, Any] = {
        "source_registry": stored.source_host,
        "source_repositories": list(stored.source_repositories),
        "target_repository": stored.target_repository,
        "tag_filter": stored.tag_filter.to_dict(),
        "platforms": None if subset is None else [str(p) for p in subset.platforms],
        "platform_mode": None if subset is None else subset.mode.value,
        "include_attestations": None if subset is None else subset.include_attestations,
        "include_referrers": stored.referrers is not None or None,
        "referrer_artifact_types": None
        if stored.referrers is None or not stored.referrers.artifact_types
        else list(stored.referrers.artifact_types),
        "interval_seconds": stored.interval_seconds,
        "mirror_deletions": stored.mirror_deletions,
    }
    if subset is not None and "platforms" in given and given["platforms"] is None:
        base["platform_mode"] = base["include_attestations"] = None
    if "include_referrers" in given and not given["include_referrers"]:
        base["referrer_artifact_types"] = None
    if given.get("tag_filter") is not None:
        # The filter's parts merge too: `{"tagFilter": {"newest": 5}}` keeps its regexes
        # (`{"semver": null}` drops one part).
        given["tag_filter"] = {**base["tag_filter"], **given["tag_filter"]}
    return {**base, **given}


async def build_spec(services: Services, fields: dict[str, Any]) -> SyncRuleSpec:
    """The rule the fields describe. Raises Invalid naming the field at fault."""
    host_text = fields.get("source_registry")
    if not host_text:
        raise Invalid("sourceRegistry", "sourceRegistry is required (an upstream host[:port]).")
    host = rules.source_host(host_text)
    if await services.registries.by_login_server(host) is not None:
        raise Invalid(
            "sourceRegistry",
            f"sourceRegistry {host_text!r} is a registry of this service: sync rules mirror "
            "upstream registries (import from a registry of this service copies no bytes).",
        )
    repositories = fields.get("source_repositories")
    if repositories is None:
        raise Invalid("sourceRepositories", "sourceRepositories is required.")
    host, sources = rules.source_repositories(host, tuple(repositories))
    target = rules.target_repository(fields.get("target_repository"))
    filters = fields.get("tag_filter") or {}
    tag_filter = TagFilter.parse(
        filters.get("include"), filters.get("exclude"), filters.get("semver"), filters.get("newest")
    )
    platforms = fields.get("platforms")
    subset: PlatformSubset | None = platform_subset(
        None if platforms is None else tuple(platforms),
        fields.get("platform_mode"),
        fields.get("include_attestations"),
    )
    types = fields.get("referrer_artifact_types")
    referrers = referrer_selection(
        fields.get("include_referrers"), None if types is None else tuple(types)
    )
    interval = rules.interval(
        fields.get("interval_seconds"), services.sync.settings.min_interval_seconds
    )
    return SyncRuleSpec(
        host,
        sources,
        target,
        tag_filter,
        subset,
        referrers,
        interval,
        bool(fields.get("mirror_deletions")),
    )


def _credentials(body: wire.SyncRuleBody) -> Credentials | None:
    if body.credentials is None:
        return None
    return Credentials(body.credentials.username or None, body.credentials.password)


# -- handlers ----------------------------------------------------------------------------------
async def sync_rules_list(request: web.Request) -> web.Response:
    services, registry = await _registry(request, Actions.REGISTRIES_READ)
    views = await services.sync.list_rules(registry)
    return arm_json(wire.SyncRuleList(value=[rule_json(services, registry, v) for v in views]))


async def sync_rule_get(request: web.Request) -> web.Response:
    services, registry, view = await _rule(request, Actions.REGISTRIES_READ)
    return arm_json(rule_json(services, registry, view))


async def _write(request: web.Request, *, patch: bool) -> web.Response:
    services, registry = await _registry(request, Actions.REGISTRIES_WRITE)
    name = check_rule_name(request.match_info["rule"])
    body: wire.SyncRuleBody = parse_body(wire.SyncRuleBody, await json_body(request, required=True))
    stored = await services.sync.get(registry, name) if patch else None
    if patch and stored is None:
        raise ArmError(
            404, "SyncRuleNotFound", f"The sync rule '{name}' of '{registry.name}' does not exist."
        )
    spec = await build_spec(services, _merged(body, None if stored is None else stored.spec))
    for repository in spec.source_repositories:
        await services.import_policy.check(request[CALLER], registry, None, repository, None)
    keep = patch and "credentials" not in body.model_fields_set
    view, created = await services.sync.put(
        registry, name, spec, _credentials(body), keep_credentials=keep
    )
    return arm_json(rule_json(services, registry, view), status=201 if created else 200)


async def sync_rule_put(request: web.Request) -> web.Response:
    return await _write(request, patch=False)


async def sync_rule_patch(request: web.Request) -> web.Response:
    return await _write(request, patch=True)


async def sync_rule_delete(request: web.Request) -> web.Response:
    services, registry = await _registry(request, Actions.REGISTRIES_WRITE)
    deleted = await services.sync.delete(registry, request.match_info["rule"])
    return web.Response(status=200 if deleted else 204)


async def sync_rule_run(request: web.Request) -> web.Response:
    services, registry, view = await _rule(request, Actions.IMPORT_IMAGE, Actions.REGISTRIES_WRITE)
    run = await services.sync.request_run(view.record)
    found = await services.sync.run(view.record, run.id)
    assert found is not None
    answer = run_json(registry, found)
    return arm_json(answer, status=202, headers={"Location": f"{request.url.origin()}{answer.id}"})


async def sync_runs_list(request: web.Request) -> web.Response:
    services, registry, view = await _rule(request, Actions.REGISTRIES_READ)
    runs = await services.sync.runs(view.record)
    return arm_json(wire.SyncRunList(value=[run_json(registry, r, tags=False) for r in runs]))


async def sync_run_get(request: web.Request) -> web.Response:
    services, registry, view = await _rule(request, Actions.REGISTRIES_READ)
    run_id = request.match_info["run"]
    found = await services.sync.run(view.record, run_id) if len(run_id) == _RUN_ID_LENGTH else None
    if found is None:
        raise ArmError(404, "SyncRunNotFound", f"The sync run '{run_id}' does not exist.")
    headers = {"Cache-Control": "no-store"}
    if found.record.state in ("queued", "running"):
        headers["Retry-After"] = "1"
    return arm_json(run_json(registry, found), headers=headers)
