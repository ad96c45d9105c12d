"""Webhook management: create, change, delete, reveal the callback configuration, ping and
read the delivery log. Deliveries themselves are `transship.webhooks.delivery`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from transship.config import WebhookSettings
from transship.errors import Conflict, Invalid, LimitExceeded, NotFound
from transship.identity.secrets import SecretBox, new_secret
from transship.imports.egress import EgressDenied, EgressPolicy
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.metadata.webhooks import (
    ACTIONS,
    DeliveryRecord,
    EventRequest,
    WebhookRecord,
    valid_scope,
    webhook_queries,
)

_NAME = re.compile(r"[A-Za-z0-9]{5,50}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
# Headers a delivery sets itself: a custom header may not replace them.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
RESERVED_PREFIX = "x-transship-"


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    """Where a webhook posts, with what headers, and the key of its signature. Secret."""

    service_uri: str
    custom_headers: dict[str, str]
    signing_secret: str = field(repr=False)

    def __repr__(self) -> str:  # never let a log line show the URI's query or the headers
        return "CallbackConfig(<sealed>)"


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """A whole webhook as PUT gives it."""

    service_uri: str
    actions: tuple[str, ...]
    custom_headers: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    scope: str = ""
    location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookPatch:
    """What PATCH changes; None: unchanged."""

    service_uri: str | None = None
    actions: tuple[str, ...] | None = None
    custom_headers: dict[str, str] | None = None
    enabled: bool | None = None
    scope: str | None = None
    tags: dict[str, str] | None = None


class WebhookService:
    """Webhooks of registries. `wake` is called after a ping commits (the delivery loop)."""

    def __init__(
        self,
        meta: MetadataStore,
        box: SecretBox,
        settings: WebhookSettings,
        egress: EgressPolicy,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._meta = meta
        self._box = box
        self._settings = settings
        self._egress = egress
        self.wake = wake or (lambda: None)

    # -- reading ---------------------------------------------------------------------------
    async def all(self, registry: RegistryRecord) -> list[WebhookRecord]:
        async with self._meta.reading() as q:
            return await webhook_queries(q).webhooks(registry.id)

    async def usage(self, registry: RegistryRecord) -> tuple[int, int]:
        """How many webhooks the registry has, and the most it may have."""
        async with self._meta.reading() as q:
            count = await webhook_queries(q).count_webhooks(registry.id)
        return count, self._settings.max_per_registry

    async def get(self, registry: RegistryRecord, name: str) -> WebhookRecord:
        """Raises NotFound("webhook")."""
        async with self._meta.reading() as q:
            found = await webhook_queries(q).webhook(registry.id, name)
        if found is None:
            raise _unknown(registry, name)
        return found

    async def callback_config(self, registry: RegistryRecord, name: str) -> CallbackConfig:
        """The secret half of a webhook. Raises NotFound("webhook")."""
        return self.open_callback(await self.get(registry, name))

    def open_callback(self, webhook: WebhookRecord) -> CallbackConfig:
        data = json.loads(self._box.open(webhook.callback))
        return CallbackConfig(
            data["serviceUri"],
            dict(data["customHeaders"]),
            self._box.open(webhook.signing_secret).decode(),
        )

    async def events(
        self, registry: RegistryRecord, name: str, skip: int, limit: int
    ) -> list[DeliveryRecord]:
        """The webhook's deliveries, newest first. Raises NotFound("webhook")."""
        async with self._meta.reading() as q:
            hooks = webhook_queries(q)
            found = await hooks.webhook(registry.id, name)
            if found is None:
                raise _unknown(registry, name)
            return await hooks.events_page(found.id, skip, limit)

    # -- writing ---------------------------------------------------------------------------
    async def put(
        self, registry: RegistryRecord, name: str, spec: WebhookSpec
    ) -> tuple[WebhookRecord, bool]:
        """Create the webhook, or replace every setting of an existing one (its signing
        secret stays). Returns it and whether it was created. Raises Invalid naming the
        field, LimitExceeded past `max_per_registry` webhooks, Conflict on a concurrent
        create."""
        if not _NAME.fullmatch(name):
            raise Invalid(
                "webhookName",
                f"webhook name {name!r} must be 5 to 50 letters and digits",
                subject="webhook",
            )
        self._check(spec.service_uri, spec.actions, spec.custom_headers, spec.scope)
        callback = self._seal_callback(spec.service_uri, spec.custom_headers)
        async with self._meta.writing() as q:
            hooks = webhook_queries(q)
            current = await hooks.webhook(registry.id, name)
            if current is not None:
                await hooks.update_webhook(
                    current.id,
                    enabled=spec.enabled,
                    scope=spec.scope,
                    actions=spec.actions,
                    tags=spec.tags,
                    callback=callback,
                )
            else:
                if await hooks.count_webhooks(registry.id) >= self._settings.max_per_registry:
                    raise LimitExceeded(
                        f"registry {registry.name} has "
                        f"{self._settings.max_per_registry} webhooks, the most it may have",
                        subject="webhook",
                    )
                try:
                    await hooks.insert_webhook(
                        registry.id,
                        name,
                        location=spec.location or registry.location,
                        enabled=spec.enabled,
                        scope=spec.scope,
                        actions=spec.actions,
                        tags=spec.tags,
                        callback=callback,
                        signing_secret=self._box.seal(new_secret().encode()),
                    )
                except Conflict:
                    raise Conflict(
                        f"webhook {name} was created concurrently", subject="webhook"
                    ) from None
            saved = await hooks.webhook(registry.id, name)
        assert saved is not None
        return saved, current is None

    async def update(
        self, registry: RegistryRecord, name: str, patch: WebhookPatch
    ) -> WebhookRecord:
        """Change what `patch` gives. Raises NotFound("webhook") or Invalid."""
        current = await self.get(registry, name)
        config = self.open_callback(current)
        service_uri = patch.service_uri if patch.service_uri is not None else config.service_uri
        headers = (
            patch.custom_headers if patch.custom_headers is not None else config.custom_headers
        )
        actions = patch.actions if patch.actions is not None else current.actions
        scope = patch.scope if patch.scope is not None else current.scope
        self._check(service_uri, actions, headers, scope)
        async with self._meta.writing() as q:
            hooks = webhook_queries(q)
            again = await hooks.webhook(registry.id, name)
            if again is None:
                raise _unknown(registry, name)
            await hooks.update_webhook(
                again.id,
                enabled=patch.enabled if patch.enabled is not None else again.enabled,
                scope=scope,
                actions=actions,
                tags=patch.tags if patch.tags is not None else again.tags,
                callback=self._seal_callback(service_uri, headers),
            )
            saved = await hooks.webhook(registry.id, name)
        assert saved is not None
        return saved

    async def delete(self, registry: RegistryRecord, name: str) -> bool:
        """Delete a webhook and its log (undelivered events are dropped). False when there
        was none."""
        async with self._meta.writing() as q:
            return await webhook_queries(q).delete_webhook(registry.id, name)

    async def ping(self, registry: RegistryRecord, name: str, request: EventRequest | None) -> str:
        """Record a ping event for the webhook (delivered like any event, whatever the
        webhook's status). Returns the event id. Raises NotFound("webhook")."""
        async with self._meta.writing() as q:
            hooks = webhook_queries(q)
            found = await hooks.webhook(registry.id, name)
            if found is None:
                raise _unknown(registry, name)
            event_id = await hooks.record_ping(found.id, request)
            q.on_commit(self.wake)
        return event_id

    # -- validation ------------------------------------------------------------------------
    def _check(
        self,
        service_uri: str,
        actions: Sequence[str],
        headers: Mapping[str, str],
        scope: str,
    ) -> None:
        check_service_uri(service_uri, self._egress)
        if not actions:
            raise Invalid("actions", "a webhook needs at least one action", subject="webhook")
        for action in actions:
            if action not in ACTIONS:
                raise Invalid(
                    "actions",
                    f"action {action!r} is not one of {', '.join(ACTIONS)}",
                    subject="webhook",
                )
        check_headers(headers)
        if not valid_scope(scope):
            raise Invalid(
                "scope",
                f"scope {scope!r} is not repository[:tag] (with * wildcards) or empty",
                subject="webhook",
            )

    def _seal_callback(self, service_uri: str, headers: Mapping[str, str]) -> bytes:
        document = {"serviceUri": service_uri, "customHeaders": dict(headers)}
        return self._box.seal(json.dumps(document).encode())


def check_service_uri(service_uri: str, egress: EgressPolicy) -> None:
    """An absolute http(s) URL without credentials, to a host the egress policy does not
    refuse outright (an address literal or a refused name; other names are checked at each
    delivery). Raises Invalid("serviceUri")."""
    try:
        parts = urlsplit(service_uri)
        parts.port  # noqa: B018 (reading it raises ValueError for a port out of range)
    except ValueError as exc:
        raise Invalid("serviceUri", f"serviceUri is not a URL: {exc}", subject="webhook") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(
            "serviceUri",
            "serviceUri must be an absolute http:// or https:// URL",
            subject="webhook",
        )
    if parts.username is not None or parts.password is not None:
        raise Invalid(
            "serviceUri",
            "serviceUri may not carry credentials; use customHeaders (Authorization)",
            subject="webhook",
        )
    if any(c.isspace() for c in service_uri):
        raise Invalid("serviceUri", "serviceUri may not contain white space", subject="webhook")
    try:
        egress.check_literal(parts.hostname)
    except EgressDenied as exc:
        raise Invalid(
            "serviceUri",
            f"serviceUri is refused by the webhook egress policy: {exc}",
            subject="webhook",
            reason="egress",
        ) from None


def check_headers(headers: Mapping[str, str]) -> None:
    """Header names are HTTP tokens, values one line; the headers a delivery sets itself
    are refused. Raises Invalid("customHeaders"), never quoting a value."""
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise Invalid(
                "customHeaders", f"header name {name!r} is not an HTTP token", subject="webhook"
            )
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIX):
            raise Invalid(
                "customHeaders",
                f"header {name} is set by every delivery and cannot be customized",
                subject="webhook",
            )
        if any(c in value for c in "\r\n\x00") or len(value) > 8192:
            raise Invalid(
                "customHeaders",
                f"the value of header {name} must be one line of at most 8192 characters",
                subject="webhook",
            )


def _unknown(registry: RegistryRecord, name: str) -> NotFound:
    return NotFound("webhook", name, f"webhook {name} does not exist in registry {registry.name}")
