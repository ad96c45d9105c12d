"""The parallel run's own promises (``scripts/test`` runs the suite under pytest-xdist with
``--dist loadgroup``): tests that share a module-scoped fixture run on one worker, so the
fixture is set up once per parameter, as in a serial run (tests/support/parallel_order.py)."""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path

from tests.support.nested_pytest import run_pytest, suite_env

MODULE = """
import json, os
from pathlib import Path

import pytest

LOG = Path(__file__).with_name("log.jsonl")


def record(**entry):
    with LOG.open("a") as f:
        f.write(json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER"), **entry}) + "\\n")


@pytest.fixture(scope="module", params=["one", "two"])
def shared(request):
    record(setup=request.param)
    return request.param


@pytest.mark.parametrize("i", range(8))
def test_sharing(shared, i):
    record(test=shared)


@pytest.mark.parametrize("i", range(8))
def test_alone(i):
    record(test="alone")
"""


def _run_parallel(tmp_path: Path, name: str, module: str, workers: int) -> str:
    """Run `module` (as `name`) under the suite's collection hook with `workers` xdist
    workers and --dist loadgroup, as scripts/test does; its output, once it passed."""
    (tmp_path / "conftest.py").write_text(
        "from tests.support.parallel_order import pytest_collection_modifyitems  # noqa: F401\n"
    )
    (tmp_path / name).write_text(textwrap.dedent(module))
    done = run_pytest(
        tmp_path, "-n", str(workers), "--dist", "loadgroup", str(tmp_path), env=suite_env()
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_tests_sharing_a_module_fixture_run_on_one_worker(tmp_path: Path) -> None:
    _run_parallel(tmp_path, "test_shared.py", MODULE, workers=3)
    entries = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    setups = sorted(e["setup"] for e in entries if "setup" in e)
    assert setups == ["one", "two"], entries  # once per parameter, not once per worker
    workers: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if "test" in entry:
            workers[entry["test"]].add(entry["worker"])
    assert len(workers["one"]) == len(workers["two"]) == 1, dict(workers)
    assert sum(1 for e in entries if "test" in e) == 24


SCHEMATHESIS_MODULE = """
import json, os
from pathlib import Path

import schemathesis

LOG = Path(__file__).with_name("ops.jsonl")
PATHS = {f"/thing{i}": {"get": {"responses": {"200": {"description": "ok"}}}} for i in range(6)}
schema = schemathesis.openapi.from_dict(
    {"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": PATHS}
)
schema.config.generation.update(max_examples=1, database="none")


@schema.parametrize()
def test_operation(case):
    with LOG.open("a") as f:
        f.write(json.dumps({"op": case.operation.label}) + "\\n")
"""


def test_each_schemathesis_operation_runs_under_xdist(tmp_path: Path) -> None:
    """schemathesis gives each operation's test a name (``test_operation[GET /thing0]``)
    that pytest >= 9.2 leaves out of the node id; with equal ids xdist ran a few of them and
    reported success. tests/support/parallel_order.py puts the name back."""
    output = _run_parallel(tmp_path, "test_operations.py", SCHEMATHESIS_MODULE, workers=2)
    assert "6 passed" in output, output
    entries = [json.loads(line) for line in (tmp_path / "ops.jsonl").read_text().splitlines()]
    assert {e["op"] for e in entries} == {f"GET /thing{i}" for i in range(6)}
