"""The import progress shows a rate-limit wait: the status's `properties.waiting` message on
the plain progress line (printed again when the wait starts, even with no other change),
and nothing once the wait is over."""

from __future__ import annotations

import io

from rich.console import Console

from tests.unit.cli.operations import operation_status
from transship.cli.progress import Counters, ImportProgress
from transship.wire.arm import OperationStatus

MESSAGE = "waiting for upstream rate limit until 2027-01-01T12:00:00Z (hub.example)"


def _status(waiting: bool) -> OperationStatus:
    if not waiting:
        return operation_status(source="hub.example/team/app:v1")
    wait = {"host": "hub.example", "until": "2027-01-01T12:00:00Z", "message": MESSAGE}
    return operation_status(source="hub.example/team/app:v1", waiting=wait)


def test_the_wait_is_on_the_progress_line() -> None:
    assert Counters.of(_status(True)).waiting == MESSAGE
    assert Counters.of(_status(True)).line() == f"running  {MESSAGE}"
    assert Counters.of(_status(False)).waiting is None
    assert MESSAGE not in Counters.of(_status(False)).line()


def test_the_line_is_printed_again_when_the_wait_starts_and_ends() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    with ImportProgress(console, "app:v1", live=False) as progress:
        progress.update(_status(False))
        progress.update(_status(True))
        progress.update(_status(True))  # nothing new: not printed twice
        progress.update(_status(False))
    lines = out.getvalue().splitlines()
    assert [line for line in lines if MESSAGE in line] == [f"running  {MESSAGE}"]
    assert lines[-1] == "running"
