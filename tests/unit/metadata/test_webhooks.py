"""Webhook rows on SQLite and PostgreSQL: events recorded for the matching webhooks only,
in the caller's transaction; claiming with leases; the attempt log; the backlog bound and
pruning by age and count."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from transship.errors import Conflict
from transship.metadata.queries import MetadataStore
from transship.metadata.scope import utcnow
from transship.metadata.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    AttemptResult,
    EventDraft,
    EventRequest,
    webhook_queries,
)
from transship.oci.digest import Digest

DIGEST = Digest.parse("sha256:" + "ab" * 32)
REQUEST = EventRequest("req-1", "reg.localhost:5000", "PUT", "skopeo/1.9")


async def registry_id(meta: MetadataStore) -> int:
    async with meta.reading() as q:
        found = await q.registry_by_name("default")
    assert found is not None
    return found.id


async def add_hook(
    meta: MetadataStore,
    name: str,
    *,
    actions: tuple[str, ...] = ("push", "delete"),
    scope: str = "",
    enabled: bool = True,
) -> int:
    rid = await registry_id(meta)
    async with meta.writing() as q:
        hooks = webhook_queries(q)
        await hooks.insert_webhook(
            rid,
            name,
            location="local",
            enabled=enabled,
            scope=scope,
            actions=actions,
            tags={},
            callback=b"sealed",
            signing_secret=b"sealed",
        )
        found = await hooks.webhook(rid, name)
    assert found is not None
    return found.id


async def record(meta: MetadataStore, *drafts: EventDraft) -> int:
    rid = await registry_id(meta)
    async with meta.writing() as q:
        return await webhook_queries(q).record_events(rid, list(drafts), REQUEST)


async def deliveries(meta: MetadataStore, webhook_id: int) -> list[dict[str, object]]:
    async with meta.reading() as q:
        page = await webhook_queries(q).events_page(webhook_id, 0, 1000)
    return [
        {"action": d.action, "state": d.state, "attempts": d.attempts, **json.loads(d.payload)}
        for d in page
    ]


async def test_events_go_to_the_matching_enabled_webhooks_only(meta: MetadataStore) -> None:
    everything = await add_hook(meta, "everything")
    pushes = await add_hook(meta, "pushesonly", actions=("push",), scope="app:*")
    off = await add_hook(meta, "disabled", enabled=False)
    count = await record(
        meta,
        EventDraft("push", "app", DIGEST, "v1", "application/vnd.oci.image.manifest.v1+json", 9),
        EventDraft("delete", "app", DIGEST, "v1"),
        EventDraft("push", "other", DIGEST, "v1"),
    )
    assert count == 4
    seen = {(d["action"], d["target"]["repository"]): d for d in await deliveries(meta, everything)}
    assert set(seen) == {("push", "app"), ("delete", "app"), ("push", "other")}
    assert seen[("push", "app")]["target"] == {
        "repository": "app",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 9,
        "length": 9,
        "digest": str(DIGEST),
        "tag": "v1",
    }
    assert len(await deliveries(meta, everything)) == 3
    (only,) = await deliveries(meta, pushes)
    assert only["target"] == {"repository": "app", "digest": str(DIGEST), "tag": "v1"} | {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 9,
        "length": 9,
    }
    assert only["request"] == {
        "id": "req-1",
        "host": "reg.localhost:5000",
        "method": "PUT",
        "useragent": "skopeo/1.9",
    }
    assert only["state"] == PENDING and only["attempts"] == 0
    assert await deliveries(meta, off) == []


async def test_events_roll_back_with_the_change(meta: MetadataStore) -> None:
    hook = await add_hook(meta, "rollback")
    rid = await registry_id(meta)
    with pytest.raises(RuntimeError):
        async with meta.writing() as q:
            await webhook_queries(q).record_events(
                rid, [EventDraft("push", "app", DIGEST, "v1")], None
            )
            raise RuntimeError("the change failed")
    assert await deliveries(meta, hook) == []


async def test_a_taken_name_is_a_conflict(meta: MetadataStore) -> None:
    await add_hook(meta, "samename")
    with pytest.raises(Conflict):
        await add_hook(meta, "samename")


async def test_claims_lease_and_are_not_shared(meta: MetadataStore) -> None:
    await add_hook(meta, "claimed")
    await record(meta, *(EventDraft("push", "app", DIGEST, f"v{i}") for i in range(5)))
    now = utcnow()
    lease = now + timedelta(seconds=60)

    async def claim() -> list[str]:
        async with meta.writing() as q:
            return await webhook_queries(q).claim_due(now, lease, 3)

    first, second = await asyncio.gather(claim(), claim())
    assert len(first) + len(second) == 5
    assert not set(first) & set(second)
    assert await claim() == [], "leased rows are not due"
    async with meta.writing() as q:
        assert await webhook_queries(q).claim_due(lease, lease + timedelta(seconds=1), 10)


async def test_attempts_are_logged_and_states_follow(meta: MetadataStore) -> None:
    hook = await add_hook(meta, "attempts")
    await record(meta, EventDraft("push", "app", DIGEST, "v1"))
    now = utcnow()
    async with meta.writing() as q:
        (delivery_id,) = await webhook_queries(q).claim_due(now, now, 1)
    later = now + timedelta(seconds=30)
    async with meta.writing() as q:
        hooks = webhook_queries(q)
        await hooks.record_attempt(delivery_id, AttemptResult(503, "Unavailable"), retry_at=later)
        assert await hooks.next_due() == later
        await hooks.record_attempt(
            delivery_id,
            AttemptResult(200, "OK", {"X-A": "1"}, "fine"),
            retry_at=None,
        )
        assert await hooks.next_due() is None
        delivery = await hooks.delivery(delivery_id)
    assert delivery is not None
    assert (delivery.state, delivery.attempts, delivery.response_status) == (DELIVERED, 2, 200)
    assert delivery.response_headers == {"X-A": "1"} and delivery.response_body == "fine"
    assert (await deliveries(meta, hook))[0]["state"] == DELIVERED


async def test_backlog_is_bounded_oldest_dropped(meta: MetadataStore) -> None:
    hook = await add_hook(meta, "backlog")
    for i in range(5):
        await record(meta, EventDraft("push", "app", DIGEST, f"v{i}"))
    async with meta.writing() as q:
        assert await webhook_queries(q).drop_backlog(2) == 3
    states = {d["target"]["tag"]: d["state"] for d in await deliveries(meta, hook)}
    assert states == {"v0": FAILED, "v1": FAILED, "v2": FAILED, "v3": PENDING, "v4": PENDING}


async def test_prune_by_age_and_count_keeps_pending(meta: MetadataStore) -> None:
    hook = await add_hook(meta, "pruned")
    for i in range(6):
        await record(meta, EventDraft("push", "app", DIGEST, f"v{i}"))
    now = utcnow()
    async with meta.writing() as q:
        hooks = webhook_queries(q)
        ids = await hooks.claim_due(now, now, 10)
        for delivery_id in ids[:4]:
            await hooks.record_attempt(delivery_id, AttemptResult(200), retry_at=None)
    async with meta.writing() as q:
        assert await webhook_queries(q).prune(now - timedelta(days=1), 2) == 2
    remaining = await deliveries(meta, hook)
    assert len(remaining) == 4
    assert sum(d["state"] == PENDING for d in remaining) == 2
    async with meta.writing() as q:
        assert await webhook_queries(q).prune(utcnow() + timedelta(seconds=1), 100) == 2
    assert all(d["state"] == PENDING for d in await deliveries(meta, hook))


async def test_deleting_a_webhook_deletes_its_deliveries(meta: MetadataStore) -> None:
    hook = await add_hook(meta, "deleted")
    await record(meta, EventDraft("push", "app", DIGEST, "v1"))
    rid = await registry_id(meta)
    async with meta.writing() as q:
        assert await webhook_queries(q).delete_webhook(rid, "deleted")
        assert not await webhook_queries(q).delete_webhook(rid, "deleted")
    assert await deliveries(meta, hook) == []


async def test_deleting_the_registry_deletes_its_webhooks_and_deliveries(
    meta: MetadataStore,
) -> None:
    hook = await add_hook(meta, "cascaded")
    await record(meta, EventDraft("push", "app", DIGEST, "v1"))
    rid = await registry_id(meta)
    async with meta.writing() as q:
        assert await q.delete_registry(rid)
        assert await webhook_queries(q).webhook_by_id(hook) is None
    assert await deliveries(meta, hook) == []
