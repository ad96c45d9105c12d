"""The harness option ``--loop-stall-ms=N`` (tests/support/loop_stall.py): a test in which one
event-loop callback ran longer than N ms fails, naming the callback; a test that only
awaits passes; without the option nothing is checked; a marker can allow a larger bound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]

_TESTS = """
import asyncio
import threading
import time

import pytest


async def test_blocks_the_loop():
    time.sleep(0.2)  # synchronous work on the loop: what the option exists to catch


async def test_only_awaits():
    await asyncio.sleep(0.2)


@pytest.mark.loop_stall_ms(1000)
async def test_allowed_a_larger_bound():
    time.sleep(0.2)


def test_a_loop_in_a_thread():
    async def stall():
        time.sleep(0.2)

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
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.support.loop_stall",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-rA",
            *args,
            str(tmp_path / "test_stalls.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
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
        "test_only_awaits": "PASSED",
        "test_allowed_a_larger_bound": "PASSED",
        "test_a_loop_in_a_thread": "FAILED",
    }, run.stdout + run.stderr
    assert "the event loop stalled during call" in run.stdout
    assert "coro=<test_blocks_the_loop()" in run.stdout, "the message names the callback"


def test_without_the_option_nothing_is_checked(tmp_path: Path) -> None:
    run = _pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert set(_outcomes(run.stdout).values()) == {"PASSED"}
