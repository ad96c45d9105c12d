"""Upstream rate limits: what an upstream's answers say about its pull budget, and the
arithmetic of one budget. Pure: no I/O, times are given.

Docker Hub (and registries copying it) announce the budget of the caller (an account, or an
anonymous address) on every manifest answer:

    ratelimit-limit: 100;w=21600
    ratelimit-remaining: 76;w=21600

(the IETF draft's `limit;w=<window seconds>` form; a bare number has no window, and a list
of policies `100, 100;w=21600` counts by its first one), and answer 429 TOOMANYREQUESTS
with `Retry-After` once it is spent. `parse_rate_limit` reads those headers; values it
cannot read are ignored (with a log line), never fatal: a budget is advice, the upstream
decides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from transship.imports.retry import parse_retry_after

log = logging.getLogger(__name__)

LIMIT_HEADER = "ratelimit-limit"
REMAINING_HEADER = "ratelimit-remaining"
RETRY_AFTER_HEADER = "retry-after"

# Bounded: header values are attacker-controlled. ASCII digits only (`\d` would take any
# script's digits, which int() then reads).
_COUNT = re.compile(r"[0-9]{1,12}")
_PARAMETER = re.compile(r"([A-Za-z0-9_-]{1,32})\s*=\s*(.{0,128})")


@dataclass(frozen=True, slots=True)
class RateObservation:
    """What one upstream answer said. `limit`/`remaining`/`window_seconds` are None when
    not announced (or unreadable); `retry_after_seconds` only comes with a 429 (or 503)."""

    limit: int | None = None
    remaining: int | None = None
    window_seconds: int | None = None
    retry_after_seconds: float | None = None

    @property
    def empty(self) -> bool:
        return self.limit is None and self.remaining is None and self.retry_after_seconds is None


def _policy(name: str, value: str | None, host: str) -> tuple[int | None, int | None]:
    """(count, window seconds) of the first policy of a header value, or (None, None).

    A policy is `<count>` then `;name=value` parameters: `w` is the window in seconds,
    others (Docker Hub's `source=…`) are ignored."""
    if value is None:
        return None, None
    count, *parameters = (part.strip() for part in value.split(",", 1)[0].split(";"))
    window: int | None = None
    malformed = _COUNT.fullmatch(count) is None
    for parameter in parameters:
        match = _PARAMETER.fullmatch(parameter)
        if match is None:
            malformed = True
        elif match.group(1).lower() == "w":
            seconds = match.group(2).strip()
            if _COUNT.fullmatch(seconds) is None:
                malformed = True
            else:
                window = int(seconds) or None  # a zero window is no window
    if malformed:
        log.info("ignoring a malformed %s header from %s: %r", name, host, value[:80])
        return None, None
    return int(count), window


def parse_rate_limit(
    headers: Mapping[str, str], status: int, now: float, *, host: str = "?"
) -> RateObservation:
    """The rate-limit facts in an upstream answer's `headers` (case-insensitive mapping).

    `status`: the answer's HTTP status; `Retry-After` counts only on a 429 (a 503's is a
    server's back-off, handled by the retry policy). `now`: POSIX seconds, for an HTTP-date
    Retry-After. `host` names the upstream in the log line of a malformed header. Never
    raises."""
    limit, limit_window = _policy(LIMIT_HEADER, headers.get(LIMIT_HEADER), host)
    remaining, remaining_window = _policy(REMAINING_HEADER, headers.get(REMAINING_HEADER), host)
    retry_after: float | None = None
    if status == 429:
        raw = headers.get(RETRY_AFTER_HEADER)
        retry_after = parse_retry_after(raw, now)
        if raw is not None and retry_after is None:
            log.info("ignoring a malformed Retry-After header from %s: %r", host, raw[:80])
    if limit is not None and remaining is not None and remaining > limit:
        log.info(
            "ignoring rate-limit headers from %s: %d remaining of a limit of %d",
            host,
            remaining,
            limit,
        )
        limit = remaining = None
    return RateObservation(
        limit=limit,
        remaining=remaining,
        window_seconds=remaining_window or limit_window,
        retry_after_seconds=retry_after,
    )


def window_end(observation: RateObservation, now: datetime) -> datetime | None:
    """When the window `observation` announced ends, if it named one."""
    if observation.window_seconds is None:
        return None
    return now + timedelta(seconds=observation.window_seconds)


def block_until(observation: RateObservation, now: datetime) -> datetime | None:
    """Until when `observation` (a 429's) stops pulls, or None when it does not say."""
    if observation.retry_after_seconds is None:
        return None
    return now + timedelta(seconds=observation.retry_after_seconds)


def waiting_message(host: str, until: datetime) -> str:
    """What an operation waiting for `host`'s budget says (status bodies, the CLI)."""
    when = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"waiting for upstream rate limit until {when} ({host})"
