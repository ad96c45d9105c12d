"""The parallel run's schedule: long tests first, and named xdist groups kept
(tests/support/parallel_order.py).

xdist hands out work in collection order (after the groups of several tests), so the order
decides whether a minutes-long test overlaps the short ones or runs alone at the end.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections import defaultdict
from pathlib import Path

from tests.support.nested_pytest import WITHOUT_FUZZING, run_pytest, suite_env

MODULE = """
import json, os
from pathlib import Path

import pytest

LOG = Path(__file__).with_name("log.jsonl")


def record(name):
    with LOG.open("a") as f:
        f.write(json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER"), "test": name}) + "\\n")


def test_plain_first():
    record("plain")


@pytest.mark.slow
def test_slow():
    record("slow")


@pytest.mark.heavy
def test_heavy():
    record("heavy")


@pytest.mark.heavy
@pytest.mark.slow
def test_heavy_and_slow():
    record("heavy_and_slow")
"""

GROUPED = """
import json, os
from pathlib import Path

import pytest

from test_order import record

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    record("grouped")
"""


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pytest(tmp_path, *WITHOUT_FUZZING, *args, str(tmp_path), env=suite_env(tmp_path))


def _write(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.support.parallel_order import pytest_collection_modifyitems  # noqa: F401\n"
        "def pytest_configure(config):\n"
        "    config.addinivalue_line('markers', 'slow: s')\n"
        "    config.addinivalue_line('markers', 'heavy: h')\n"
    )
    (tmp_path / "test_order.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "test_order_grouped.py").write_text(textwrap.dedent(GROUPED))


def test_heavy_then_slow_then_the_rest(tmp_path: Path) -> None:
    _write(tmp_path)
    done = _pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    order = [json.loads(line)["test"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert order[:3] == ["heavy_and_slow", "heavy", "slow"], order
    assert sorted(order[3:]) == ["grouped"] * 6 + ["plain"], order


def test_a_named_group_runs_on_one_worker(tmp_path: Path) -> None:
    _write(tmp_path)
    done = _pytest(tmp_path, "-n", "3", "--dist", "loadgroup")
    assert done.returncode == 0, done.stdout + done.stderr
    workers: dict[str, set[str]] = defaultdict(set)
    for line in (tmp_path / "log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        workers[entry["test"]].add(entry["worker"])
    assert len(workers["grouped"]) == 1, workers
