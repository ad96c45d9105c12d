"""pytest option ``--loop-stall-ms=N``: fail any test in which one event-loop callback ran
longer than N milliseconds.

The event loop never waits (docs/architecture.md): a callback that runs long delays every
request of the process. With the option, every loop created while tests run (the tests'
own, through pytest-asyncio, and those of `asyncio.run` in threads) runs in asyncio debug
mode with `slow_callback_duration` = N ms, and asyncio's "Executing … took …" warnings
logged during a test's setup, call or teardown fail that phase, quoting them. Off by default
(debug mode slows every loop down); a test may carry ``@pytest.mark.loop_stall_ms(M)`` to
allow itself a larger bound (say, for a start-up that migrates a database on the loop).
Registered by tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from typing import Any

import pytest

_SLOW = "Executing %s took %.3f seconds"  # asyncio's message, matched as a template


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--loop-stall-ms",
        type=float,
        default=None,
        metavar="N",
        help="fail a test in which any event-loop callback runs longer than N ms "
        "(asyncio debug mode; off by default)",
    )


class _StallPolicy(asyncio.DefaultEventLoopPolicy):
    """New loops run in debug mode and report callbacks slower than `bound` seconds."""

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.bound = bound

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = self.bound
        return loop


class _Collector(logging.Handler):
    """Keeps asyncio's slow-callback warnings, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _SLOW:
            self.records.append(record)


_COLLECTOR = pytest.StashKey[_Collector]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "loop_stall_ms(n): with --loop-stall-ms, the bound this test is held to instead",
    )
    bound = config.getoption("loop_stall_ms")
    if bound is None:
        return
    # pytest-asyncio creates each test's loop through the global policy, then applies its
    # own debug setting: both must say debug.
    config.option.asyncio_debug = True
    asyncio.set_event_loop_policy(_StallPolicy(bound / 1000))
    config.stash[_COLLECTOR] = _Collector()


def _bound_of(item: pytest.Item) -> float | None:
    """The bound in seconds this test is held to, or None when the option is off."""
    bound = item.config.getoption("loop_stall_ms")
    if bound is None:
        return None
    marker = item.get_closest_marker("loop_stall_ms")
    return float(marker.args[0] if marker is not None else bound) / 1000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    collector = item.config.stash.get(_COLLECTOR, None)
    if collector is None:
        return (yield)
    collector.records = []
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(collector)
    try:
        return (yield)
    finally:
        asyncio_logger.removeHandler(collector)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    collector = item.config.stash.get(_COLLECTOR, None)
    bound = _bound_of(item)
    if collector is None or bound is None:
        return report
    # The records of this phase (the loop logs from its own thread, or from a thread's loop).
    records, collector.records = collector.records, []
    stalls = [r for r in records if isinstance(r.args, tuple) and float(r.args[1]) > bound]
    if stalls and report.passed:
        lines = "\n".join(f"  {r.getMessage()}" for r in stalls)
        report.outcome = "failed"
        report.longrepr = (
            f"the event loop stalled during {report.when}: "
            f"{len(stalls)} callback(s) ran longer than {bound * 1000:g} ms\n{lines}"
        )
    return report
