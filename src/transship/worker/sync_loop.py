"""This process's share of scheduled sync: one loop that finds due rules (a queued run, or
a schedule that came due), claims each (one process wins a rule), and runs it as a task, at
most `SyncSettings.max_running` at once. See `transship.cache.sync`."""

from __future__ import annotations

import asyncio
import logging

from transship.cache.sync import SyncService
from transship.worker.supervisor import Beat

log = logging.getLogger(__name__)


class SyncWorker:
    """Claims and runs sync rules in this process."""

    def __init__(self, sync: SyncService) -> None:
        self._sync = sync
        self._settings = sync.settings
        self._running: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> frozenset[str]:
        """The ids of the rules this process runs now."""
        return frozenset(self._running)

    async def run_forever(self, beat: Beat) -> None:
        """Claim and start due rules until cancelled; beats after each round. Raises what the
        database raises (the supervisor restarts the loop; running rules go on)."""
        while True:
            free = self._settings.max_running - len(self._running)
            if free > 0:
                for rule_id in await self._sync.due(free + len(self._running)):
                    if len(self._running) >= self._settings.max_running:
                        break
                    if rule_id in self._running or not await self._sync.claim(rule_id):
                        continue
                    self._start(rule_id)
            beat()
            await self._sync.wait_for_work(self._settings.poll_seconds)

    async def close(self) -> None:
        """Shutdown: stop every running rule (each marks its run interrupted and gives its
        lease back)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, rule_id: str) -> None:
        task = asyncio.create_task(self._run(rule_id), name=f"sync:{rule_id}")
        self._running[rule_id] = task

    async def _run(self, rule_id: str) -> None:
        try:
            await self._sync.execute(rule_id)
        except Exception:
            log.exception(
                "sync rule %s crashed; its lease expires and the rule runs again", rule_id
            )
        finally:
            self._running.pop(rule_id, None)
            self._sync.wake()  # a slot is free
