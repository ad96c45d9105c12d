"""`FailureThrottle`: sliding-window counts of failed sign-ins per client address and per
principal, the Retry-After it answers with, and its bounded memory."""

from __future__ import annotations

import pytest

from transship.identity.throttle import FailureThrottle, RetryLater, TooManyFailures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_refused_at_its_limit_until_its_window_frees() -> None:
    clock = Clock()
    throttle = FailureThrottle(per_client=3, per_principal=100, window_seconds=60, clock=clock)
    for i in range(3):
        throttle.check("10.0.0.1", f"user:{i}")
        throttle.record_failure("10.0.0.1", f"user:{i}")
        clock.now += 10
    # Three failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060.
    with pytest.raises(TooManyFailures) as refused:
        throttle.check("10.0.0.1", "user:fresh")
    assert refused.value.retry_after == 30
    assert "client address" in refused.value.message
    assert isinstance(refused.value, RetryLater)
    throttle.check("10.0.0.2", "user:fresh")  # another address is not affected
    clock.now = 1059.5
    with pytest.raises(TooManyFailures) as still:
        throttle.check("10.0.0.1", "user:fresh")
    assert still.value.retry_after == 1  # never 0: rounded up
    clock.now = 1060.0
    throttle.check("10.0.0.1", "user:fresh")  # the oldest failure slid out


def test_a_principal_is_refused_from_every_address_and_case_insensitively() -> None:
    clock = Clock()
    throttle = FailureThrottle(per_client=100, per_principal=2, window_seconds=30, clock=clock)
    throttle.record_failure("10.0.0.1", "sp:Client-A")
    clock.now += 5
    throttle.record_failure("10.0.0.2", "sp:client-a")
    with pytest.raises(TooManyFailures) as refused:
        throttle.check("10.0.0.3", "SP:CLIENT-A")
    assert refused.value.retry_after == 25
    assert "user name or client id" in refused.value.message
    throttle.check("10.0.0.3", "sp:client-b")


def test_the_longer_wait_of_address_and_principal_is_answered() -> None:
    clock = Clock()
    throttle = FailureThrottle(per_client=1, per_principal=1, window_seconds=60, clock=clock)
    throttle.record_failure("10.0.0.1", "user:a")
    clock.now += 20
    throttle.record_failure("10.0.0.2", "user:b")
    with pytest.raises(TooManyFailures) as refused:
        throttle.check("10.0.0.1", "user:b")
    assert refused.value.retry_after == 60  # user:b frees at +60, the address at +40


def test_an_unknown_address_is_limited_by_principal_only() -> None:
    throttle = FailureThrottle(per_client=1, per_principal=3, window_seconds=60, clock=Clock())
    for _ in range(2):
        throttle.record_failure(None, "user:a")
        throttle.check(None, "user:a")
    throttle.record_failure(None, "user:a")
    with pytest.raises(TooManyFailures):
        throttle.check(None, "user:a")
    assert throttle.tracked() == (0, 1)


def test_failures_counted_while_over_the_limit_do_not_extend_the_wait_unboundedly() -> None:
    """Checks already in flight may fail after the limit was reached; only the last `limit`
    failures are kept, so the wait is at most one window from the last failure."""
    clock = Clock()
    throttle = FailureThrottle(per_client=2, per_principal=100, window_seconds=60, clock=clock)
    for _ in range(50):
        throttle.record_failure("10.0.0.1", "user:a")
        clock.now += 1
    with pytest.raises(TooManyFailures) as refused:
        throttle.check("10.0.0.1", "user:b")
    assert refused.value.retry_after == 58  # the 49th failure (at +48) frees at +108; now +50


def test_memory_is_bounded_and_the_longest_quiet_key_goes_first() -> None:
    clock = Clock()
    throttle = FailureThrottle(
        per_client=1, per_principal=1, window_seconds=60, max_keys=3, clock=clock
    )
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        throttle.record_failure(address, "user:" + address)
    throttle.record_failure("10.0.0.1", "user:10.0.0.1")  # .1 failed again: now the newest
    throttle.record_failure("10.0.0.4", "user:10.0.0.4")
    assert throttle.tracked() == (3, 3)
    throttle.check("10.0.0.2", "user:other")  # evicted: forgotten
    for address in ("10.0.0.1", "10.0.0.3", "10.0.0.4"):
        with pytest.raises(TooManyFailures):
            throttle.check(address, "user:other")


def test_windows_that_emptied_are_dropped() -> None:
    clock = Clock()
    throttle = FailureThrottle(per_client=5, per_principal=5, window_seconds=10, clock=clock)
    throttle.record_failure("10.0.0.1", "user:a")
    clock.now += 11
    throttle.check("10.0.0.1", "user:a")
    assert throttle.tracked() == (0, 0)


@pytest.mark.parametrize(
    ("per_client", "per_principal", "window", "max_keys"),
    [(0, 1, 1.0, 1), (1, 0, 1.0, 1), (1, 1, 0.0, 1), (1, 1, 1.0, 0)],
)
def test_limits_must_be_positive(
    per_client: int, per_principal: int, window: float, max_keys: int
) -> None:
    with pytest.raises(ValueError):
        FailureThrottle(per_client, per_principal, window, max_keys=max_keys)


def test_an_attempt_counts_as_a_failure_only_when_it_says_so() -> None:
    throttle = FailureThrottle(per_client=2, per_principal=100, window_seconds=60, clock=Clock())
    with throttle.attempt("10.0.0.1", "User:A") as attempt:
        attempt.failed()
    with pytest.raises(RuntimeError), throttle.attempt("10.0.0.1", "user:a"):
        raise RuntimeError("the hashing pool was full")  # neither success nor failure
    throttle.check("10.0.0.1", "user:a")
    with throttle.attempt("10.0.0.1", "user:a") as attempt:
        attempt.failed()
    with pytest.raises(TooManyFailures), throttle.attempt("10.0.0.1", "user:z"):
        pytest.fail("the block must not run when the address is over its limit")
    assert throttle.tracked() == (1, 1)
