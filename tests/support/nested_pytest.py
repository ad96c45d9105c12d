"""A pytest run inside a test, for the tests of the suite's own plugins and hooks
(``tests/test_parallel_*.py``, ``tests/unit/test_loop_stall_option.py``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The fuzzing's plugins, loaded by every pytest from their entry points: about a third of a
# process's start, and no use to a run whose tests use neither.
WITHOUT_FUZZING = ("-p", "no:schemathesis", "-p", "no:hypothesispytest")


def run_pytest(
    cwd: Path, *args: str, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest -q -p no:cacheprovider <args>`` in `cwd` with exactly `env`, its
    output captured as text. Raises subprocess.TimeoutExpired after `timeout` seconds."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def suite_env(*extra_paths: Path) -> dict[str, str]:
    """A minimal environment whose imports find the suite (``tests``), the project (``src``)
    and `extra_paths`."""
    paths = [REPO, REPO / "src", *extra_paths]
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(str(p) for p in paths)}
