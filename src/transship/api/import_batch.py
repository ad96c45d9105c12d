"""Batch imports over the management API (a Transship extension; ACR imports one source
per call):

- `POST …/registries/{name}/importImages` with `{"images": [<importImage body>…]}`: every
  item is validated and authorized as importImage would (a refusal answers 400/403/404
  naming `images[i].field`, and nothing is queued), then the batch is queued at once and
  answered 202 with its status URL in `Azure-AsyncOperation` and `Location`.
- `GET …/registries/{name}/importBatches/{batch}`: the batch status, per item; with
  `If-None-Match` and `waitSeconds` a long poll, as the import follow endpoint.
- `POST …/registries/{name}/importBatches/{batch}/cancel`: cancel its unfinished items.

See `transship.imports.batch` for how a batch runs and what its states mean.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import MISSING

from transship.api.arm import (
    _OPERATION_ID,
    PROVIDER,
    _at,
    _source_names,
    admit_import,
    arm_json,
    json_body,
    operation_json,
    registry_in_scope,
)
from transship.api.arm_models import parse_body
from transship.api.envelopes import ArmError
from transship.api.error_map import Surface, envelope_for
from transship.api.import_follow import seen_version, wait_seconds
from transship.api.services import Services
from transship.errors import DomainError
from transship.identity.rbac import Actions
from transship.imports.batch import (
    CANCELED,
    RUNNING,
    SUCCEEDED,
    BatchItem,
    BatchView,
    batch_version,
)
from transship.metadata.records import RegistryRecord
from transship.wire.arm import OperationError
from transship.wire.batch import (
    ImportBatchCounts,
    ImportBatchInfo,
    ImportBatchItem,
    ImportBatchStatus,
    ImportImagesParameters,
)

# A batch is short to poll for the same reason as an import (see arm._RETRY_AFTER).
_RETRY_AFTER = "1"
_STATUS = {RUNNING: "InProgress", SUCCEEDED: "Succeeded", CANCELED: "Canceled"}
_ITEM_PATH = re.compile(r"^images\.(\d+)")


def _item_error(index: int, error: ArmError | DomainError) -> ArmError:
    """`error`, raised for the item at `index`, as the batch's answer: its target and
    message name `images[index]`."""
    arm = error if isinstance(error, ArmError) else envelope_for(error, Surface.ARM)
    assert isinstance(arm, ArmError)  # the ARM surface's envelope
    where = f"images[{index}]"
    return dataclasses.replace(
        arm,
        target=f"{where}.{arm.target}" if arm.target else where,
        message=f"{where}: {arm.message}",
    )


def registry_path(request: web.Request) -> str:
    """The registry's resource path as the request names it."""
    info = request.match_info
    return (
        f"/subscriptions/{info['sub']}/resourceGroups/{info['rg']}/{PROVIDER}/registries/"
        f"{info['name']}"
    )


def batch_url(request: web.Request, batch_id: str) -> str:
    """The batch's status URL (with the request's api-version)."""
    query = urlencode({"api-version": request.query.get("api-version", "2025-04-01")})
    return f"{request.url.origin()}{registry_path(request)}/importBatches/{batch_id}?{query}"


async def batch_json(
    request: web.Request, services: Services, view: BatchView, registry: RegistryRecord
) -> ImportBatchStatus:
    """The batch status body. Built on a thread: a batch of a thousand items takes tens of
    milliseconds of CPU to describe, too long for the loop."""
    names = await _source_names(services, [item.record.job for item in view.items])
    return await asyncio.to_thread(
        _describe, view, registry, request.match_info["sub"], registry_path(request), names
    )


def _describe(
    view: BatchView,
    registry: RegistryRecord,
    subscription: str,
    path: str,
    names: dict[int, str],
) -> ImportBatchStatus:
    jobs = [item.record.job for item in view.items]
    states = [job.state for job in jobs]
    counts = ImportBatchCounts(
        total=len(jobs),
        queued=states.count("queued"),
        running=states.count("running"),
        succeeded=states.count("succeeded"),
        failed=states.count("failed"),
        canceled=states.count("canceled"),
        unchanged=sum(item.unchanged for item in view.items),
        bytes_fetched=sum(job.bytes_fetched for job in jobs),
    )
    ended = [job.ended_at for job in jobs if job.ended_at is not None]
    error: OperationError | Any = MISSING
    if view.ended and view.state not in (SUCCEEDED, CANCELED):
        failed = counts.total - counts.succeeded
        error = OperationError(
            code="BatchItemsFailed",
            message=f"{failed} of {counts.total} images did not import "
            f"({counts.failed} failed, {counts.canceled} canceled).",
        )
    record = view.record
    return ImportBatchStatus(
        id=f"{path}/importBatches/{record.id}",
        name=record.id,
        status=_STATUS.get(view.state, "Failed"),
        start_time=_at(record.created_at),
        end_time=_at(max(ended)) if view.ended and ended else MISSING,
        error=error,
        properties=ImportBatchInfo(
            registry=registry.name,
            state=view.state,
            cancel_requested=record.cancel_requested,
            counts=counts,
            items=[
                ImportBatchItem(
                    index=item.record.position,
                    digest=None if item.digest is None else str(item.digest),
                    unchanged=item.unchanged,
                    operation=operation_json(item.record.job, registry, subscription, names),
                )
                for item in view.items
            ],
        ),
    )


def _parse(data: Any) -> ImportImagesParameters:
    """The body; a field at fault is named `images[i].field`. Raises ArmError 400."""
    try:
        body: ImportImagesParameters = parse_body(ImportImagesParameters, data)
    except ArmError as exc:
        target = _ITEM_PATH.sub(r"images[\1]", exc.target or "")
        message = exc.message.replace(exc.target or "\0", target) if exc.target else exc.message
        raise dataclasses.replace(exc, target=target or None, message=message) from None
    return body


async def import_images(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(
        request, Actions.IMPORT_IMAGE, Actions.REGISTRIES_WRITE
    )
    body = _parse(await json_body(request))
    items: list[BatchItem] = []
    # Every item is checked before anything is queued: a refusal leaves nothing behind.
    for index, image in enumerate(body.images):
        if image.dry_run:
            raise ArmError(
                400,
                "InvalidParameter",
                f"images[{index}].dryRun: a batch cannot be a dry run; plan each image with "
                "importImage and dryRun instead.",
                target=f"images[{index}].dryRun",
            )
        try:
            import_request, credentials = await admit_import(request, services, registry, image)
        except (ArmError, DomainError) as exc:
            raise _item_error(index, exc) from None
        items.append(BatchItem(import_request, credentials))
    view = await services.batches.submit(registry.id, items)
    url = batch_url(request, view.record.id)
    headers = {"Azure-AsyncOperation": url, "Location": url, "Retry-After": _RETRY_AFTER}
    answer = await batch_json(request, services, view, registry)
    return arm_json(answer, status=202, headers=headers)


async def _batch(request: web.Request, *actions: str) -> tuple[Services, BatchView, RegistryRecord]:
    services, registry = await registry_in_scope(request, *actions)
    batch_id = request.match_info["batch"]
    view = await services.batches.get(batch_id) if _OPERATION_ID.fullmatch(batch_id) else None
    if view is None or view.record.registry_id != registry.id:
        raise ArmError(
            404, "OperationNotFound", f"The import batch '{batch_id}' could not be found."
        )
    return services, view, registry


async def import_batch(request: web.Request) -> web.Response:
    services, view, registry = await _batch(request, Actions.REGISTRIES_READ, Actions.IMPORT_IMAGE)
    wait = wait_seconds(request, services.imports.settings.max_follow_seconds)
    seen = seen_version(request)
    if seen is not None and seen == batch_version(view) and wait > 0:
        followed = await services.batches.follow(view.record.id, seen, wait)
        if followed is None:  # deleted with its registry meanwhile: as the lookup answers
            services, view, registry = await _batch(
                request, Actions.REGISTRIES_READ, Actions.IMPORT_IMAGE
            )
        else:
            view = followed
    version = batch_version(view)
    headers = {"ETag": f'"{version}"', "Cache-Control": "no-store"}
    if not view.ended:
        headers["Retry-After"] = _RETRY_AFTER
    if seen == version:
        return web.Response(status=304, headers=headers)
    answer = await batch_json(request, services, view, registry)
    return arm_json(answer, headers=headers)


async def import_batch_cancel(request: web.Request) -> web.Response:
    services, view, registry = await _batch(request, Actions.IMPORT_IMAGE, Actions.REGISTRIES_WRITE)
    updated = await services.batches.cancel(view.record.id)
    answer = await batch_json(request, services, updated or view, registry)
    return arm_json(answer)
