"""The stall guard, pytest option ``--loop-stall-ms=N`` (on by default, N = 100): fail any
test in which one event-loop callback held its loop for longer than N milliseconds.

The event loop never waits (docs/architecture.md): a callback that runs long delays every
request of the process. Every loop created while tests run (the tests' own, through
pytest-asyncio, and those of `asyncio.run` in threads) has every callback timed (wall and
thread CPU) by a watchdog, and a slow one during a test's setup, call or teardown fails
that phase, naming the callback, with the stack the loop was held at (sampled by the
watchdog's thread while the callback still ran). No asyncio debug mode: it records a stack
for every callback scheduled, which made the suite several times slower. Servers started
as subprocesses by tests/peers/transship.py watch their own loops the same way
(tests/support/loop_stall_child.py) and write their stalls to a directory this plugin
reads after each phase, failing the test that was running.

A callback is judged by the CPU time its thread spent in it, not only by the wall clock: on
a loaded machine (four xdist workers on two cores, and other jobs) a 10 ms callback can
take 100 ms of wall time while its thread waits to be scheduled, which is not the code's
fault and would make the guard flaky. So a callback fails the test when it used more than
N ms of CPU, or when it took more than ``_WALL_FACTOR`` (50) times N ms of wall time (a
blocking call: a sync read waiting on the disk, a `time.sleep`); both without the cyclic
garbage collector's pauses, whose cost is the size of the test worker's whole heap
(pytest's and every earlier test's objects), not the code under test.
The design target is ~10 ms (a pull's own cost is tens of µs); N = 100 is what a loaded
2-core CI machine can hold without false alarms, and ``--loop-stall-ms=20`` on an idle
machine is a stricter check. ``--loop-stall-ms=0`` turns the guard off.

A test may carry ``@pytest.mark.loop_stall_ms(M)`` to be held to another bound: a tighter
one to show that a path of the server never holds the loop, a looser one only for
test-harness work that is not the server (say, building 20,000 rows with a sync helper),
with a comment saying why (none needs one today).
Registered by tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.peers.transship import STALL_BOUND_ENV, STALL_DIR_ENV

DEFAULT_BOUND_MS = 100.0
# A callback over this many times the bound in wall time fails even when it used little
# CPU: it was blocked in a synchronous call. The factor is high because scheduling delay
# alone reaches seconds on a loaded machine: a 3 ms-CPU callback (a non-blocking socket
# send) once took 1.7 s of wall time with four xdist workers and their servers on two cores.
_WALL_FACTOR = 50

# Handed to the servers tests start as subprocesses (tests/peers/transship.py): the bound,
# and the directory their stalls are written to (tests/support/loop_stall_child.py).
BOUND_ENV = STALL_BOUND_ENV
DIR_ENV = STALL_DIR_ENV


def is_stall(bound: float, wall: float, cpu: float) -> bool:
    """Whether a callback that took `wall` seconds and `cpu` seconds of its thread's CPU
    (the garbage collector's pauses left out) held its loop too long for `bound`."""
    return cpu > bound or wall > _WALL_FACTOR * bound


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--loop-stall-ms",
        type=float,
        default=DEFAULT_BOUND_MS,
        metavar="N",
        help="fail a test in which an event-loop callback holds its loop longer than N ms "
        f"(default {DEFAULT_BOUND_MS:g}; 0 turns the guard off)",
    )


class _StallPolicy(asyncio.DefaultEventLoopPolicy):
    """New loops are watched (a loop made otherwise, such as a migration's private one,
    is not); `bound` is the bound in seconds of the test running."""

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.bound = bound

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop._stall_watched = True  # type: ignore[attr-defined]
        return loop


def _watched(handle: asyncio.Handle) -> bool:
    return getattr(getattr(handle, "_loop", None), "_stall_watched", False)


class _Watchdog:
    """Times every loop callback of the process (wall and thread CPU), and from a thread
    of its own samples the stack of one still running past the bound, so a failure says
    where the loop was held: asyncio's warning names only the task and the line it reached
    *after* its slow step."""

    def __init__(
        self,
        bound: float,
        on_callback: Callable[[asyncio.Handle, float, float, str | None], None] | None = None,
    ) -> None:
        self.bound = bound
        # Called after each callback of a watched loop that took longer than the bound (wall
        # or CPU): handle, wall, CPU (the collector's pauses left out), stack sample.
        self.on_callback = on_callback
        self.running: dict[int, tuple[float, asyncio.Handle]] = {}
        # thread → (wall, CPU) seconds it spent collecting garbage, and when it started to
        self._gc: dict[int, tuple[float, float]] = {}
        self._gc_started: dict[int, tuple[float, float]] = {}
        self.samples: list[str] = []
        self.by_start: dict[tuple[int, float], str] = {}  # (thread, start) → its sample
        self._seen: set[tuple[int, float]] = set()
        original = asyncio.Handle._run
        watchdog = self
        running, gc_totals = self.running, self._gc
        # Every callback of the process comes through here: local names, and the rest of
        # the bookkeeping only for a callback that took longer than the bound.
        monotonic, thread_time, get_ident = time.monotonic, time.thread_time, threading.get_ident
        no_gc = (0.0, 0.0)

        def _run(handle: asyncio.Handle) -> None:
            thread = get_ident()
            wall, cpu = monotonic(), thread_time()
            running[thread] = (wall, handle)
            gc_before = gc_totals.get(thread, no_gc)
            try:
                original(handle)
            finally:
                took_wall, took_cpu = monotonic() - wall, thread_time() - cpu
                running.pop(thread, None)
                if max(took_wall, took_cpu) > watchdog.bound:
                    gc_after = gc_totals.get(thread, no_gc)
                    took = (
                        took_wall - (gc_after[0] - gc_before[0]),
                        took_cpu - (gc_after[1] - gc_before[1]),
                    )
                    if watchdog.on_callback is not None and _watched(handle):
                        sample = watchdog.by_start.pop((thread, wall), None)
                        watchdog.on_callback(handle, *took, sample)

        asyncio.Handle._run = _run  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._watch, name="loop-stall-watchdog", daemon=True).start()

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        # A cyclic collection runs in whichever callback allocated last, and its cost is
        # the size of the whole heap: in a test worker, pytest's and every earlier test's
        # objects (~100 ms for a full collection late in a run), not the code under test.
        thread = threading.get_ident()
        if phase == "start":
            self._gc_started[thread] = (time.monotonic(), time.thread_time())
        elif thread in self._gc_started:
            wall, cpu = self._gc_started.pop(thread)
            total_wall, total_cpu = self._gc.get(thread, (0.0, 0.0))
            self._gc[thread] = (
                total_wall + time.monotonic() - wall,
                total_cpu + time.thread_time() - cpu,
            )

    def _watch(self) -> None:
        while True:
            time.sleep(self.bound / 2)  # the watchdog's sampling pace, not synchronisation
            now = time.monotonic()
            frames = _current_frames()
            for thread, (started, handle) in list(self.running.items()):
                frame = frames.get(thread)
                if now - started <= self.bound or frame is None or (thread, started) in self._seen:
                    continue
                if not _watched(handle):  # a private loop (say, a migration's)
                    continue
                self._seen.add((thread, started))
                stack = traceback.format_stack(frame)
                # From the callback down: the frames above it are the loop's and pytest's.
                inner = [i for i, line in enumerate(stack) if "asyncio/events.py" in line]
                stack = stack[inner[-1] + 1 :] if inner else stack
                sample = (
                    f"  still running after {(now - started) * 1000:.0f} ms: {handle!r:.160}\n"
                    + "".join(stack[-14:])
                )
                self.samples.append(sample)
                if self.on_callback is not None:
                    self.by_start[(thread, started)] = sample


def _current_frames() -> dict[int, FrameType]:
    """`sys._current_frames()` with no garbage collection during it.

    CPython 3.11 before 3.11.9 (gh-106883) holds the runtime's thread-list lock while
    it builds the answer; a collection started by that allocation runs the `gc.callbacks`
    (Python code, which may hand the GIL over), and a thread starting meanwhile takes the
    GIL and waits for that lock: both wait forever. It hung a test worker in
    `Thread.start` (the executor's, under `run_in_executor`) for good."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


class _Collector:
    """Keeps the callbacks of watched loops, from any thread, that ran longer than the
    bound of the test running, each with its wall and CPU time and the stack sampled while
    it ran (if the watchdog caught it)."""

    watchdog: _Watchdog

    def __init__(self) -> None:
        self.records: list[tuple[str, float, float]] = []

    def record(self, handle: asyncio.Handle, wall: float, cpu: float, sample: str | None) -> None:
        if wall > self.watchdog.bound or cpu > self.watchdog.bound:
            self.records.append((f"{describe(handle):.300}", wall, cpu))


def describe(handle: asyncio.Handle) -> str:
    # Without debug mode a handle shows only its callback; a task's step names the task.
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    return repr(owner) if isinstance(owner, asyncio.Future) else repr(handle)


_COLLECTOR = pytest.StashKey[_Collector]()
_POLICY = pytest.StashKey[_StallPolicy]()
_CHILD_DIR = pytest.StashKey[Path]()


def _child_stalls(directory: Path) -> list[str]:
    """The stalls server subprocesses wrote since the last call (each file is consumed)."""
    found: list[str] = []
    for path in sorted(directory.glob("*.stalls")):
        taken = path.with_suffix(".taken")
        try:
            path.rename(taken)  # the server opens its file again for its next stall
        except FileNotFoundError:
            continue
        found.append(taken.read_text())
        taken.unlink()
    return found


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "loop_stall_ms(n): the stall guard's bound for this test (looser only for harness "
        "work, with a comment saying why)",
    )
    bound = config.getoption("loop_stall_ms")
    if not bound:
        # Off: servers must not report to a guard further up (a pytest running this one).
        os.environ.pop(BOUND_ENV, None)
        os.environ.pop(DIR_ENV, None)
        return
    # No asyncio debug mode: it records a stack for every callback scheduled, which made
    # the whole suite several times slower; the watchdog times every callback itself.
    policy = _StallPolicy(bound / 1000)
    asyncio.set_event_loop_policy(policy)
    config.stash[_POLICY] = policy
    collector = _Collector()
    collector.watchdog = _Watchdog(bound / 1000, on_callback=collector.record)
    config.stash[_COLLECTOR] = collector
    # Servers started as subprocesses watch their own loops and write stalls here.
    directory = tempfile.mkdtemp(prefix="transship-loop-stalls-")
    config.stash[_CHILD_DIR] = Path(directory)
    os.environ[BOUND_ENV] = f"{bound:g}"
    os.environ[DIR_ENV] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_CHILD_DIR, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _bound_of(item: pytest.Item) -> float | None:
    """The bound in seconds this test is held to, or None when the guard is off."""
    bound = item.config.getoption("loop_stall_ms")
    if not bound:
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
    collector.watchdog.samples = []
    # The loops this test creates report callbacks over its own bound (a marker's may be
    # tighter than the run's).
    bound = _bound_of(item) or item.config.getoption("loop_stall_ms") / 1000
    item.config.stash[_POLICY].bound = collector.watchdog.bound = bound
    return (yield)


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
    samples, collector.watchdog.samples = collector.watchdog.samples, []
    stalls = [(what, wall, cpu) for what, wall, cpu in records if is_stall(bound, wall, cpu)]
    children = _child_stalls(item.config.stash[_CHILD_DIR])
    if (stalls or children) and report.passed:
        lines = "\n".join(
            f"  {what} took {cpu * 1000:.0f} ms CPU, {wall * 1000:.0f} ms wall "
            "without the garbage collector's pauses"
            for what, wall, cpu in stalls
        )
        where = "".join(f"\nwhere the loop was held:\n{sample}" for sample in samples)
        servers = "".join(f"\nin a server subprocess:\n{text}" for text in children)
        report.outcome = "failed"
        report.longrepr = (
            f"the event loop stalled during {report.when}: {len(stalls)} callback(s) held "
            f"it longer than {bound * 1000:g} ms{', and a server subprocess' if children else ''}"
            f"\n{lines}{where}{servers}"
        )
    return report
