"""The Supervisor restarts crashed loops with a bounded exponential backoff that a healthy
period resets, reports each loop's liveness, and stops cleanly. Time is a fake clock and a
fake sleep, so nothing here waits for real time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from transship.worker.supervisor import (
    Backoff,
    Beat,
    LoopState,
    LoopStatus,
    Supervisor,
    error_summary,
)


class FakeTime:
    """A monotonic clock that only moves when told (or when a backoff sleep "passes"), and a
    sleep that records its delays; with `gate` cleared, a sleep waits until the gate opens."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self.gate.wait()
        self.now += seconds


def crashing(
    times: int, reached: asyncio.Event, before_crash: Callable[[int], None] = lambda run: None
):
    """A loop that raises OSError on its first `times` runs, then sets `reached` and runs on."""
    runs = 0

    async def loop(beat: Beat) -> None:
        nonlocal runs
        runs += 1
        if runs <= times:
            before_crash(runs)
            raise OSError("connection reset by peer: postgresql://app:hunter2@db/transship")
        reached.set()
        await asyncio.Event().wait()

    return loop


def state_is(name: str, state: LoopState) -> Callable[[dict[str, LoopStatus]], bool]:
    return lambda statuses: statuses[name].state is state


async def test_a_crashed_loop_restarts_after_a_doubling_capped_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    supervisor = Supervisor(
        Backoff(initial_seconds=1, factor=2, max_seconds=5), clock=time.clock, sleep=time.sleep
    )
    reached = asyncio.Event()
    supervisor.add("imports", crashing(5, reached))
    supervisor.start()
    try:
        await asyncio.wait_for(reached.wait(), 10)
        assert time.delays == [1, 2, 4, 5, 5]
        status = supervisor.status()["imports"]
        assert status.state is LoopState.RUNNING
        assert status.restarts == 5
        assert status.last_error == "OSError"  # the type only: the message holds a password
        assert status.failing_seconds == 17  # the streak began at the first crash
        crashes = [r for r in caplog.records if r.name == "transship.worker.supervisor"]
        assert len(crashes) == 5 and all(r.levelno == logging.ERROR and r.exc_info for r in crashes)
        assert "imports" in crashes[0].getMessage()
    finally:
        await supervisor.stop()


async def test_states_are_observable_while_backing_off_and_after_the_restart() -> None:
    time = FakeTime()
    time.gate.clear()  # a backoff lasts until the test opens the gate
    supervisor = Supervisor(Backoff(initial_seconds=2), clock=time.clock, sleep=time.sleep)
    reached = asyncio.Event()
    supervisor.add("gc", crashing(1, reached))
    assert supervisor.status()["gc"].state is LoopState.STOPPED  # not started yet
    supervisor.start()
    try:
        await supervisor.wait_for(state_is("gc", LoopState.BACKING_OFF))
        status = supervisor.status()["gc"]
        assert (status.restarts, status.last_error, status.failing_seconds) == (0, "OSError", 0)
        time.now += 1.5
        assert supervisor.unready(1.0) == [supervisor.status()["gc"]]  # down for 1.5 s
        assert supervisor.unready(2.0) == []
        time.gate.set()
        await asyncio.wait_for(reached.wait(), 10)
        status = supervisor.status()["gc"]
        assert (status.state, status.restarts) == (LoopState.RUNNING, 1)
        assert supervisor.unready(0) == []  # running again: ready, whatever the bound
    finally:
        await supervisor.stop()
    assert supervisor.status()["gc"].state is LoopState.STOPPED


async def test_a_healthy_period_resets_the_backoff_and_ends_the_streak() -> None:
    time = FakeTime()
    backoff = Backoff(initial_seconds=1, factor=3, max_seconds=100, healthy_seconds=60)
    supervisor = Supervisor(backoff, clock=time.clock, sleep=time.sleep)
    reached = asyncio.Event()

    def before_crash(run: int) -> None:
        if run == 3:
            time.now += 60  # the third run was healthy for a minute before it crashed

    supervisor.add("keys", crashing(4, reached, before_crash))
    supervisor.start()
    try:
        await asyncio.wait_for(reached.wait(), 10)
        # 1, 3 (streak), then 1 again after the healthy run, then 3.
        assert time.delays == [1, 3, 1, 3]
        status = supervisor.status()["keys"]
        assert status.failing_seconds == 1 + 3  # the new streak began at the third crash
        time.now += 60
        assert supervisor.status()["keys"].failing_seconds is None  # healthy again
    finally:
        await supervisor.stop()


async def test_stop_cancels_cleanly_without_restart_or_error_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    supervisor = Supervisor(clock=time.clock, sleep=time.sleep)
    started, ended = asyncio.Event(), asyncio.Event()

    async def loop(beat: Beat) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    hook_ran: list[bool] = []

    async def hook() -> None:
        hook_ran.append(ended.is_set())  # after the loops are cancelled

    supervisor.add("imports", loop)
    supervisor.on_stop(hook)
    supervisor.start()
    await asyncio.wait_for(started.wait(), 10)
    await supervisor.stop()
    status = supervisor.status()["imports"]
    assert (status.state, status.restarts, status.last_error) == (LoopState.STOPPED, 0, None)
    assert hook_ran == [True]
    assert time.delays == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_loop_stuck_past_its_cancellation_does_not_hold_up_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(stop_grace_seconds=2.0)
    started, unstick = asyncio.Event(), asyncio.Event()

    async def stuck(beat: Beat) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            # Cleanup that does not end (a driver call that never answers).
            await asyncio.shield(unstick.wait())

    async def prompt(beat: Beat) -> None:
        await asyncio.Event().wait()

    hook_ran: list[bool] = []

    async def hook() -> None:
        hook_ran.append(True)

    supervisor.add("change-feed", stuck)
    supervisor.add("imports", prompt)
    supervisor.on_stop(hook)
    supervisor.start()
    await asyncio.wait_for(started.wait(), 10)
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(supervisor.stop(), 10)
    assert hook_ran == [True]  # the hand-back of import jobs still happens
    stuck_logs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(stuck_logs) == 1 and "change-feed" in stuck_logs[0], stuck_logs
    unstick.set()  # let the stuck task end before the test's loop closes
    await asyncio.sleep(0.05)


async def test_a_cancellation_the_loop_turns_into_another_error_ends_it_without_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    time.gate.clear()  # a backoff, if one began, would never end: stop() would give up
    supervisor = Supervisor(clock=time.clock, sleep=time.sleep, stop_grace_seconds=5.0)
    started = asyncio.Event()
    runs: list[int] = []

    async def loop(beat: Beat) -> None:
        runs.append(1)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # What SQLAlchemy's asyncpg adapter raises when a query is interrupted.
            raise RuntimeError("greenlet_spawn has not been called") from None

    supervisor.add("imports", loop)
    supervisor.start()
    await asyncio.wait_for(started.wait(), 10)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(supervisor.stop(), 2)  # at once, not after the grace
    status = supervisor.status()["imports"]
    assert (status.state, status.restarts, status.last_error) == (LoopState.STOPPED, 0, None)
    assert runs == [1] and time.delays == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_stop_during_a_backoff_does_not_restart() -> None:
    time = FakeTime()
    time.gate.clear()
    supervisor = Supervisor(clock=time.clock, sleep=time.sleep)
    runs: list[int] = []

    async def loop(beat: Beat) -> None:
        runs.append(1)
        raise OSError("down")

    supervisor.add("imports", loop)
    supervisor.start()
    await supervisor.wait_for(state_is("imports", LoopState.BACKING_OFF))
    await supervisor.stop()
    assert runs == [1]
    assert supervisor.status()["imports"].state is LoopState.STOPPED


async def test_a_loop_that_returns_or_raises_cancelled_by_itself_is_restarted() -> None:
    time = FakeTime()
    supervisor = Supervisor(clock=time.clock, sleep=time.sleep)
    reached = asyncio.Event()
    runs = 0

    async def loop(beat: Beat) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            return
        if runs == 2:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()
            await future  # CancelledError, though nobody cancelled the loop's task
        reached.set()
        await asyncio.Event().wait()

    supervisor.add("imports", loop)
    supervisor.start()
    try:
        await asyncio.wait_for(reached.wait(), 10)
        status = supervisor.status()["imports"]
        assert status.restarts == 2 and status.last_error == "asyncio.exceptions.CancelledError"
    finally:
        await supervisor.stop()


async def test_heartbeats_are_recorded_per_loop() -> None:
    time = FakeTime()
    supervisor = Supervisor(clock=time.clock, sleep=time.sleep)
    go = asyncio.Event()

    async def beating(beat: Beat) -> None:
        await go.wait()
        beat()
        await asyncio.Event().wait()

    async def silent(beat: Beat) -> None:
        await asyncio.Event().wait()

    supervisor.add("beating", beating)
    supervisor.add("silent", silent)
    supervisor.start()
    try:
        assert list(supervisor.status()) == ["beating", "silent"]
        go.set()
        await supervisor.wait_for(lambda s: s["beating"].heartbeat_age_seconds is not None)
        time.now += 2.5
        statuses = supervisor.status()
        assert statuses["beating"].heartbeat_age_seconds == 2.5
        assert statuses["silent"].heartbeat_age_seconds is None
    finally:
        await supervisor.stop()


def test_names_are_unique_and_fixed_before_start() -> None:
    supervisor = Supervisor()

    async def loop(beat: Beat) -> None:
        await asyncio.Event().wait()

    supervisor.add("a", loop)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.add("a", loop)


def test_backoff_delays_and_error_summaries() -> None:
    backoff = Backoff(initial_seconds=0.5, factor=2, max_seconds=30)
    assert [backoff.delay(n) for n in (1, 2, 3, 7, 8, 10_000)] == [0.5, 1, 2, 30, 30, 30]

    class SecretError(Exception):
        pass

    assert error_summary(OSError("password=x")) == "OSError"
    assert error_summary(SecretError("password=x")).endswith("SecretError")
    assert "password" not in error_summary(SecretError("password=x"))
