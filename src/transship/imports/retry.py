"""How often and how long to wait before asking an upstream again.

`RetryPolicy.delay` is a pure function of the attempt number and the upstream's
`Retry-After` header (given the policy's injected clock and random source): exponential
back-off from `base_delay`, capped at `max_delay`, minus up to `jitter` of itself; a valid
`Retry-After` (delta-seconds or an HTTP-date) replaces the back-off, capped at
`max_retry_after`. `RetryPolicy.pause` computes the delay and sleeps with the injected
`sleep`, so tests record delays instead of waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait according to a `Retry-After` header, or None when absent or unusable.

    Accepts delta-seconds (`"120"`) and an HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`,
    relative to `now`, a POSIX timestamp). A date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP-dates are always GMT
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry budget and back-off for upstream requests.

    `attempts`: how many tries in all (1 = no retry). The back-off after failed attempt `n`
    (1-based) is `min(max_delay, base_delay * 2**(n-1))`, reduced by a random fraction of at
    most `jitter` (0 ≤ jitter ≤ 1). `max_retry_after`: the longest `Retry-After` honoured;
    longer requests are shortened to it.

    `sleep`, `clock` (POSIX time, for HTTP-dates) and `random` (uniform in [0, 1)) are
    injectable; they take no part in equality.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2
    max_retry_after: float = 120.0
    sleep: Callable[[float], Awaitable[None]] = field(
        default=_asyncio_sleep, compare=False, repr=False
    )
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")

    def backoff(self, attempt: int) -> float:
        """The back-off after failed attempt `attempt` (1-based), before jitter."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        # Cap the exponent: 2**1000 is a float overflow away from an exception.
        return min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 60))

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based).

        A usable `retry_after` header value wins over the back-off (capped at
        `max_retry_after`); otherwise the jittered exponential back-off.
        """
        honoured = parse_retry_after(retry_after, self.clock())
        if honoured is not None:
            return min(honoured, self.max_retry_after)
        base = self.backoff(attempt)
        return base * (1.0 - self.jitter * self.random())

    def gives_up_after(self, attempt: int) -> bool:
        """True when attempt `attempt` (1-based) was the last one allowed."""
        return attempt >= self.attempts

    async def pause(self, attempt: int, retry_after: str | None = None) -> float:
        """Sleep `delay(attempt, retry_after)` with the injected sleep; return the delay."""
        seconds = self.delay(attempt, retry_after)
        await self.sleep(seconds)
        return seconds
