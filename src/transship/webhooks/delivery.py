"""Delivery of webhook events: a loop that takes due deliveries from the outbox (the
`webhook_deliveries` rows written with each change), POSTs each to its webhook's URL,
signed, through the webhook egress policy, and records the attempt: delivered on a 2xx,
otherwise retried with exponential backoff until `max_attempts`, then failed.

The outbox is the database: an event recorded by a committed change is delivered even if the
process stops before sending it (the next process, or another one sharing the database,
takes it once its lease passes). At-least-once: a receiver can see an event twice (same
`id`) when a process dies between the POST and recording it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from transship.config import WebhookSettings
from transship.imports.egress import EgressDenied, EgressPolicy, PolicyResolver
from transship.metadata.queries import MetadataStore
from transship.metadata.scope import utcnow
from transship.metadata.webhooks import AttemptResult, DeliveryRecord, webhook_queries
from transship.webhooks.service import CallbackConfig, WebhookService

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Transship-Signature"
EVENT_ID_HEADER = "X-Transship-Event-Id"
USER_AGENT = "Transship-Webhook/1.0"
REDACTED = "*****"
# How often the log is pruned and the backlog bounded, in seconds.
_HOUSEKEEPING_SECONDS = 60.0
_MAX_RESPONSE_HEADERS = 50


def signature(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the exact body,
    keyed with the webhook's signing secret (UTF-8)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(config: CallbackConfig, body: bytes, event_id: str) -> dict[str, str]:
    """The headers of a delivery: the custom ones, then the service's own (which a custom
    header cannot replace, except Content-Type)."""
    headers = {"Content-Type": "application/json"}
    headers.update(config.custom_headers)
    headers.update(
        {
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: signature(config.signing_secret, body),
        }
    )
    return headers


def logged_headers(config: CallbackConfig, body: bytes, event_id: str) -> dict[str, str]:
    """The headers as the delivery log shows them: custom header values hidden."""
    headers = delivery_headers(config, body, event_id)
    for name in config.custom_headers:
        if name.lower() != "content-type":
            headers[name] = REDACTED
    return headers


def logged_uri(service_uri: str) -> str:
    """The URI as the delivery log shows it: without its query (it may carry a key)."""
    parts = urlsplit(service_uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class WebhookDispatcher:
    """The delivery loop (`run_forever`, supervised as "webhooks"). `wake()` makes it look
    at the outbox now rather than at the next poll."""

    def __init__(
        self,
        meta: MetadataStore,
        webhooks: WebhookService,
        settings: WebhookSettings,
        egress: EgressPolicy,
        inner_resolver: Callable[[], AbstractResolver] = DefaultResolver,
    ) -> None:
        self._meta = meta
        self._webhooks = webhooks
        self._settings = settings
        self._egress = egress
        self._inner_resolver = inner_resolver
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self, beat: Callable[[], None]) -> None:
        """Deliver until cancelled; beats after each look at the outbox. Deliveries in
        flight are cancelled with it (their rows stay pending: retried after the lease)."""
        connector = aiohttp.TCPConnector(
            resolver=PolicyResolver(self._egress, self._inner_resolver()),
            limit=self._settings.concurrency,
        )
        # No environment proxies or .netrc, no cookies: a delivery goes only where it says.
        session = aiohttp.ClientSession(
            connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        housekept = -_HOUSEKEEPING_SECONDS
        try:
            while True:
                self._wake.clear()
                free = self._settings.concurrency - len(self._in_flight)
                if free > 0:
                    for delivery_id in await self._claim(free):
                        task = asyncio.create_task(self._deliver(session, delivery_id))
                        self._in_flight.add(task)
                        task.add_done_callback(self._finished)
                if time.monotonic() - housekept >= _HOUSEKEEPING_SECONDS:
                    await self.housekeeping()
                    housekept = time.monotonic()
                beat()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows the
                # shutdown's cancellation when a wake-up arrives at that moment.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_seconds):
                        await self._wake.wait()
        finally:
            tasks = list(self._in_flight)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery crashed", exc_info=task.exception())
        self._wake.set()  # a slot is free

    async def _claim(self, limit: int) -> list[str]:
        now = utcnow()
        lease = timedelta(seconds=self._settings.timeout_seconds + 30)
        async with self._meta.writing() as q:
            return await webhook_queries(q).claim_due(now, now + lease, limit)

    async def housekeeping(self) -> None:
        """Bound the backlog of every webhook and prune the log by age and count."""
        cutoff = utcnow() - timedelta(days=self._settings.log_max_age_days)
        async with self._meta.writing() as q:
            hooks = webhook_queries(q)
            dropped = await hooks.drop_backlog(self._settings.max_pending_per_webhook)
            await hooks.prune(cutoff, self._settings.log_max_per_webhook)
        if dropped:
            log.warning("webhook deliveries dropped: %d over the per-webhook backlog", dropped)

    async def _deliver(self, session: aiohttp.ClientSession, delivery_id: str) -> None:
        async with self._meta.reading() as q:
            hooks = webhook_queries(q)
            delivery = await hooks.delivery(delivery_id)
            webhook = None if delivery is None else await hooks.webhook_by_id(delivery.webhook_id)
        if delivery is None or webhook is None:
            return  # the webhook was deleted meanwhile, and its deliveries with it
        config = self._webhooks.open_callback(webhook)
        result, permanent = await self._post(session, config, delivery)
        retry_at = None
        if not result.succeeded and not permanent:
            retry_at = self._retry_at(delivery, utcnow())
        async with self._meta.writing() as q:
            await webhook_queries(q).record_attempt(delivery_id, result, retry_at=retry_at)
        if not result.succeeded:
            log.info(
                "webhook %s delivery %s attempt %d failed: %s",
                webhook.name,
                delivery_id,
                delivery.attempts + 1,
                result.status if result.status is not None else result.error,
            )

    def _retry_at(self, delivery: DeliveryRecord, now: datetime) -> datetime | None:
        if delivery.attempts + 1 >= self._settings.max_attempts:
            return None
        wait = min(
            self._settings.retry_max_seconds,
            self._settings.retry_initial_seconds * 2.0**delivery.attempts,
        )
        # Jitter, so that the deliveries a dead endpoint refused do not return in step.
        return now + timedelta(seconds=wait * random.uniform(0.8, 1.2))

    async def _post(
        self, session: aiohttp.ClientSession, config: CallbackConfig, delivery: DeliveryRecord
    ) -> tuple[AttemptResult, bool]:
        """One attempt. Returns the result and whether failing again is certain (refused by
        the egress policy: not retried)."""
        body = delivery.payload.encode()
        limit = self._settings.response_body_bytes
        try:
            async with session.post(
                config.service_uri,
                data=body,
                headers=delivery_headers(config, body, delivery.id),
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds),
                allow_redirects=False,
            ) as response:
                content = await response.content.read(limit) if limit else b""
                headers = dict(list(response.headers.items())[:_MAX_RESPONSE_HEADERS])
                return (
                    AttemptResult(
                        response.status,
                        response.reason,
                        {k: v[:1024] for k, v in headers.items()},
                        content.decode("utf-8", "replace"),
                    ),
                    False,
                )
        except EgressDenied as exc:
            return AttemptResult(None, error=str(exc)), True
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, EgressDenied):
                return AttemptResult(None, error=str(exc.os_error)), True
            return AttemptResult(None, error=f"cannot connect: {exc.os_error}"), False
        except TimeoutError:
            return (
                AttemptResult(
                    None, error=f"no answer within {self._settings.timeout_seconds} seconds"
                ),
                False,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return AttemptResult(None, error=f"{type(exc).__name__}: {exc}"), False
