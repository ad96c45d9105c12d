"""One rate-limit budget per (upstream host, credential user), shared by every import and
process of the service through the database, and the gate an upstream client passes
before each pull.

`UpstreamBudgets` is the ledger: it reserves a pull (one statement: counts the budget down,
or refuses while a 429 blocks it or it is spent until its window ends) and records what
upstream answers announce (one upsert). `BudgetGate` is one client's view of one budget:
`admit` waits (asleep, the loop free, cancellable) until a pull is allowed, telling the
job it waits and until when, and fails with `UpstreamRateLimited` when the wait would be
longer than the configured maximum.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from transship.imports.errors import ImportFailure, Step
from transship.imports.ratelimit import RateObservation, block_until, parse_rate_limit, window_end
from transship.metadata.queries import MetadataStore, Transaction
from transship.metadata.records import Budget, BudgetKey
from transship.metadata.scope import utcnow

log = logging.getLogger(__name__)

UPSTREAM_RATE_LIMITED = "UpstreamRateLimited"

# Told when the job starts waiting (until when, for which host) and when it stops (None).
WaitReporter = Callable[[datetime | None, str], Awaitable[None]]


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class BudgetLedger(Protocol):
    async def reserve(self, key: BudgetKey) -> datetime | None:
        """Take one pull from `key`'s budget: None when granted, else until when pulls
        must wait (the budget unchanged). Raises what the database raises."""
        ...

    async def observe(self, key: BudgetKey, observation: RateObservation) -> datetime | None:
        """Record what an upstream answer announced; returns until when it blocks pulls
        (a 429's Retry-After), if it does."""
        ...

    async def blocked_until(self, key: BudgetKey) -> datetime | None:
        """Until when pulls must wait now, without taking one; None when they may go."""
        ...


class UpstreamBudgets:
    """The BudgetLedger of the running service, over the metadata database. `clock` gives
    the current time (tests inject it)."""

    def __init__(self, meta: MetadataStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._meta = meta
        self._clock = clock

    async def reserve(self, key: BudgetKey) -> datetime | None:
        now = self._clock()

        async def work(q: Transaction) -> datetime | None:
            if await q.budgets.reserve_pull(key, now) is not None:
                return None
            # Refused, or no row yet. Another reservation may have created the row since
            # this one's update looked (PostgreSQL: each statement sees what committed
            # before it began), so create it if need be and take the pull again, never
            # grant from a read: that would be a pull the budget does not count.
            await q.budgets.ensure(key, now)
            if await q.budgets.reserve_pull(key, now) is not None:
                return None
            known = await q.budgets.budget(key)
            return None if known is None else known.wait_until(now)

        return await self._meta.write_at_once(work)

    async def observe(self, key: BudgetKey, observation: RateObservation) -> datetime | None:
        if observation.empty:
            return None
        now = self._clock()
        blocked = block_until(observation, now)
        await self._meta.write_at_once(
            lambda q: q.budgets.observe(
                key,
                now,
                limit=observation.limit,
                remaining=observation.remaining,
                window_seconds=observation.window_seconds,
                resets_at=window_end(observation, now),
                blocked_until=blocked,
            )
        )
        return blocked

    async def blocked_until(self, key: BudgetKey) -> datetime | None:
        async with self._meta.reading() as q:
            known = await q.budgets.budget(key)
        return None if known is None else known.wait_until(self._clock())

    async def list(self) -> list[Budget]:
        """Every budget, by host then user."""
        async with self._meta.reading() as q:
            return await q.budgets.budgets()

    def now(self) -> datetime:
        return self._clock()


class BudgetGate:
    """One upstream client's way through `key`'s budget.

    `max_wait`: the longest one wait may last (seconds); a budget that would keep a pull
    waiting longer fails it with `UpstreamRateLimited`. `recheck`: while waiting, how
    often the ledger is read again (another process may learn sooner that the budget is
    back). `on_wait` is told when the import starts and stops waiting. `wait_limit`
    names what set `max_wait`, for the failure's message. `clock`, `sleep` and `posix`
    (for HTTP-date headers) are injectable."""

    def __init__(
        self,
        ledger: BudgetLedger,
        key: BudgetKey,
        *,
        max_wait: float,
        recheck: float = 5.0,
        on_wait: WaitReporter | None = None,
        wait_limit: str = "setting upstream_rate_limit_max_wait",
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = _asyncio_sleep,
        posix: Callable[[], float] = time.time,
    ) -> None:
        if max_wait < 0:
            raise ValueError("max_wait must not be negative")
        if recheck <= 0:
            raise ValueError("recheck must be positive")
        self.key = key
        self._ledger = ledger
        self._max_wait = max_wait
        self._recheck = recheck
        self._on_wait = on_wait
        self._wait_limit = wait_limit
        self._clock = clock
        self._sleep = sleep
        self._posix = posix
        # Shared by the client's concurrent requests: the job waits while any of them does.
        self._waiting: datetime | None = None
        self._waiters = 0

    def now(self) -> datetime:
        return self._clock()

    async def admit(self, what: str, *, since: datetime | None = None) -> None:
        """Return once a pull for `what` is reserved; wait (and show it) while the budget
        refuses. `since`: when the request began waiting, if an earlier round of it did (a
        429): the maximum wait counts from then. Raises ImportFailure UpstreamRateLimited
        when the budget would keep it waiting longer than `max_wait`."""
        await self._wait(what, self._ledger.reserve, since)

    async def wait_clear(self, what: str, *, since: datetime | None = None) -> None:
        """Return once no 429 or spent budget blocks requests (taking no pull); raises as
        `admit` does."""
        await self._wait(what, self._ledger.blocked_until, since)

    async def observe(self, headers: Mapping[str, str], status: int) -> datetime | None:
        """Record an upstream answer's rate-limit headers; until when a 429 blocks pulls
        (later than now), if it does. Never fails the import: a ledger that cannot be
        written is logged and ignored (the upstream still decides)."""
        observation = parse_rate_limit(headers, status, self._posix(), host=self.key.host)
        try:
            blocked = await self._ledger.observe(self.key, observation)
        except Exception:
            log.warning(
                "could not record the rate-limit budget of %s", self.key.host, exc_info=True
            )
            return None
        if blocked is not None and blocked > self._clock():
            return blocked
        if status == 429 and observation.remaining == 0 and observation.window_seconds:
            return window_end(observation, self._clock())
        return None

    async def _wait(
        self,
        what: str,
        ask: Callable[[BudgetKey], Awaitable[datetime | None]],
        since: datetime | None,
    ) -> None:
        started = since or self._clock()
        self._waiters += 1
        try:
            while True:
                until = await ask(self.key)
                if until is None:
                    return
                now = self._clock()
                if until <= now:
                    # The window ended between the ledger's answer and now: ask again, since
                    # only the ledger's yes reserves (and counts) the pull.
                    continue
                if until - started > timedelta(seconds=self._max_wait):
                    raise ImportFailure(
                        UPSTREAM_RATE_LIMITED,
                        f"the rate limit of {self.key.host} allows no pull of {what} before "
                        f"{until.isoformat(timespec='seconds')}, beyond the longest wait "
                        f"({self._max_wait:g} s, {self._wait_limit})",
                        step=Step.PLAN,
                        obj=self.key.host,
                        upstream_status=429,
                    )
                if until != self._waiting:
                    self._waiting = until
                    log.info(
                        "waiting for the rate limit of %s until %s (%s)",
                        self.key.host,
                        until.isoformat(timespec="seconds"),
                        what,
                    )
                    await self._report(until)
                await self._sleep(min((until - now).total_seconds(), self._recheck))
        finally:
            self._waiters -= 1
            if self._waiters == 0 and self._waiting is not None:
                self._waiting = None
                await asyncio.shield(self._report(None))

    async def _report(self, until: datetime | None) -> None:
        if self._on_wait is None:
            return
        try:
            await self._on_wait(until, self.key.host)
        except Exception:
            log.warning("could not record a rate-limit wait", exc_info=True)
