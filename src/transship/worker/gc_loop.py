"""Periodic garbage collection inside the server process (it also expires idle upload
sessions: `GarbageCollector.run`)."""

from __future__ import annotations

import asyncio

from transship.registry.gc import GarbageCollector
from transship.worker.supervisor import Beat


async def run_periodically(gc: GarbageCollector, interval_seconds: float, beat: Beat) -> None:
    """Run `gc` every `interval_seconds` until cancelled; beats after each run. Raises what a
    run raises (the supervisor logs it and restarts the loop, which waits a full interval
    again before the next run)."""
    while True:
        await asyncio.sleep(interval_seconds)
        await gc.run()
        beat()
