"""ARM resources `registries/webhooks`: the webhooks of a registry, their callback
configuration, ping and delivery log (`az acr webhook …`)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from aiohttp import web

from transship.api.arm import arm_json, json_body, registry_in_scope
from transship.api.arm_models import parse_body
from transship.api.envelopes import ArmError
from transship.api.events import event_request
from transship.api.query_numbers import nonnegative
from transship.identity.rbac import Actions
from transship.metadata.records import RegistryRecord
from transship.metadata.webhooks import DeliveryRecord, WebhookRecord
from transship.registry.registries import registry_id_of
from transship.webhooks.delivery import logged_headers, logged_uri
from transship.webhooks.service import WebhookPatch, WebhookService, WebhookSpec
from transship.wire import webhooks as wire

EVENTS_PAGE = 50


def _webhook_json(registry: RegistryRecord, webhook: WebhookRecord) -> wire.Webhook:
    return wire.Webhook(
        id=f"{registry_id_of(registry)}/webhooks/{webhook.name}",
        name=webhook.name,
        location=webhook.location,
        tags=webhook.tags,
        properties=wire.WebhookProperties(
            status="enabled" if webhook.enabled else "disabled",
            scope=webhook.scope,
            actions=list(webhook.actions),
            provisioning_state="Succeeded",
        ),
    )


def _event_json(
    service: WebhookService, webhook: WebhookRecord, delivery: DeliveryRecord
) -> wire.Event:
    config = service.open_callback(webhook)
    body = delivery.payload.encode()
    return wire.Event(
        id=delivery.id,
        event_request_message=wire.EventRequestMessage(
            content=json.loads(delivery.payload),
            headers=logged_headers(config, body, delivery.id),
            method="POST",
            request_uri=logged_uri(config.service_uri),
            version="1.1",
        ),
        event_response_message=wire.EventResponseMessage(
            content=delivery.response_body,
            headers=delivery.response_headers or {},
            reason_phrase=delivery.response_reason,
            status_code=None if delivery.response_status is None else str(delivery.response_status),
            version="1.1",
        ),
        delivery_state=delivery.state,
        attempts=delivery.attempts,
        last_attempt=None
        if delivery.last_attempt_at is None
        else delivery.last_attempt_at.isoformat().replace("+00:00", "Z"),
        error=delivery.error,
    )


async def webhooks_list(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_READ)
    return arm_json(
        wire.WebhookList(
            value=[_webhook_json(registry, w) for w in await services.webhooks.all(registry)]
        )
    )


async def webhook_get(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_READ)
    found = await services.webhooks.get(registry, request.match_info["webhook"])
    return arm_json(_webhook_json(registry, found))


async def webhook_put(request: web.Request) -> web.Response:
    """Create, or replace every setting of, a webhook."""
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_WRITE)
    body = parse_body(wire.WebhookCreateBody, await json_body(request))
    props = body.properties
    saved, created = await services.webhooks.put(
        registry,
        request.match_info["webhook"],
        WebhookSpec(
            service_uri=props.service_uri,
            actions=tuple(dict.fromkeys(props.actions)),
            custom_headers=props.custom_headers or {},
            enabled=props.status != "disabled",
            scope=props.scope or "",
            location=body.location,
            tags=body.tags or {},
        ),
    )
    return arm_json(_webhook_json(registry, saved), status=201 if created else 200)


async def webhook_patch(request: web.Request) -> web.Response:
    """Change what the body gives; the rest stays. `customHeaders: {}` clears them."""
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_WRITE)
    body = parse_body(wire.WebhookUpdateBody, await json_body(request, required=True))
    props = body.properties or wire.WebhookUpdateProperties()
    saved = await services.webhooks.update(
        registry,
        request.match_info["webhook"],
        WebhookPatch(
            service_uri=props.service_uri,
            actions=None if props.actions is None else tuple(dict.fromkeys(props.actions)),
            custom_headers=props.custom_headers,
            enabled=None if props.status is None else props.status == "enabled",
            scope=props.scope,
            tags=body.tags,
        ),
    )
    return arm_json(_webhook_json(registry, saved))


async def webhook_delete(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_DELETE)
    deleted = await services.webhooks.delete(registry, request.match_info["webhook"])
    return web.Response(status=200 if deleted else 204)


async def webhook_ping(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_PING)
    event_id = await services.webhooks.ping(
        registry, request.match_info["webhook"], event_request(request)
    )
    return arm_json(wire.EventInfo(id=event_id))


async def webhook_callback_config(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_CALLBACK_CONFIG)
    config = await services.webhooks.callback_config(registry, request.match_info["webhook"])
    return arm_json(
        wire.CallbackConfig(
            service_uri=config.service_uri,
            custom_headers=config.custom_headers,
            signing_secret=config.signing_secret,
        )
    )


async def webhook_events(request: web.Request) -> web.Response:
    """The delivery log, newest first, `EVENTS_PAGE` a page (POST for the first page as
    the SDKs do; GET on the nextLink for the others)."""
    services, registry = await registry_in_scope(request, Actions.WEBHOOKS_LIST_EVENTS)
    token = request.query.get("$skipToken", "0")
    # Past any delivery log (which keeps a bounded number of deliveries): an empty page.
    skip = nonnegative(token, ceiling=2**31 - 1)
    if skip is None:
        raise ArmError(
            400, "InvalidParameter", f"$skipToken {token!r} is not valid.", target="$skipToken"
        )
    name = request.match_info["webhook"]
    webhook = await services.webhooks.get(registry, name)
    page = await services.webhooks.events(registry, name, skip, EVENTS_PAGE + 1)
    answer = wire.EventList(
        value=[_event_json(services.webhooks, webhook, d) for d in page[:EVENTS_PAGE]]
    )
    if len(page) > EVENTS_PAGE:
        query = {
            "api-version": request.query.get("api-version", ""),
            "$skipToken": skip + EVENTS_PAGE,
        }
        link = str(request.url.with_query(None)) + "?" + urlencode(query)
        answer = wire.EventList(value=answer.value, next_link=link)
    return arm_json(answer)
