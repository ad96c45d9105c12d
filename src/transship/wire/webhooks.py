"""Webhooks on the wire: the ARM resource `registries/webhooks`, its request bodies, its
callback configuration and its delivery log (ACR's 2023 API shapes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field

from transship.wire.base import Answer, DateTime, extensible

WebhookAction = Literal["push", "delete", "quarantine", "chart_push", "chart_delete"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# -- request bodies ----------------------------------------------------------------------------
class WebhookCreateProperties(_Body):
    service_uri: str = Field(alias="serviceUri", min_length=1, max_length=2048)
    custom_headers: dict[str, str] | None = Field(
        default=None, alias="customHeaders", max_length=32
    )
    status: Literal["enabled", "disabled"] | None = None
    scope: str | None = Field(default=None, max_length=255)
    actions: list[WebhookAction] = Field(min_length=1, max_length=5)


class WebhookCreateBody(_Body):
    """PUT: create or replace a webhook (`az acr webhook create`)."""

    location: str | None = Field(default=None, max_length=64)
    tags: dict[str, str] | None = Field(default=None, max_length=50)
    properties: WebhookCreateProperties


class WebhookUpdateProperties(_Body):
    service_uri: str | None = Field(default=None, alias="serviceUri", min_length=1, max_length=2048)
    custom_headers: dict[str, str] | None = Field(
        default=None, alias="customHeaders", max_length=32
    )
    status: Literal["enabled", "disabled"] | None = None
    scope: str | None = Field(default=None, max_length=255)
    actions: list[WebhookAction] | None = Field(default=None, min_length=1, max_length=5)


class WebhookUpdateBody(_Body):
    """PATCH: what is given changes, the rest stays (`az acr webhook update`)."""

    tags: dict[str, str] | None = Field(default=None, max_length=50)
    properties: WebhookUpdateProperties | None = None


# -- answers -----------------------------------------------------------------------------------
class WebhookProperties(Answer):
    status: str = extensible("enabled", "disabled")
    scope: str
    actions: list[str]
    provisioning_state: str = extensible("Succeeded")


class Webhook(Answer):
    """A webhook. Where it calls and its headers are never here (see CallbackConfig)."""

    id: str
    name: str
    type: Literal["Microsoft.ContainerRegistry/registries/webhooks"] = (
        "Microsoft.ContainerRegistry/registries/webhooks"
    )
    location: str
    tags: dict[str, str]
    properties: WebhookProperties


class WebhookList(Answer):
    value: list[Webhook]


class CallbackConfig(Answer):
    """What getCallbackConfig reveals: the URI, the custom headers and (a Transship
    extension) the secret that keys the deliveries' `X-Transship-Signature`."""

    service_uri: str
    custom_headers: dict[str, str]
    signing_secret: str


class EventInfo(Answer):
    """The id of the event a ping recorded."""

    id: str


class EventRequestMessage(Answer):
    content: dict[str, Any]
    headers: dict[str, str]
    method: str
    request_uri: str
    version: str


class EventResponseMessage(Answer):
    content: str | None
    headers: dict[str, str]
    reason_phrase: str | None
    status_code: str | None
    version: str


class Event(Answer):
    """One delivery of the log. `deliveryState`, `attempts`, `lastAttempt` and `error` are
    Transship extensions (ACR's log shows only the last exchange)."""

    id: str
    event_request_message: EventRequestMessage
    event_response_message: EventResponseMessage
    delivery_state: str = extensible("pending", "delivered", "failed")
    attempts: int
    last_attempt: DateTime | None
    error: str | None


class EventList(Answer):
    value: list[Event]
    next_link: str | MISSING = MISSING
