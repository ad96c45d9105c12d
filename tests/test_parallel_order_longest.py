"""The longest tests start first: ``slow(seconds=N)`` orders them, longest first, ahead of
everything else (tests/support/parallel_order.py), and the parallel run keeps that order
(``scripts/test`` passes ``--no-loadscope-reorder``; by default ``--dist loadgroup`` would
hand out the groups of several tests first, so a long test of its own, such as the soak,
started only after them and ran on alone at the end).
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path

from tests.support.nested_pytest import WITHOUT_FUZZING, run_pytest, suite_env

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = """
from tests.support.parallel_order import pytest_collection_modifyitems  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: s")
    config.addinivalue_line("markers", "heavy: h")
"""

RECORD = """
import json, os
from pathlib import Path

LOG = Path(__file__).with_name("log.jsonl")


def record(name):
    with LOG.open("a") as f:
        f.write(json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER"), "test": name}) + "\\n")
"""

MODULE = """
import pytest

from record import record


def test_plain():
    record("plain")


@pytest.mark.heavy
@pytest.mark.slow
def test_heavy_and_slow():
    record("heavy_and_slow")


@pytest.mark.slow(seconds=5)
def test_a_while():
    record("a_while")


@pytest.mark.slow(seconds=50)
def test_longest():
    record("longest")
"""

GROUPS = """
import pytest

from record import record


@pytest.mark.xdist_group("first")
@pytest.mark.parametrize("i", range(6))
def test_first_group(i):
    record("first")


@pytest.mark.xdist_group("second")
@pytest.mark.parametrize("i", range(4))
def test_second_group(i):
    record("second")
"""


def _write(tmp_path: Path) -> None:
    for name, text in {
        "conftest.py": CONFTEST,
        "record.py": RECORD,
        "test_a_groups.py": GROUPS,
        "test_b_order.py": MODULE,
    }.items():
        (tmp_path / name).write_text(textwrap.dedent(text))


def _run(tmp_path: Path, *args: str) -> list[dict[str, str]]:
    done = run_pytest(tmp_path, *WITHOUT_FUZZING, *args, str(tmp_path), env=suite_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]


def test_the_longest_run_first_then_heavy_then_slow_then_the_rest(tmp_path: Path) -> None:
    _write(tmp_path)
    order = [entry["test"] for entry in _run(tmp_path, "-p", "no:xdist")]
    assert order[:3] == ["longest", "a_while", "heavy_and_slow"], order
    assert sorted(order[3:]) == ["first"] * 6 + ["plain"] + ["second"] * 4, order


def test_the_parallel_run_starts_the_longest_before_the_groups(tmp_path: Path) -> None:
    _write(tmp_path)
    entries = _run(tmp_path, "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder")
    by_worker: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_worker[entry["worker"]].append(entry["test"])
    # Each worker runs what it was handed in order: the longest is the first of its worker.
    firsts = {tests[0] for tests in by_worker.values()}
    assert "longest" in firsts, dict(by_worker)
    # The groups still run whole on one worker each.
    for group in ("first", "second"):
        assert sum(group in tests for tests in by_worker.values()) == 1, dict(by_worker)


def test_scripts_test_keeps_the_collection_order() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert "--dist loadgroup --no-loadscope-reorder" in script
