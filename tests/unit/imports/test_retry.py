"""`RetryPolicy`: back-off, jitter, Retry-After (seconds and HTTP-date), injected sleep."""

from __future__ import annotations

import email.utils

import pytest

from transship.imports.retry import RetryPolicy, parse_retry_after

NOW = 1_700_000_000.0


def policy(**kwargs: object) -> RetryPolicy:
    defaults: dict[str, object] = {
        "attempts": 5,
        "base_delay": 0.5,
        "max_delay": 4.0,
        "jitter": 0.0,
        "max_retry_after": 60.0,
        "clock": lambda: NOW,
    }
    defaults.update(kwargs)
    return RetryPolicy(**defaults)  # type: ignore[arg-type]


def test_backoff_doubles_from_base_and_stops_at_max() -> None:
    p = policy()
    assert [p.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert p.delay(10_000) == 4.0  # no overflow for absurd attempt numbers


def test_jitter_shortens_by_at_most_its_fraction_using_the_injected_random() -> None:
    assert policy(jitter=0.5, random=lambda: 0.0).delay(3) == 2.0
    assert policy(jitter=0.5, random=lambda: 0.5).delay(3) == 1.5
    assert policy(jitter=0.5, random=lambda: 0.999999).delay(3) == pytest.approx(1.0, abs=1e-5)
    assert policy(jitter=1.0, random=lambda: 0.25).delay(1) == 0.375


def test_the_default_jitter_varies_within_bounds() -> None:
    p = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=0.2)
    values = {p.delay(2) for _ in range(200)}
    assert len(values) > 1
    assert all(1.6 <= v <= 2.0 for v in values)


def test_retry_after_seconds_replaces_the_backoff() -> None:
    p = policy(jitter=0.9, random=lambda: 0.9)
    assert p.delay(1, "7") == 7.0
    assert p.delay(4, " 0 ") == 0.0


def test_retry_after_is_capped() -> None:
    assert policy(max_retry_after=30.0).delay(1, "3600") == 30.0


def test_retry_after_http_date_is_relative_to_the_clock() -> None:
    header = email.utils.formatdate(NOW + 12, usegmt=True)
    assert policy().delay(1, header) == pytest.approx(12.0)
    past = email.utils.formatdate(NOW - 100, usegmt=True)
    assert policy().delay(3, past) == 0.0
    assert (
        policy(max_retry_after=5.0).delay(1, email.utils.formatdate(NOW + 600, usegmt=True)) == 5.0
    )


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2015 07:28:00 GMT"])
def test_unusable_retry_after_falls_back_to_backoff(header: str | None) -> None:
    assert policy().delay(2, header) == 1.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0 - 3) == pytest.approx(3.0)
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37", 0.0) is None  # no zone
    assert parse_retry_after(None, NOW) is None


def test_gives_up_after_the_last_attempt() -> None:
    p = policy(attempts=3)
    assert [p.gives_up_after(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert policy(attempts=1).gives_up_after(1)


async def test_pause_sleeps_with_the_injected_sleep_and_returns_the_delay() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    p = policy(sleep=sleep)
    assert await p.pause(1) == 0.5
    assert await p.pause(2, "9") == 9.0
    assert slept == [0.5, 9.0]


def test_policies_compare_by_their_numbers_not_their_hooks() -> None:
    async def sleep(seconds: float) -> None:
        return None

    assert policy() == policy(sleep=sleep, random=lambda: 0.3)
    assert policy() != policy(attempts=2)
    hash(policy())


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"base_delay": -1.0}, {"jitter": 1.5}, {"max_retry_after": -1.0}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        policy(**kwargs)


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        policy().delay(0)
