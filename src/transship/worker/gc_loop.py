"""Periodic garbage collection inside the server process."""

from __future__ import annotations

import asyncio
import logging

from transship.registry.gc import GarbageCollector

log = logging.getLogger(__name__)


async def run_periodically(gc: GarbageCollector, interval_seconds: float) -> None:
    """Run `gc` every `interval_seconds` until cancelled; a failed run is logged, not fatal."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await gc.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic garbage collection failed; will retry in %ss", interval_seconds)
