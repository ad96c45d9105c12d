"""manifest_get_workers: `manifest_get` with `transship serve --workers 2` (two HTTP
processes on one port, for this machine's two cores) against the same docker-registry.

Before the index is pushed, new connections are opened until each of the two processes has
answered one (`/readyz` says whether the answering process is the master, which runs the
background work, or its child), so every measured second has both serving. CPU per request
is the whole process group's (master and child). Target: at least 5.0 times docker-registry.
"""

from __future__ import annotations

import json
import time
import urllib.request

from bench.harness import Context, Target
from bench.manifest_get import run_against
from bench.report import BenchResult

NAME = "manifest_get_workers"
WORKERS = 2


def both_serving(target: Target, timeout: float = 60.0) -> None:
    """Return once the master and its child have each answered a new connection; raise
    TimeoutError otherwise."""
    seen: set[bool] = set()
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        with opener.open(f"{target.url}/readyz", timeout=5) as reply:
            seen.add(bool(json.load(reply)["backgroundWork"]))
        if seen == {True, False}:
            return
        time.sleep(0.05)
    raise TimeoutError(f"only {seen} of the {WORKERS} HTTP processes answered in {timeout} s")


def run(ctx: Context, result: BenchResult) -> None:
    run_against(ctx, result, ("--workers", str(WORKERS)), target_ratio=5.0, before=both_serving)
    result.notes.append(f"transship serve --workers {WORKERS}: CPU is the master's and child's")
