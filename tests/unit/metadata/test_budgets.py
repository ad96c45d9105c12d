"""Upstream rate-limit budgets in the database (SQLite and PostgreSQL): one row per
(host, user), written by single statements; pulls reserved concurrently never take a budget
below zero, a 429's block holds until it ends, a window that ended gives the limit back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from transship.imports.budgets import UpstreamBudgets
from transship.imports.ratelimit import RateObservation
from transship.metadata.budgets import BudgetQueries
from transship.metadata.queries import MetadataStore
from transship.metadata.records import Budget, BudgetKey

T0 = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
KEY = BudgetKey("hub.example", "alice")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_an_unknown_budget_grants_and_counts_pulls(meta: MetadataStore) -> None:
    ledger = UpstreamBudgets(meta, clock=Clock())
    assert await ledger.reserve(KEY) is None
    assert await ledger.reserve(KEY) is None
    (budget,) = await ledger.list()
    assert budget.key == KEY
    assert budget.pulls == 2
    assert budget.remaining is None and budget.limit is None


async def test_announced_counts_are_spent_then_waited_for(meta: MetadataStore) -> None:
    clock = Clock()
    ledger = UpstreamBudgets(meta, clock=clock)
    await ledger.observe(KEY, RateObservation(limit=10, remaining=2, window_seconds=600))
    assert await ledger.reserve(KEY) is None
    assert await ledger.reserve(KEY) is None
    # Spent: the next pull waits for the end of the window announced.
    assert await ledger.reserve(KEY) == T0 + timedelta(seconds=600)
    (budget,) = await ledger.list()
    assert (budget.remaining, budget.pulls) == (0, 2)
    # After the window the limit is back (counted down by the pull just taken).
    clock.now = T0 + timedelta(seconds=601)
    assert await ledger.reserve(KEY) is None
    (budget,) = await ledger.list()
    assert (budget.remaining, budget.pulls, budget.resets_at) == (9, 3, None)


async def test_a_count_spent_after_a_window_ended_is_not_a_wait_and_is_counted(
    meta: MetadataStore,
) -> None:
    # After a window ends the count starts again from the limit with no window known until
    # the upstream answers; spending it all then leaves the decision to the upstream (no
    # wait), but each pull is still counted: the gate must never let a pull go uncounted.
    clock = Clock()
    ledger = UpstreamBudgets(meta, clock=clock)
    await ledger.observe(KEY, RateObservation(limit=2, remaining=0, window_seconds=60))
    clock.now = T0 + timedelta(seconds=61)
    assert await ledger.reserve(KEY) is None  # a new window: 1 left, its end unknown
    assert await ledger.reserve(KEY) is None  # 0 left
    assert await ledger.reserve(KEY) is None  # spent, no window known: the upstream decides
    (budget,) = await ledger.list()
    assert (budget.remaining, budget.resets_at, budget.pulls) == (0, None, 3)


async def test_the_upstream_corrects_the_count(meta: MetadataStore) -> None:
    ledger = UpstreamBudgets(meta, clock=Clock())
    await ledger.observe(KEY, RateObservation(limit=10, remaining=5, window_seconds=600))
    await ledger.reserve(KEY)
    await ledger.observe(KEY, RateObservation(limit=10, remaining=1, window_seconds=600))
    (budget,) = await ledger.list()
    assert budget.remaining == 1  # another client spent some: the upstream's word wins
    # An answer without headers changes nothing.
    await ledger.observe(KEY, RateObservation())
    (budget,) = await ledger.list()
    assert budget.remaining == 1


async def test_a_late_answer_does_not_give_back_pulls_in_flight(meta: MetadataStore) -> None:
    clock = Clock()
    ledger = UpstreamBudgets(meta, clock=clock)
    await ledger.observe(KEY, RateObservation(limit=10, remaining=3, window_seconds=600))
    await ledger.reserve(KEY)
    await ledger.reserve(KEY)
    # The answer to the first pull (3 - 1 left) arrives while the second is in flight.
    await ledger.observe(KEY, RateObservation(limit=10, remaining=2, window_seconds=600))
    (budget,) = await ledger.list()
    assert budget.remaining == 1
    # Once the window has ended, the upstream's count wins again.
    clock.now = T0 + timedelta(seconds=601)
    await ledger.observe(KEY, RateObservation(limit=10, remaining=9, window_seconds=600))
    (budget,) = await ledger.list()
    assert budget.remaining == 9


async def test_a_429_blocks_until_its_retry_after(meta: MetadataStore) -> None:
    clock = Clock()
    ledger = UpstreamBudgets(meta, clock=clock)
    await ledger.observe(KEY, RateObservation(limit=10, remaining=5, window_seconds=600))
    blocked = await ledger.observe(KEY, RateObservation(retry_after_seconds=30))
    assert blocked == T0 + timedelta(seconds=30)
    assert await ledger.reserve(KEY) == blocked
    assert await ledger.blocked_until(KEY) == blocked
    # A shorter block later never shortens the one in force.
    clock.now = T0 + timedelta(seconds=10)
    await ledger.observe(KEY, RateObservation(retry_after_seconds=1))
    assert await ledger.reserve(KEY) == blocked
    clock.now = T0 + timedelta(seconds=31)
    assert await ledger.blocked_until(KEY) is None
    assert await ledger.reserve(KEY) is None
    (budget,) = await ledger.list()
    assert budget.remaining == 4  # the remaining count survived the block


async def test_budgets_are_per_host_and_user(meta: MetadataStore) -> None:
    ledger = UpstreamBudgets(meta, clock=Clock())
    other_user = BudgetKey("hub.example", "bob")
    anonymous = BudgetKey("hub.example")
    other_host = BudgetKey("quay.example", "alice")
    await ledger.observe(KEY, RateObservation(limit=1, remaining=0, window_seconds=60))
    for key in (other_user, anonymous, other_host):
        assert await ledger.reserve(key) is None
    assert await ledger.reserve(KEY) is not None
    found = {b.key: b.pulls for b in await ledger.list()}
    assert found == {KEY: 0, other_user: 1, anonymous: 1, other_host: 1}


async def test_concurrent_reservations_never_overspend(meta: MetadataStore) -> None:
    ledger = UpstreamBudgets(meta, clock=Clock())
    await ledger.observe(KEY, RateObservation(limit=100, remaining=7, window_seconds=600))
    answers = await asyncio.gather(*(ledger.reserve(KEY) for _ in range(20)))
    assert sum(1 for a in answers if a is None) == 7
    (budget,) = await ledger.list()
    assert (budget.remaining, budget.pulls) == (0, 7)


async def test_a_row_created_after_a_reservation_looked_still_counts_its_pull(
    meta: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving behind a lost pull on PostgreSQL: one reservation's update finds no
    row; before it goes on, another creates the row, takes its pull and commits. The first
    must then take a counted pull too, not grant one from what it reads."""
    if meta.db.writes_in_thread:
        pytest.skip("SQLite runs each reservation whole on its write thread: no interleaving")
    ledger = UpstreamBudgets(meta, clock=Clock())
    other = UpstreamBudgets(meta, clock=Clock())
    original = BudgetQueries.reserve_pull
    raced = False

    async def reserve_then_let_another_in(
        self: BudgetQueries, key: BudgetKey, now: datetime
    ) -> Budget | None:
        nonlocal raced
        taken = await original(self, key, now)
        if taken is None and not raced:
            raced = True
            assert await other.reserve(key) is None  # on its own connection, committed
        return taken

    monkeypatch.setattr(BudgetQueries, "reserve_pull", reserve_then_let_another_in)
    assert await ledger.reserve(KEY) is None
    (budget,) = await ledger.list()
    assert raced and budget.pulls == 2


async def test_a_first_reservation_race_creates_one_row(meta: MetadataStore) -> None:
    ledger = UpstreamBudgets(meta, clock=Clock())
    answers = await asyncio.gather(*(ledger.reserve(KEY) for _ in range(10)))
    assert answers == [None] * 10
    (budget,) = await ledger.list()
    assert budget.pulls == 10
