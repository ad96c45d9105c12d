"""Throttling of credential checks: failed checks counted per client address and per
principal over a sliding window, so that password guessing is refused before it costs a
(slow, scrypt) hash, and the refusal every credential check answers when the hashing pool is
saturated."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from transship.errors import TooManyRequests

# Keys tracked per kind (addresses, principals) at most; the least recently failed go first.
DEFAULT_MAX_KEYS = 10_000


class RetryLater(TooManyRequests):
    """A credential check refused for now, before any hashing; `retry_after` is the whole
    number of seconds (at least 1) after which the same request may succeed. The message
    names what was exceeded and never echoes a secret. The API answers 429 with
    `Retry-After` in the envelope of the surface."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(message, retry_after=retry_after, subject="credential check")


class TooManyFailures(RetryLater):
    """The client address or the principal has failed too many credential checks within the
    window."""


class _Windows:
    """Failure times per key over a sliding window, for at most `max_keys` keys. Only the
    last `limit` times of a key are kept: they alone decide whether the key is over its
    limit and when it frees."""

    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may fail once more; 0 when it is under its limit."""
        times = self._times.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._times[key]
            return 0.0
        if len(times) < self._limit:
            return 0.0
        return times[0] + self._window - now

    def record(self, key: str, now: float) -> None:
        times = self._times.get(key)
        if times is None:
            # Memory stays bounded whatever the number of addresses or names an attacker
            # uses: the key that failed longest ago is forgotten first.
            while len(self._times) >= self._max_keys:
                self._times.popitem(last=False)
            times = self._times[key] = deque(maxlen=self._limit)
        else:
            self._times.move_to_end(key)
        times.append(now)


class Attempt:
    """The handle of one credential check under way (see FailureThrottle.attempt)."""

    def __init__(self) -> None:
        self.failed_at_end = False

    def failed(self) -> None:
        self.failed_at_end = True


class FailureThrottle:
    """Sliding-window counts of failed credential checks per client address and per
    principal. A check that needs hashing runs inside `attempt` (or calls `check` before and
    `record_failure` after it fails). A success resets nothing: an attacker holding one
    valid credential could otherwise interleave it to keep guessing others.

    Principals are keyed case-insensitively; callers qualify the key with the namespace the
    name lives in (a tenant, a registry) so that equal names of different principals do not
    share a window. Not thread-safe: it is used from the event loop only."""

    def __init__(
        self,
        per_client: int = 20,
        per_principal: int = 50,
        window_seconds: float = 60.0,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_client < 1 or per_principal < 1 or window_seconds <= 0 or max_keys < 1:
            raise ValueError("throttle limits, window and key bound must be positive")
        self._clients = _Windows(per_client, window_seconds, max_keys)
        self._principals = _Windows(per_principal, window_seconds, max_keys)
        self._clock = clock

    def check(self, address: str | None, principal: str) -> None:
        """Pass when both the address (None: unknown, not limited) and the principal are
        under their limits. Raises TooManyFailures with the seconds until both are."""
        now = self._clock()
        client_wait = 0.0 if not address else self._clients.wait(address, now)
        principal_wait = self._principals.wait(principal.lower(), now)
        if client_wait <= 0 and principal_wait <= 0:
            return
        retry_after = math.ceil(max(client_wait, principal_wait))
        what = (
            "this client address"
            if client_wait >= principal_wait
            else "this user name or client id"
        )
        raise TooManyFailures(
            retry_after,
            f"too many failed sign-ins from {what}; retry after {retry_after} seconds",
        )

    @contextmanager
    def attempt(self, address: str | None, principal: str) -> Iterator[Attempt]:
        """A credential check: `check`, then the block, counted as a failure if it called
        `failed()`. An exception (the hashing pool is full, the request was cancelled)
        counts as neither success nor failure. Raises TooManyFailures (from `check`) before
        the block runs.

        Checks under way are not counted: a burst of concurrent sign-ins from one address
        (a CI system, a NAT) is legitimate. A burst of guesses may therefore overshoot the
        limit once, by at most the hashing pool's capacity (workers + waiting checks)."""
        self.check(address, principal)
        attempt = Attempt()
        yield attempt
        if attempt.failed_at_end:
            self.record_failure(address, principal)

    def record_failure(self, address: str | None, principal: str) -> None:
        now = self._clock()
        if address:
            self._clients.record(address, now)
        self._principals.record(principal.lower(), now)

    def tracked(self) -> tuple[int, int]:
        """(addresses, principals) currently tracked; for tests and metrics."""
        return len(self._clients), len(self._principals)
