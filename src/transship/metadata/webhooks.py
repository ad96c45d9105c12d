"""Queries over webhooks and their deliveries, and the recording of events.

An event is recorded as one delivery row per webhook it concerns, in the transaction of the
change that caused it (`record_events`, called by the registry and the import sink inside
their write): the outbox. The webhook loop delivers the rows and keeps them as the delivery
log. Nothing here opens a connection or speaks HTTP.
"""

from __future__ import annotations

import fnmatch
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, select, update

from transship.metadata import schema as s
from transship.metadata.scope import QueryScope, as_utc, utcnow
from transship.oci.digest import Digest

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
# The actions ACR knows. Transship emits push and delete; quarantine and the chart actions are
# accepted (ACR clients send them) but nothing here produces them.
ACTIONS = ("push", "delete", "quarantine", "chart_push", "chart_delete")
PING = "ping"


@dataclass(frozen=True, slots=True)
class EventRequest:
    """What caused an event: the client request (ACR's `request` object of an event)."""

    id: str
    host: str
    method: str
    useragent: str
    addr: str = ""


@dataclass(frozen=True, slots=True)
class EventDraft:
    """One event to record: an action on a repository's manifest (and tag)."""

    action: str
    repository: str
    digest: Digest | None
    tag: str | None = None
    media_type: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: int
    registry_id: int
    name: str
    location: str
    enabled: bool
    scope: str
    actions: tuple[str, ...]
    tags: dict[str, str]
    callback: bytes  # sealed JSON {"serviceUri", "customHeaders"}
    signing_secret: bytes  # sealed
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: str
    webhook_id: int
    action: str
    payload: str
    state: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_attempt_at: datetime | None
    response_status: int | None
    response_reason: str | None
    response_headers: dict[str, str] | None
    response_body: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The outcome of one delivery attempt. `status` None: no response (see `error`)."""

    status: int | None
    reason: str | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


_SCOPE_REPOSITORY = re.compile(r"[a-z0-9*][a-z0-9*._/-]{0,254}")
_SCOPE_TAG = re.compile(r"[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,127}")


def valid_scope(scope: str) -> bool:
    """`repository[:tag]` with `*` wildcards in either part, or empty (everything)."""
    if scope == "":
        return True
    repository, colon, tag = scope.partition(":")
    if not _SCOPE_REPOSITORY.fullmatch(repository):
        return False
    return not colon or bool(_SCOPE_TAG.fullmatch(tag))


def _wildcard(pattern: str, value: str) -> bool:
    # Only `*` is a wildcard in ACR scopes; fnmatch's ? and [] are taken literally.
    escaped = "".join("[" + c + "]" if c in "?[]" else c for c in pattern)
    return fnmatch.fnmatchcase(value, escaped)


def scope_matches(scope: str, repository: str, tag: str | None) -> bool:
    """ACR's scope rule: empty matches every event; `repo:tag` matches that tag, `repo:*`
    every tag of repo, and `repo` alone means `repo:latest`. An event without a tag (a push
    or delete by digest) matches only a scope whose tag part is exactly `*`."""
    if scope == "":
        return True
    scope_repository, _, scope_tag = scope.partition(":")
    scope_tag = scope_tag or "latest"
    if not _wildcard(scope_repository, repository):
        return False
    if tag is None:
        return scope_tag == "*"
    return _wildcard(scope_tag, tag)


def event_payload(
    event_id: str, timestamp: datetime, draft: EventDraft, request: EventRequest | None
) -> dict[str, Any]:
    """The body a delivery posts: ACR's event shape."""
    target: dict[str, Any] = {"repository": draft.repository}
    if draft.media_type is not None:
        target["mediaType"] = draft.media_type
    if draft.size is not None:
        target["size"] = draft.size
        target["length"] = draft.size
    if draft.digest is not None:
        target["digest"] = str(draft.digest)
    if draft.tag is not None:
        target["tag"] = draft.tag
    body: dict[str, Any] = {
        "id": event_id,
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "action": draft.action,
        "target": target,
    }
    if request is not None:
        body["request"] = {
            "id": request.id,
            "host": request.host,
            "method": request.method,
            "useragent": request.useragent,
        }
        if request.addr:
            body["request"]["addr"] = request.addr
    return body


class WebhookQueries(QueryScope):
    """Webhooks and deliveries, on one connection (see QueryScope.joining)."""

    @staticmethod
    def _webhook(row: Row[Any]) -> WebhookRecord:
        return WebhookRecord(
            id=row.id,
            registry_id=row.registry_id,
            name=row.name,
            location=row.location,
            enabled=row.enabled,
            scope=row.scope,
            actions=tuple(json.loads(row.actions)),
            tags=json.loads(row.tags),
            callback=row.callback,
            signing_secret=row.signing_secret,
            created_at=as_utc(row.created_at),
        )

    @staticmethod
    def _delivery(row: Row[Any]) -> DeliveryRecord:
        return DeliveryRecord(
            id=row.id,
            webhook_id=row.webhook_id,
            action=row.action,
            payload=row.payload,
            state=row.state,
            attempts=row.attempts,
            next_attempt_at=as_utc(row.next_attempt_at),
            created_at=as_utc(row.created_at),
            last_attempt_at=None if row.last_attempt_at is None else as_utc(row.last_attempt_at),
            response_status=row.response_status,
            response_reason=row.response_reason,
            response_headers=None
            if row.response_headers is None
            else json.loads(row.response_headers),
            response_body=row.response_body,
            error=row.error,
        )

    # -- webhooks --------------------------------------------------------------------------
    async def webhooks(self, registry_id: int) -> list[WebhookRecord]:
        rows = await self._exec(
            select(s.webhooks)
            .where(s.webhooks.c.registry_id == registry_id)
            .order_by(s.webhooks.c.name)
        )
        return [self._webhook(r) for r in rows]

    async def webhook(self, registry_id: int, name: str) -> WebhookRecord | None:
        row = (
            await self._exec(
                select(s.webhooks).where(
                    s.webhooks.c.registry_id == registry_id, s.webhooks.c.name == name
                )
            )
        ).first()
        return None if row is None else self._webhook(row)

    async def webhook_by_id(self, webhook_id: int) -> WebhookRecord | None:
        row = (await self._exec(select(s.webhooks).where(s.webhooks.c.id == webhook_id))).first()
        return None if row is None else self._webhook(row)

    async def count_webhooks(self, registry_id: int) -> int:
        return int(
            (
                await self._exec(
                    select(func.count()).where(s.webhooks.c.registry_id == registry_id)
                )
            ).scalar_one()
        )

    async def insert_webhook(
        self,
        registry_id: int,
        name: str,
        *,
        location: str,
        enabled: bool,
        scope: str,
        actions: Sequence[str],
        tags: dict[str, str],
        callback: bytes,
        signing_secret: bytes,
    ) -> None:
        """Raises Conflict when the name is taken (a concurrent create)."""
        await self._exec(
            insert(s.webhooks).values(
                registry_id=registry_id,
                name=name,
                location=location,
                enabled=enabled,
                scope=scope,
                actions=json.dumps(list(actions)),
                tags=json.dumps(tags),
                callback=callback,
                signing_secret=signing_secret,
                created_at=utcnow(),
            )
        )

    async def update_webhook(
        self,
        webhook_id: int,
        *,
        enabled: bool,
        scope: str,
        actions: Sequence[str],
        tags: dict[str, str],
        callback: bytes,
    ) -> None:
        await self._exec(
            update(s.webhooks)
            .where(s.webhooks.c.id == webhook_id)
            .values(
                enabled=enabled,
                scope=scope,
                actions=json.dumps(list(actions)),
                tags=json.dumps(tags),
                callback=callback,
            )
        )

    async def delete_webhook(self, registry_id: int, name: str) -> bool:
        """Deletes its deliveries too (pending ones are never sent)."""
        found = await self.webhook(registry_id, name)
        if found is None:
            return False
        await self._exec(
            delete(s.webhook_deliveries).where(s.webhook_deliveries.c.webhook_id == found.id)
        )
        await self._exec(delete(s.webhooks).where(s.webhooks.c.id == found.id))
        return True

    # -- events ----------------------------------------------------------------------------
    async def record_events(
        self, registry_id: int, drafts: Sequence[EventDraft], request: EventRequest | None
    ) -> int:
        """Record `drafts` for every enabled webhook of the registry whose actions and scope
        they match: one pending delivery each. Returns the number of deliveries recorded.
        Call inside the write that makes the change, so that the event commits (or not)
        with it."""
        if not drafts:
            return 0
        rows = await self._exec(
            select(s.webhooks.c.id, s.webhooks.c.scope, s.webhooks.c.actions).where(
                s.webhooks.c.registry_id == registry_id, s.webhooks.c.enabled.is_(True)
            )
        )
        hooks = [(r.id, r.scope, set(json.loads(r.actions))) for r in rows]
        if not hooks:
            return 0
        now = utcnow()
        values: list[dict[str, Any]] = []
        for draft in drafts:
            for hook_id, scope, actions in hooks:
                if draft.action in actions and scope_matches(scope, draft.repository, draft.tag):
                    event_id = str(uuid.uuid4())
                    payload = event_payload(event_id, now, draft, request)
                    values.append(self._pending(event_id, hook_id, draft.action, payload, now))
        if values:
            await self._exec(insert(s.webhook_deliveries), values)
        return len(values)

    async def record_ping(self, webhook_id: int, request: EventRequest | None) -> str:
        """A ping event for one webhook, whatever its status, scope and actions. Returns
        the event id."""
        now = utcnow()
        event_id = str(uuid.uuid4())
        payload: dict[str, Any] = {
            "id": event_id,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "action": PING,
        }
        if request is not None:
            payload["request"] = {
                "id": request.id,
                "host": request.host,
                "method": request.method,
                "useragent": request.useragent,
            }
        await self._exec(
            insert(s.webhook_deliveries).values(
                **self._pending(event_id, webhook_id, PING, payload, now)
            )
        )
        return event_id

    @staticmethod
    def _pending(
        event_id: str, webhook_id: int, action: str, payload: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        return {
            "id": event_id,
            "webhook_id": webhook_id,
            "action": action,
            "payload": json.dumps(payload, separators=(",", ":")),
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }

    # -- delivery --------------------------------------------------------------------------
    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[str]:
        """Ids of up to `limit` pending deliveries due at `now`, each leased until
        `lease_until` (its next attempt time moves there, so another process does not take
        it meanwhile; a process that dies mid-attempt leaves it due again after the lease).
        """
        d = s.webhook_deliveries.c
        due_rows = (
            select(d.id, d.next_attempt_at)
            .where(d.state == PENDING, d.next_attempt_at <= now)
            .order_by(d.next_attempt_at)
            .limit(limit)
        )
        if self.conn.dialect.name == "postgresql":
            # Concurrent claimers take different rows instead of queueing on the same ones
            # (SQLite runs one writer at a time anyway).
            due_rows = due_rows.with_for_update(skip_locked=True)
        candidates = [(r.id, r.next_attempt_at) for r in await self._exec(due_rows)]
        claimed: list[str] = []
        for delivery_id, due in candidates:
            result = await self._exec(
                update(s.webhook_deliveries)
                .where(d.id == delivery_id, d.state == PENDING, d.next_attempt_at == due)
                .values(next_attempt_at=lease_until)
            )
            if result.rowcount:
                claimed.append(delivery_id)
        return claimed

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        row = (
            await self._exec(
                select(s.webhook_deliveries).where(s.webhook_deliveries.c.id == delivery_id)
            )
        ).first()
        return None if row is None else self._delivery(row)

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (None: nothing pending)."""
        d = s.webhook_deliveries.c
        value = (
            await self._exec(select(func.min(d.next_attempt_at)).where(d.state == PENDING))
        ).scalar_one()
        return None if value is None else as_utc(value)

    async def record_attempt(
        self, delivery_id: str, result: AttemptResult, *, retry_at: datetime | None
    ) -> None:
        """Log an attempt: delivered on a 2xx; else pending again at `retry_at`, or failed
        for good when `retry_at` is None."""
        state = DELIVERED if result.succeeded else (PENDING if retry_at is not None else FAILED)
        now = utcnow()
        await self._exec(
            update(s.webhook_deliveries)
            .where(s.webhook_deliveries.c.id == delivery_id)
            .values(
                state=state,
                attempts=s.webhook_deliveries.c.attempts + 1,
                next_attempt_at=retry_at if retry_at is not None else now,
                last_attempt_at=now,
                response_status=result.status,
                response_reason=result.reason,
                response_headers=None if result.headers is None else json.dumps(result.headers),
                response_body=result.body,
                error=result.error,
            )
        )

    async def events_page(self, webhook_id: int, skip: int, limit: int) -> list[DeliveryRecord]:
        """A webhook's deliveries, newest first."""
        d = s.webhook_deliveries.c
        rows = await self._exec(
            select(s.webhook_deliveries)
            .where(d.webhook_id == webhook_id)
            .order_by(d.created_at.desc(), d.id)
            .offset(skip)
            .limit(limit)
        )
        return [self._delivery(r) for r in rows]

    # -- bounds ----------------------------------------------------------------------------
    async def drop_backlog(self, max_pending: int) -> int:
        """Fail the oldest pending deliveries of any webhook that has more than
        `max_pending` (a dead endpoint must not collect events without bound). Returns how
        many were dropped."""
        d = s.webhook_deliveries.c
        over = [
            (r.webhook_id, r.n)
            for r in await self._exec(
                select(d.webhook_id, func.count().label("n"))
                .where(d.state == PENDING)
                .group_by(d.webhook_id)
                .having(func.count() > max_pending)
            )
        ]
        dropped = 0
        for webhook_id, count in over:
            ids = [
                r.id
                for r in await self._exec(
                    select(d.id)
                    .where(d.webhook_id == webhook_id, d.state == PENDING)
                    .order_by(d.created_at, d.id)
                    .limit(count - max_pending)
                )
            ]
            result = await self._exec(
                update(s.webhook_deliveries)
                .where(d.id.in_(ids), d.state == PENDING)
                .values(
                    state=FAILED,
                    error=f"dropped: more than {max_pending} deliveries were waiting",
                )
            )
            dropped += int(result.rowcount)
        return dropped

    async def prune(self, cutoff: datetime, keep_per_webhook: int) -> int:
        """Delete finished deliveries older than `cutoff`, and beyond the newest
        `keep_per_webhook` finished ones of each webhook. Pending ones stay."""
        d = s.webhook_deliveries.c
        finished = d.state.in_((DELIVERED, FAILED))
        removed = int(
            (
                await self._exec(
                    delete(s.webhook_deliveries).where(and_(finished, d.created_at < cutoff))
                )
            ).rowcount
        )
        over = [
            r.webhook_id
            for r in await self._exec(
                select(d.webhook_id)
                .where(finished)
                .group_by(d.webhook_id)
                .having(func.count() > keep_per_webhook)
            )
        ]
        for webhook_id in over:
            boundary = (
                await self._exec(
                    select(d.created_at)
                    .where(d.webhook_id == webhook_id, finished)
                    .order_by(d.created_at.desc())
                    .offset(keep_per_webhook)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if boundary is None:
                continue
            removed += int(
                (
                    await self._exec(
                        delete(s.webhook_deliveries).where(
                            d.webhook_id == webhook_id, finished, d.created_at <= boundary
                        )
                    )
                ).rowcount
            )
        return removed


def webhook_queries(scope: QueryScope) -> WebhookQueries:
    """The webhook queries in `scope`'s transaction (sharing its commit callbacks)."""
    queries: WebhookQueries = WebhookQueries.joining(scope)
    return queries
