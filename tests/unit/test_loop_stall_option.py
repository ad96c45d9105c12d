"""The stall guard ``--loop-stall-ms=N`` (tests/support/loop_stall.py), on by default: a test
in which one event-loop callback used more than N ms of CPU, or blocked for more than fifty
times N ms, fails, naming the callback; a test that only awaits, or whose callback was only
slowed by the garbage collector or a short wait, passes; ``0`` turns the guard off; a marker
can allow a larger bound."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.procs import ManagedProcess
from tests.peers.transship import STALL_BOUND_ENV, STALL_DIR_ENV, STALL_SITE
from tests.support.nested_pytest import WITHOUT_FUZZING, run_pytest

_REPO = Path(__file__).resolve().parents[2]

_TESTS = """
import asyncio
import gc
import os
import pathlib
import threading
import time

import pytest

# Two million reachable cycles: a full collection of them takes ~100 ms of CPU.
_HEAP = [[] for _ in range(2_000_000)]
for _item in _HEAP:
    _item.append(_item)


def _spin(seconds):
    # Synchronous CPU work on the loop: what the guard exists to catch.
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


def _spin_until_sampled(config, seconds):
    # `_spin`, and on until the watchdog's thread has sampled the loop too: a loaded machine
    # may not schedule that thread within `seconds` (a CI run once missed it).
    from tests.support.loop_stall import _COLLECTOR

    collector = config.stash.get(_COLLECTOR, None)  # None with the guard off
    started, deadline = time.thread_time(), time.monotonic() + 30
    while time.thread_time() - started < seconds or (
        collector is not None
        and not collector.watchdog.samples
        and time.monotonic() < deadline
    ):
        pass


async def test_blocks_the_loop(pytestconfig):
    _spin_until_sampled(pytestconfig, 0.2)


async def test_a_blocking_call():
    time.sleep(2.6)  # a synchronous wait over fifty times the run's 50 ms bound


async def test_a_short_wait_is_not_a_stall():
    time.sleep(0.1)  # as a loaded machine's scheduler may delay a callback: no CPU spent


async def test_the_garbage_collector_is_not_counted():
    gc.collect()


async def test_only_awaits():
    await asyncio.sleep(0.2)


@pytest.mark.loop_stall_ms(1000)
async def test_allowed_a_larger_bound():
    _spin(0.2)


def test_a_server_subprocess_stalled():
    # What a server started by the test writes when one of its callbacks ran too long.
    if "TRANSSHIP_TEST_LOOP_STALL_DIR" not in os.environ:
        return  # the guard is off: servers are not asked to watch their loops
    directory = pathlib.Path(os.environ["TRANSSHIP_TEST_LOOP_STALL_DIR"])
    (directory / "4242.stalls").write_text("  pid 4242: <Task …> took 300 ms wall")


def test_a_loop_in_a_thread():
    async def stall():
        _spin(0.2)

    worker = threading.Thread(target=asyncio.run, args=(stall(),))
    worker.start()
    worker.join()
"""


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_stalls.py").write_text(_TESTS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return run_pytest(
        tmp_path,
        *WITHOUT_FUZZING,
        "-p",
        "tests.support.loop_stall",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-rA",
        *args,
        str(tmp_path / "test_stalls.py"),
        env=env,
        timeout=120,
    )


def _outcomes(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        for outcome in ("PASSED", "FAILED", "ERROR"):
            if line.startswith(outcome + " ") and "::" in line:
                found[line.split("::")[1].split(" ")[0]] = outcome
    return found


def test_a_callback_over_the_bound_fails_its_test(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "--loop-stall-ms=50")
    assert _outcomes(run.stdout) == {
        "test_blocks_the_loop": "FAILED",
        "test_a_blocking_call": "FAILED",
        "test_a_short_wait_is_not_a_stall": "PASSED",
        "test_the_garbage_collector_is_not_counted": "PASSED",
        "test_only_awaits": "PASSED",
        "test_allowed_a_larger_bound": "PASSED",
        "test_a_server_subprocess_stalled": "FAILED",
        "test_a_loop_in_a_thread": "FAILED",
    }, run.stdout + run.stderr
    assert "in a server subprocess:\n  pid 4242" in run.stdout
    assert "the event loop stalled during call" in run.stdout
    assert "coro=<test_blocks_the_loop()" in run.stdout, "the message names the callback"
    assert "in _spin_until_sampled" in run.stdout, "the message shows where the loop was held"


def test_the_guard_is_on_by_default(tmp_path: Path) -> None:
    outcomes = _outcomes(_pytest(tmp_path).stdout)
    assert outcomes["test_blocks_the_loop"] == "FAILED"
    assert outcomes["test_only_awaits"] == "PASSED"


def test_zero_turns_the_guard_off(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "--loop-stall-ms=0")
    assert run.returncode == 0, run.stdout + run.stderr
    assert set(_outcomes(run.stdout).values()) == {"PASSED"}


_SERVER = """
import asyncio
import time


def spin(seconds):
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


async def stall():
    spin(0.2)


asyncio.run(stall())
# A loop made outside the policy (a migration's private one) is not watched.
with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
    runner.run(stall())
"""


@pytest.mark.parametrize("start", ["started", "forked"])
def test_a_server_subprocess_watches_its_loops(
    start: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What tests/peers/transship.py does for the servers it starts while the guard is on:
    ``stall_site`` on the PYTHONPATH, the bound and a directory in the environment; the
    same whether the server is started afresh or forked from the fork server."""
    stalls = tmp_path / "stalls"
    stalls.mkdir()
    (tmp_path / "stalling_server.py").write_text(_SERVER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(STALL_SITE), str(_REPO), str(tmp_path), os.environ.get("PYTHONPATH", "")]
        ),
        STALL_BOUND_ENV: "50",
        STALL_DIR_ENV: str(stalls),
    }
    argv = [sys.executable, "-m", "stalling_server"]
    if start == "started":
        subprocess.run(argv, env=env, check=True, timeout=120)
    else:
        monkeypatch.setenv("TRANSSHIP_TEST_FORK_SERVER", "1")
        proc = ManagedProcess(argv, log_path=tmp_path / "log", env=env, cwd=tmp_path, fork=True)
        assert proc.fork
        assert proc.start().wait(timeout=120) == 0, proc.log_text()
    (written,) = stalls.glob("*.stalls")
    lines = [line for line in written.read_text().splitlines() if " took " in line]
    assert len(lines) == 1, lines
    assert "coro=<stall()" in lines[0] and "longer than 50 ms" in lines[0]


def test_the_watchdog_s_stack_sampling_runs_no_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A collection inside `sys._current_frames()` deadlocked a worker on CPython 3.11.7
    (gh-106883): the watchdog takes the frames with the collector off, and leaves its
    on/off state as it found it."""
    from tests.support import loop_stall

    original = sys._current_frames
    inside = [False]
    collected_inside: list[str] = []

    def current_frames() -> dict[int, Any]:
        inside[0] = True
        try:
            return original()
        finally:
            inside[0] = False

    def seen(phase: str, _info: dict[str, int]) -> None:
        if inside[0]:
            collected_inside.append(phase)

    @contextlib.contextmanager
    def a_parked_thread() -> Iterator[None]:
        # Its frame has no frame object yet: taking the frames allocates one, and with a
        # threshold of 1 that allocation starts a collection.
        release = threading.Event()
        thread = threading.Thread(target=release.wait)
        thread.start()
        try:
            yield
        finally:
            release.set()
            thread.join()

    monkeypatch.setattr(sys, "_current_frames", current_frames)
    threshold = gc.get_threshold()
    gc.callbacks.append(seen)
    try:
        for enabled in (True, False):
            with a_parked_thread():
                (gc.enable if enabled else gc.disable)()
                gc.set_threshold(1)
                frames = loop_stall._current_frames()
                gc.set_threshold(*threshold)
                assert collected_inside == []
                assert gc.isenabled() is enabled
                assert threading.get_ident() in frames
        with a_parked_thread():
            gc.enable()
            gc.set_threshold(1)
            sys._current_frames()
            gc.set_threshold(*threshold)
            assert collected_inside, "without the collector off, one runs inside"
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*threshold)
        gc.enable()
