"""A loop whose cancellation is swallowed still ends promptly at shutdown.

On Python 3.11, `asyncio.wait_for` returns the awaited result instead of raising
CancelledError when the result and the cancellation arrive in the same loop iteration. The
import claim loop waits for work that way: a wake-up at the moment of shutdown (a job queued,
the change feed's reset) left it running, and `Supervisor.stop` waited out its 30 s grace
("background loop imports did not end", seen as a 30 s teardown in the PostgreSQL tests).
Now `beat` raises CancelledError in a loop whose task has been cancelled, so the loop ends at
its next beat; the grace stays for loops truly stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from tests.support.app import make_settings, running_registry
from transship.api import ops
from transship.worker.loops import IMPORTS
from transship.worker.supervisor import Beat, LoopState, Supervisor

# Far above what a prompt stop takes, far below the grace a stuck loop costs.
PROMPT_SECONDS = 5.0


def _stuck_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "did not end" in r.getMessage()]


async def test_a_loop_that_swallows_its_cancellation_ends_at_its_next_beat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(stop_grace_seconds=30.0)
    wake = asyncio.Event()
    rounds = 0

    async def loop(beat: Beat) -> None:
        nonlocal rounds
        while True:
            rounds += 1
            beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 10)
            wake.clear()

    supervisor.add("waits", loop)
    supervisor.start()
    await supervisor.wait_for(lambda s: s["waits"].heartbeat_age_seconds is not None)
    await asyncio.sleep(0)  # into its wait_for
    # The wake-up and the cancellation in one iteration: wait_for returns the result.
    wake.set()
    async with asyncio.timeout(PROMPT_SECONDS):
        await supervisor.stop()
    assert _stuck_messages(caplog) == []
    assert supervisor.status()["waits"].state is LoopState.STOPPED
    assert rounds <= 2  # it ended at the beat of the round after the swallowed cancellation


async def test_a_beat_from_a_task_the_loop_started_does_not_end_that_task() -> None:
    supervisor = Supervisor(stop_grace_seconds=30.0)
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def helper(beat: Beat) -> None:
        try:
            beat()
        except asyncio.CancelledError:
            outcome.set_result("raised")
        else:
            outcome.set_result("beat")

    async def loop(beat: Beat) -> None:
        helper_task = asyncio.create_task(helper(beat))
        await helper_task
        await asyncio.Event().wait()

    supervisor.add("parent", loop)
    supervisor.start()
    try:
        assert await asyncio.wait_for(outcome, PROMPT_SECONDS) == "beat"
        assert supervisor.status()["parent"].state is LoopState.RUNNING
    finally:
        async with asyncio.timeout(PROMPT_SECONDS):
            await supervisor.stop()


async def test_the_import_claim_loop_stops_at_once_when_woken_at_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="transship.worker.supervisor")
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        loops: Supervisor = reg.server.app[ops.LOOPS]
        await loops.wait_for(lambda s: s[IMPORTS].heartbeat_age_seconds is not None)
        await asyncio.sleep(0)  # idle in its wait for work
        # A job queued (or a slot freed) just as the server shuts down.
        reg.services.imports.wake()
        async with asyncio.timeout(PROMPT_SECONDS):
            await loops.stop()
        assert _stuck_messages(caplog) == []
        assert loops.status()[IMPORTS].state is LoopState.STOPPED
