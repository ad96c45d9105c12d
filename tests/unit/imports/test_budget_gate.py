"""The gate an upstream client passes before each pull: it waits (asleep, cancellable)
while the shared budget refuses, tells the job when it starts and stops waiting, and fails
with UpstreamRateLimited when the wait would exceed the maximum."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from multidict import CIMultiDict

from transship.imports.budgets import UPSTREAM_RATE_LIMITED, BudgetGate, UpstreamBudgets
from transship.imports.errors import ImportFailure
from transship.imports.ratelimit import RateObservation
from transship.metadata.queries import MetadataStore
from transship.metadata.records import BudgetKey

T0 = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
KEY = BudgetKey("hub.example", "alice")


class Time:
    """A clock that sleeping moves forward (no real waiting)."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class Waits:
    def __init__(self) -> None:
        self.seen: list[tuple[datetime | None, str]] = []

    async def __call__(self, until: datetime | None, host: str) -> None:
        self.seen.append((until, host))


def _gate(
    meta: MetadataStore, time: Time, waits: Waits, *, max_wait: float = 3600.0
) -> tuple[UpstreamBudgets, BudgetGate]:
    ledger = UpstreamBudgets(meta, clock=time.clock)
    gate = BudgetGate(
        ledger,
        KEY,
        max_wait=max_wait,
        recheck=10.0,
        on_wait=waits,
        clock=time.clock,
        sleep=time.sleep,
        posix=lambda: time.now.timestamp(),
    )
    return ledger, gate


async def test_a_spent_budget_is_waited_out_and_the_wait_is_shown(meta: MetadataStore) -> None:
    time, waits = Time(), Waits()
    ledger, gate = _gate(meta, time, waits)
    await ledger.observe(KEY, RateObservation(limit=5, remaining=0, window_seconds=25))
    await gate.admit("manifest x")
    assert time.now >= T0 + timedelta(seconds=25)
    assert time.slept == [10.0, 10.0, 5.0]  # re-read every `recheck`, then to the end
    assert waits.seen == [(T0 + timedelta(seconds=25), "hub.example"), (None, "hub.example")]
    (budget,) = await ledger.list()
    assert (budget.pulls, budget.remaining) == (1, 4)


async def test_a_pull_with_budget_left_does_not_wait(meta: MetadataStore) -> None:
    time, waits = Time(), Waits()
    _, gate = _gate(meta, time, waits)
    await gate.admit("manifest x")
    assert time.slept == [] and waits.seen == []


async def test_a_wait_beyond_the_maximum_fails_clearly(meta: MetadataStore) -> None:
    time, waits = Time(), Waits()
    ledger, gate = _gate(meta, time, waits, max_wait=60)
    await ledger.observe(KEY, RateObservation(limit=5, remaining=0, window_seconds=21600))
    with pytest.raises(ImportFailure) as caught:
        await gate.admit("manifest library/x:1")
    assert caught.value.code == UPSTREAM_RATE_LIMITED
    assert "hub.example" in caught.value.message
    assert "upstream_rate_limit_max_wait" in caught.value.message
    assert time.slept == []


async def test_the_maximum_counts_from_the_first_429_of_a_request(meta: MetadataStore) -> None:
    time, waits = Time(), Waits()
    ledger, gate = _gate(meta, time, waits, max_wait=60)
    await ledger.observe(KEY, RateObservation(retry_after_seconds=30))
    with pytest.raises(ImportFailure):
        await gate.admit("manifest x", since=T0 - timedelta(seconds=40))


async def test_observe_reads_headers_and_reports_a_429_block(meta: MetadataStore) -> None:
    time, waits = Time(), Waits()
    ledger, gate = _gate(meta, time, waits)
    headers = CIMultiDict({"ratelimit-limit": "10;w=60", "ratelimit-remaining": "3;w=60"})
    assert await gate.observe(headers, 200) is None
    (budget,) = await ledger.list()
    assert (budget.limit, budget.remaining, budget.window_seconds) == (10, 3, 60)
    blocked = await gate.observe(CIMultiDict({"Retry-After": "12"}), 429)
    assert blocked == T0 + timedelta(seconds=12)
    # A 429 that says nothing usable is not a rate-limit block: the retry policy decides.
    time.now += timedelta(seconds=13)
    assert await gate.observe(CIMultiDict(), 429) is None


async def test_cancel_during_a_wait_ends_it(meta: MetadataStore) -> None:
    waits = Waits()
    ledger = UpstreamBudgets(meta)
    gate = BudgetGate(ledger, KEY, max_wait=3600, recheck=0.05, on_wait=waits)
    await ledger.observe(KEY, RateObservation(limit=5, remaining=0, window_seconds=600))
    task = asyncio.create_task(gate.admit("manifest x"))
    while not waits.seen:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [until is None for until, _ in waits.seen] == [False, True]


async def test_concurrent_waiters_show_one_wait(meta: MetadataStore) -> None:
    time, waits = Time(), Waits()
    ledger, gate = _gate(meta, time, waits)
    await ledger.observe(KEY, RateObservation(limit=8, remaining=0, window_seconds=5))
    await asyncio.gather(*(gate.admit(f"manifest {i}") for i in range(4)))
    assert waits.seen[0] == (T0 + timedelta(seconds=5), "hub.example")
    assert waits.seen[-1] == (None, "hub.example")
    assert [u for u, _ in waits.seen].count(None) == 1


async def test_a_window_that_ends_right_after_a_refusal_is_asked_again_and_counted(
    meta: MetadataStore,
) -> None:
    """The ledger refuses until the window's end, and by the time the gate reads its clock
    the window has ended: the gate must take the pull from the ledger again (which counts
    it), not let it go uncounted on the strength of the refusal's time."""
    time, waits = Time(), Waits()
    real = UpstreamBudgets(meta, clock=time.clock)
    await real.observe(KEY, RateObservation(limit=5, remaining=0, window_seconds=1))
    asked: list[datetime | None] = []

    class LateClock:
        async def reserve(self, key: BudgetKey) -> datetime | None:
            answer = await real.reserve(key)
            asked.append(answer)
            time.now += timedelta(seconds=2)  # the answer's moment has passed meanwhile
            return answer

        async def observe(self, key: BudgetKey, observation: RateObservation) -> None:
            raise AssertionError("not used")

        async def blocked_until(self, key: BudgetKey) -> datetime | None:
            raise AssertionError("not used")

    gate = BudgetGate(
        LateClock(), KEY, max_wait=60, clock=time.clock, sleep=time.sleep, on_wait=waits
    )
    await gate.admit("manifest x")
    assert asked == [T0 + timedelta(seconds=1), None]  # refused, then granted
    (budget,) = await real.list()
    assert budget.pulls == 1 and time.slept == []
