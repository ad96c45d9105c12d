"""The imports pages: the form with every `az acr import` option and Transship's
extensions, the history, one import's live progress (server-sent events fed by the
import service's own follow mechanism), and cancelling.

Starting an import is importImage's own code (`api/arm.py submit_import` / `plan_import`,
after the same `IMPORT_ACTIONS` check); an operation's page and stream are found and
authorized by the operation status route's own lookup (`_job_and_registry`).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from transship.api.arm import (
    IMPORT_ACTIONS,
    _job_and_registry,
    _source_names,
    operation_json,
    plan_import,
    registry_in_scope,
    submit_import,
)
from transship.api.arm_models import parse_body
from transship.api.auth import CALLER
from transship.api.envelopes import ArmError
from transship.api.services import Services
from transship.errors import DomainError
from transship.identity.rbac import Actions
from transship.imports.service import job_version
from transship.metadata.jobs import FINAL_STATES
from transship.metadata.records import ImportJobRecord, RegistryRecord
from transship.metadata.scope import utcnow
from transship.portal.registries import registry_link
from transship.portal.web import (
    COOKIE,
    SESSION,
    field,
    page,
    page_response,
    see_other,
    services_of,
)
from transship.registry.registries import registry_id_of
from transship.wire.bodies import ImportImageParameters

_STATE_WORDS = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "canceled": "Canceled",
}
_SPLIT = re.compile(r"[,\n]")
# How long one wait of the event stream lasts before it sends the snapshot again (a
# keep-alive through proxies that close idle connections).
# How often an event stream looks again at whether its session and the principal's roles
# still allow it (and the longest it waits for a change before doing so).
STREAM_RECHECK_SECONDS = 5.0


def _human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the progress page shows of a job at one moment."""

    state: str
    percent: int
    bytes: str
    blobs: str
    manifests: str
    rate: str
    eta: str
    error: str | None
    final: bool

    def json(self) -> str:
        return json.dumps(
            {
                "state": self.state,
                "percent": self.percent,
                "bytes": self.bytes,
                "blobs": self.blobs,
                "manifests": self.manifests,
                "rate": self.rate,
                "eta": self.eta,
                "error": self.error,
                "final": self.final,
            }
        )


def failure_text(job: ImportJobRecord) -> str | None:
    """A failed (or canceled) job's failure in plain words: its message, the step it failed
    at and what it was working on, and the upstream's status when one answered."""
    if job.error_code is None and job.state != "canceled":
        return None
    if job.state == "canceled" and job.error_code is None:
        return "Canceled before it finished."
    parts = [job.error_message or "The import failed."]
    where = []
    if job.error_step:
        where.append(f"while {job.error_step.replace('_', ' ')}")
    if job.error_object:
        where.append(f"on {job.error_object}")
    if job.error_upstream_status:
        where.append(f"(the source answered HTTP {job.error_upstream_status})")
    if where:
        parts.append("It stopped " + " ".join(where) + ".")
    parts.append(f"[{job.error_code}]")
    return " ".join(parts)


def snapshot(job: ImportJobRecord, now: datetime | None = None) -> Snapshot:
    """The job's progress: percent of bytes (of items before bytes are known; 100 once it
    succeeded), counts, the transfer rate since it started and the time left at that rate."""
    final = job.state in FINAL_STATES
    if job.state == "succeeded":
        percent = 100
    elif job.bytes_total > 0:
        percent = min(99, job.bytes_done * 100 // job.bytes_total)
    elif job.blobs_total + job.manifests_total > 0:
        done = job.blobs_done + job.manifests_done
        percent = min(99, done * 100 // (job.blobs_total + job.manifests_total))
    else:
        percent = 0
    moment = now or utcnow()
    end = job.ended_at or moment
    elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
    rate = job.bytes_done / elapsed if elapsed > 0 else 0.0
    if final:
        eta = "—"
    elif rate > 0 and job.bytes_total > job.bytes_done:
        eta = f"{(job.bytes_total - job.bytes_done) / rate:.0f} s"
    else:
        eta = "unknown"
    return Snapshot(
        state=_STATE_WORDS.get(job.state, job.state),
        percent=percent,
        bytes=f"{_human(job.bytes_done)} of {_human(job.bytes_total)}",
        blobs=f"{job.blobs_done} of {job.blobs_total}",
        manifests=f"{job.manifests_done} of {job.manifests_total}",
        rate=f"{_human(rate)}/s" if rate > 0 else "—",
        eta=eta,
        error=failure_text(job),
        final=final,
    )


def _list(text: str) -> list[str]:
    return [item.strip() for item in _SPLIT.split(text) if item.strip()]


async def _source_registry_id(request: web.Request, services: Services, text: str) -> str:
    """The resource id of the source registry the form names: an id as given, or the name
    of a registry of the caller's own tenant (other tenants' names are not looked up: the
    answer must not tell which exist). Raises ArmError 400."""
    if text.lower().startswith("/subscriptions/"):
        return text
    record = await services.registries.get(text)
    tenant = request[CALLER].tenant_id
    subscription = (
        None
        if record is None or record.subscription_id is None
        else await services.directory.subscription(record.subscription_id)
    )
    if record is None or subscription is None or subscription.tenant_id != tenant:
        raise ArmError(
            400,
            "InvalidParameter",
            f"There is no registry named '{text}' in your tenant; give the source registry's "
            "resource id, or its login server as the source registry URI.",
            target="registry",
        )
    return registry_id_of(record)


async def import_body(request: web.Request, services: Services) -> ImportImageParameters:
    """The import form as the importImage body it stands for, validated by that body's model
    (the same refusals as the API, naming the field)."""
    source: dict[str, Any] = {"sourceImage": field(request, "source")}
    if field(request, "registry"):
        source["resourceId"] = await _source_registry_id(
            request, services, field(request, "registry")
        )
    if field(request, "source_registry_uri"):
        source["registryUri"] = field(request, "source_registry_uri")
    if field(request, "username") or field(request, "password"):
        source["credentials"] = {
            "username": field(request, "username") or None,
            "password": field(request, "password") or None,
        }
    body: dict[str, Any] = {
        "source": source,
        "mode": "Force" if field(request, "force") == "on" else "NoForce",
    }
    if _list(field(request, "tags")):
        body["targetTags"] = _list(field(request, "tags"))
    if field(request, "repository"):
        body["untaggedTargetRepositories"] = _list(field(request, "repository"))
    if _list(field(request, "platforms")):
        body["platforms"] = _list(field(request, "platforms"))
        if field(request, "platform_mode"):
            body["platformMode"] = field(request, "platform_mode")
        body["includeAttestations"] = field(request, "include_attestations") == "on"
    if field(request, "include_referrers") == "on":
        body["includeReferrers"] = True
        if _list(field(request, "referrer_artifact_types")):
            body["referrerArtifactTypes"] = _list(field(request, "referrer_artifact_types"))
    if field(request, "dry_run") == "on":
        body["dryRun"] = True
    parsed: ImportImageParameters = parse_body(ImportImageParameters, body)
    return parsed


def import_link(record: RegistryRecord, operation_id: str | None = None) -> str:
    base = registry_link(record) + "/imports"
    return base if operation_id is None else f"{base}/{operation_id}"


async def _may(
    services: Services, request: web.Request, record: RegistryRecord, *actions: str
) -> bool:
    for action in actions:
        if await services.access.allowed(request[CALLER], action, registry_id_of(record)):
            return True
    return False


async def _imports_page(
    request: web.Request,
    services: Services,
    record: RegistryRecord,
    *,
    status: int = 200,
    error: str | None = None,
    plan: str | None = None,
) -> web.Response:
    can_import = await _may(services, request, record, *IMPORT_ACTIONS)
    can_see = await _may(services, request, record, Actions.REGISTRIES_READ, Actions.IMPORT_IMAGE)
    history: list[dict[str, Any]] = []
    if can_see:
        jobs = await services.imports.list(record.id, 100)
        names = await _source_names(services, jobs)
        sub = record.subscription_id or ""
        for job in jobs:
            operation = operation_json(job, record, sub, names)
            history.append(
                {
                    "job": job,
                    "state": _STATE_WORDS.get(job.state, job.state),
                    "source": operation.properties.source,
                    "tags": ", ".join(operation.properties.target_tags or []),
                    "failure": failure_text(job),
                    "link": import_link(record, job.id),
                }
            )
    return page_response(
        request,
        "imports.html",
        f"Imports into {record.name}",
        status=status,
        error=error,
        plan=plan,
        can_import=can_import,
        can_see=can_see,
        history=history,
        registry=record,
        link=registry_link(record),
        action=import_link(record),
    )


@page
async def imports_page(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(
        request, Actions.REGISTRIES_READ, Actions.IMPORT_IMAGE, Actions.PULL
    )
    return await _imports_page(request, services, record)


@page
async def import_start(request: web.Request) -> web.StreamResponse:
    """POST the import form: importImage's check and code; 303 to the operation's page, or
    for a dry run the imports page with the plan."""
    services, record = await registry_in_scope(request, *IMPORT_ACTIONS)
    body = await import_body(request, services)
    if body.dry_run:
        plan = await plan_import(request, services, record, body)
        text = json.dumps(plan.model_dump(by_alias=True, mode="json"), indent=2)
        return await _imports_page(request, services, record, plan=text)
    job = await submit_import(request, services, record, body)
    raise see_other(import_link(record, job.id))


async def _operation(request: web.Request) -> tuple[Services, ImportJobRecord, RegistryRecord]:
    """The operation the path names, found and authorized as its ARM status URL does, and
    in the registry the path names (else 404, as an unknown operation)."""
    services, job, registry = await _job_and_registry(request)
    if (
        registry.name.lower() != request.match_info["name"].lower()
        or (registry.resource_group or "").lower() != request.match_info["rg"].lower()
    ):
        raise ArmError(404, "OperationNotFound", f"The operation '{job.id}' could not be found.")
    return services, job, registry


@page
async def import_page(request: web.Request) -> web.StreamResponse:
    services, job, record = await _operation(request)
    names = await _source_names(services, [job])
    operation = operation_json(job, record, record.subscription_id or "", names)
    return page_response(
        request,
        "import.html",
        f"Import {job.id}",
        job=job,
        source=operation.properties.source,
        tags=", ".join(operation.properties.target_tags or []),
        snap=snapshot(job),
        events=import_link(record, job.id) + "/events",
        cancel=import_link(record, job.id) + "/cancel",
        registry=record,
        link=registry_link(record),
        imports=import_link(record),
        notice="Cancel requested." if "canceled" in request.query else None,
    )


@page
async def import_events(request: web.Request) -> web.StreamResponse:
    """`text/event-stream`: a `snapshot` event (JSON) at once and on every change of the
    job, until it reaches a final state; then the stream ends. Waits are the import
    service's `follow` (no polling loop of its own, no connection held while idle)."""
    services, job, _ = await _operation(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    imports = services.imports
    loop = asyncio.get_running_loop()
    checked = loop.time()
    # A browser that goes away ends the stream with ConnectionResetError at a write (the
    # handler's task is cancelled by aiohttp then): nothing to clean up.
    while True:
        snap = snapshot(job)
        await response.write(f"event: snapshot\ndata: {snap.json()}\n\n".encode())
        if snap.final or imports.signals.closed:
            break
        followed = await imports.follow(job.id, job_version(job), STREAM_RECHECK_SECONDS)
        if followed is None:
            break
        job = followed
        if loop.time() - checked >= STREAM_RECHECK_SECONDS:
            # A long import outlives what allowed its stream: the session signed out or
            # expired, a role taken away. Looked at again as the page itself would be.
            if not await _still_allowed(request):
                break
            checked = loop.time()
    await response.write_eof()
    return response


async def _still_allowed(request: web.Request) -> bool:
    """Whether the stream's session is still open and its principal may still read the
    operation (the checks of `page` and `_operation` again)."""
    services = services_of(request)
    session = await services.portal_sessions.find(request.cookies.get(COOKIE))
    if session is None or session.principal.object_id != request[SESSION].principal.object_id:
        return False
    try:
        await _operation(request)
    except (ArmError, DomainError):
        return False
    return True


@page
async def import_cancel(request: web.Request) -> web.StreamResponse:
    services, job, record = await _operation(request)
    await services.imports.cancel(job.id)
    raise see_other(import_link(record, job.id) + "?canceled=1")
