"""The stall guard (tests/support/loop_stall.py) inside the servers tests start as
subprocesses: tests/peers/transship.py puts ``stall_site/`` on their PYTHONPATH while the
guard is on, and its ``sitecustomize.py`` calls :func:`install` at interpreter start-up, so
the command line stays ``python -m transship serve …``.

Each callback of a loop made through the event-loop policy that used more than the bound
(``TRANSSHIP_TEST_LOOP_STALL_MS``) of CPU, or blocked for long, is appended to
``<TRANSSHIP_TEST_LOOP_STALL_DIR>/<pid>.stalls`` with the stack sampled while it ran; the
test run fails the test during which the file appeared.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.support.loop_stall import _StallPolicy, _Watchdog, describe, is_stall


def install(bound_ms: float, directory: Path) -> None:
    """Watch every loop the process makes from now on; write its stalls under `directory`."""
    bound = bound_ms / 1000
    path = directory / f"{os.getpid()}.stalls"

    def record(handle: asyncio.Handle, wall: float, cpu: float, sample: str | None) -> None:
        if not is_stall(bound, wall, cpu):
            return
        with path.open("a") as out:
            out.write(
                f"  pid {os.getpid()}: {describe(handle):.300} took {wall * 1000:.0f} ms wall, "
                f"{cpu * 1000:.0f} ms CPU (longer than {bound_ms:g} ms)\n{sample or ''}"
            )

    asyncio.set_event_loop_policy(_StallPolicy(bound))
    _Watchdog(bound, on_callback=record)
