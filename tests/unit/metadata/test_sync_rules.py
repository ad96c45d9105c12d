"""Sync rule rows on SQLite and PostgreSQL: one claimer of a rule among racers, a lapsed
lease taken over (the run it left `running` marked interrupted), due rules (queued runs and
schedules), the history trimmed to the newest N, per-tag records replaced and forgotten,
and everything gone with the rule's registry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from transship.metadata.queries import MetadataStore
from transship.metadata.scope import utcnow
from transship.metadata.sync_rules import (
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    SyncedTag,
    SyncRuleQueries,
    sync_runs,
    sync_tags,
)
from transship.oci.digest import Digest

RULE = "r" * 32
UP = Digest.of(b"up")
LOCAL = Digest.of(b"local")


def rules(q: object) -> SyncRuleQueries:
    group: SyncRuleQueries = SyncRuleQueries.joining(q)  # type: ignore[arg-type]
    return group


async def _rule(meta: MetadataStore, next_run: timedelta | None = None) -> None:
    async with meta.writing() as q:
        created = await rules(q).put_rule(
            RULE, 1, "mirror", "{}", None, None if next_run is None else utcnow() + next_run
        )
    assert created


async def test_one_of_racing_claimers_wins(meta: MetadataStore) -> None:
    await _rule(meta)
    lease = timedelta(seconds=30)

    async def claim(owner: str) -> bool:
        async with meta.writing() as q:
            return await rules(q).claim_rule(RULE, owner, lease)

    won = await asyncio.gather(*(claim(f"{n:032d}") for n in range(5)))
    assert sorted(won) == [False] * 4 + [True]
    winner = f"{won.index(True):032d}"
    async with meta.writing() as q:
        assert await rules(q).renew_rule(RULE, winner, lease)
        assert not await rules(q).renew_rule(RULE, "x" * 32, lease)
        await rules(q).release_rule(RULE, winner, None)
    assert await claim("y" * 32)


async def test_a_lapsed_lease_is_taken_over_and_its_run_marked_interrupted(
    meta: MetadataStore,
) -> None:
    await _rule(meta)
    async with meta.writing() as q:
        assert await rules(q).claim_rule(RULE, "a" * 32, timedelta(0))
        await rules(q).create_run("1" * 32, RULE, "scheduled", RUNNING)
    await asyncio.sleep(0.01)
    async with meta.writing() as q:
        assert await rules(q).claim_rule(RULE, "b" * 32, timedelta(seconds=30))
        await rules(q).abandon_runs(RULE)
        run = await rules(q).run("1" * 32)
        # The first owner can no longer renew.
        assert not await rules(q).renew_rule(RULE, "a" * 32, timedelta(seconds=30))
    assert run is not None and run.state == FAILED
    assert run.error_code == "SyncRunInterrupted" and run.ended_at is not None


async def test_due_rules_have_a_queued_run_or_a_schedule_that_came_due(
    meta: MetadataStore,
) -> None:
    await _rule(meta, next_run=timedelta(hours=1))
    now = utcnow()
    async with meta.reading() as q:
        assert await rules(q).due_rules(now, 10) == []
        assert await rules(q).due_rules(now + timedelta(hours=2), 10) == [RULE]
    async with meta.writing() as q:
        await rules(q).create_run("2" * 32, RULE, "manual", QUEUED)
    async with meta.reading() as q:
        assert await rules(q).due_rules(now, 10) == [RULE]
        queued = await rules(q).queued_run(RULE)
    assert queued is not None and queued.id == "2" * 32
    async with meta.writing() as q:
        assert await rules(q).claim_rule(RULE, "a" * 32, timedelta(seconds=30))
    async with meta.reading() as q:
        assert await rules(q).due_rules(now, 10) == []  # held by a process


async def test_history_keeps_the_newest_finished_runs(meta: MetadataStore) -> None:
    await _rule(meta)
    for n in range(6):
        async with meta.writing() as q:
            await rules(q).create_run(f"{n:032d}", RULE, "manual", RUNNING)
            if n < 5:
                await rules(q).update_run(f"{n:032d}", report="[]", state=SUCCEEDED)
        await asyncio.sleep(0.002)
    async with meta.writing() as q:
        await rules(q).trim_runs(RULE, 3)
    async with meta.reading() as q:
        kept = [r.id for r in await rules(q).runs_of(RULE, 10)]
        last = await rules(q).last_runs([RULE])
    assert kept == [f"{n:032d}" for n in (5, 4, 3)]
    assert last[RULE].id == f"{5:032d}" and last[RULE].state == RUNNING


async def test_tag_records_are_replaced_forgotten_and_go_with_the_registry(
    meta: MetadataStore,
) -> None:
    async with meta.writing() as q:
        registry = await q.create_registry("second", "second.localhost")
        await rules(q).put_rule(RULE, registry.id, "mirror", "{}", b"sealed", None)
        await rules(q).record_tags(
            RULE,
            [SyncedTag("a", "1", "m/a", UP, LOCAL), SyncedTag("a", "2", "m/a", None, LOCAL)],
        )
        await rules(q).record_tags(RULE, [SyncedTag("a", "1", "m/a", LOCAL, UP)])
    async with meta.reading() as q:
        found = {(t.source_repository, t.tag): t for t in await rules(q).synced_tags(RULE)}
    assert found[("a", "1")].upstream_digest == LOCAL and found[("a", "1")].local_digest == UP
    assert found[("a", "2")].upstream_digest is None
    async with meta.writing() as q:
        await rules(q).forget_tags(RULE, [("a", "2")])
        await rules(q).create_run("3" * 32, RULE, "manual", QUEUED)
    async with meta.reading() as q:
        assert [t.tag for t in await rules(q).synced_tags(RULE)] == ["1"]
    async with meta.writing() as q:
        await q.delete_registry(registry.id)
    async with meta.reading() as q:
        assert await rules(q).rule_by_id(RULE) is None
        for table in (sync_runs, sync_tags):
            assert (await q.conn.execute(select(func.count()).select_from(table))).scalar() == 0
