"""Rate-limit headers (every form Docker Hub and the IETF draft use; malformed ones ignored
with a log line) and the arithmetic of one budget."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from multidict import CIMultiDict

from transship.imports.ratelimit import (
    RateObservation,
    block_until,
    parse_rate_limit,
    waiting_message,
    window_end,
)
from transship.metadata.records import Budget, BudgetKey

NOW = 1_800_000_000.0
T0 = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def _parse(status: int = 200, **headers: str) -> RateObservation:
    found = CIMultiDict((name.replace("_", "-"), value) for name, value in headers.items())
    return parse_rate_limit(found, status, NOW, host="hub.example")


def test_docker_hub_headers() -> None:
    seen = _parse(ratelimit_limit="100;w=21600", ratelimit_remaining="76;w=21600")
    assert seen == RateObservation(limit=100, remaining=76, window_seconds=21600)


@pytest.mark.parametrize(
    ("limit", "remaining", "expected"),
    [
        ("100", "5", RateObservation(100, 5, None)),  # no window
        ("100;w=60", "5", RateObservation(100, 5, 60)),  # window from the limit
        ("100", "5;w=30", RateObservation(100, 5, 30)),  # the remaining's wins
        ("100;w=21600;comment=x", "1;w=21600", RateObservation(100, 1, 21600)),
        ("100, 100;w=21600", "7, 7;w=21600", RateObservation(100, 7, None)),  # first policy
        (" 100 ; w = 600 ", " 0 ; w = 600 ", RateObservation(100, 0, 600)),
        ("100;W=600", "9;W=600", RateObservation(100, 9, 600)),
        ("100;w=0", "9;w=0", RateObservation(100, 9, None)),  # a zero window is none
        ("100;source=docker", "9;source=docker", RateObservation(100, 9, None)),
    ],
)
def test_header_forms(limit: str, remaining: str, expected: RateObservation) -> None:
    assert _parse(ratelimit_limit=limit, ratelimit_remaining=remaining) == expected


@pytest.mark.parametrize(
    "value", ["", "abc", "-1", "1.5", "10;w=", "1" * 13, "10;w=x", "10 20", "\u0661\u0660"]
)
def test_malformed_headers_are_ignored_with_a_log_line(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="transship.imports.ratelimit"):
        seen = _parse(ratelimit_limit="100;w=60", ratelimit_remaining=value)
    assert seen.remaining is None
    assert seen.limit == 100  # the readable header still counts
    assert any("malformed ratelimit-remaining" in r.getMessage() for r in caplog.records)


def test_remaining_above_the_limit_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="transship.imports.ratelimit"):
        seen = _parse(ratelimit_limit="10", ratelimit_remaining="11")
    assert seen.limit is None and seen.remaining is None
    assert caplog.records


def test_no_headers_say_nothing() -> None:
    assert _parse().empty
    assert _parse(status=429).empty  # a 429 without Retry-After blocks nothing


def test_retry_after_counts_on_429_only() -> None:
    assert _parse(429, retry_after="120").retry_after_seconds == 120.0
    assert _parse(503, retry_after="120").retry_after_seconds is None  # a server's back-off
    assert _parse(200, retry_after="120").retry_after_seconds is None
    http_date = "Fri, 15 Jan 2027 08:00:30 GMT"
    expected = datetime(2027, 1, 15, 8, 0, 30, tzinfo=UTC).timestamp() - NOW
    assert _parse(429, retry_after=http_date).retry_after_seconds == pytest.approx(expected)


def test_a_malformed_retry_after_is_ignored_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="transship.imports.ratelimit"):
        seen = _parse(429, retry_after="soon")
    assert seen.retry_after_seconds is None
    assert any("Retry-After" in r.getMessage() for r in caplog.records)


def test_block_and_window_ends() -> None:
    assert block_until(RateObservation(retry_after_seconds=30), T0) == T0 + timedelta(seconds=30)
    assert block_until(RateObservation(limit=1, remaining=0), T0) is None
    assert window_end(RateObservation(1, 0, 600), T0) == T0 + timedelta(seconds=600)
    assert window_end(RateObservation(1, 0, None), T0) is None


def _budget(**changes: object) -> Budget:
    values: dict[str, object] = {
        "key": BudgetKey("hub.example", "alice"),
        "limit": 100,
        "remaining": 5,
        "window_seconds": 600,
        "observed_at": T0,
        "resets_at": T0 + timedelta(seconds=600),
        "blocked_until": None,
        "pulls": 3,
    }
    values.update(changes)
    return Budget(**values)  # type: ignore[arg-type]


def test_a_budget_with_pulls_left_lets_pulls_go() -> None:
    budget = _budget()
    assert budget.wait_until(T0) is None
    assert budget.remaining_at(T0) == 5


def test_a_spent_budget_waits_for_its_window() -> None:
    budget = _budget(remaining=0)
    assert budget.wait_until(T0) == T0 + timedelta(seconds=600)
    assert budget.wait_until(T0 + timedelta(seconds=600)) is None
    # Once the window has ended, the whole limit is back.
    assert budget.remaining_at(T0 + timedelta(seconds=601)) == 100


def test_a_spent_budget_without_a_window_leaves_it_to_the_upstream() -> None:
    assert _budget(remaining=0, resets_at=None, window_seconds=None).wait_until(T0) is None


def test_a_429_blocks_until_its_retry_after_even_with_pulls_left() -> None:
    budget = _budget(blocked_until=T0 + timedelta(seconds=30))
    assert budget.wait_until(T0) == T0 + timedelta(seconds=30)
    assert budget.wait_until(T0 + timedelta(seconds=31)) is None


def test_an_unknown_budget_lets_pulls_go() -> None:
    budget = _budget(limit=None, remaining=None, window_seconds=None, resets_at=None)
    assert budget.wait_until(T0) is None
    assert budget.remaining_at(T0) is None


def test_the_waiting_message() -> None:
    assert waiting_message("hub.example", T0) == (
        "waiting for upstream rate limit until 2027-01-01T12:00:00Z (hub.example)"
    )
