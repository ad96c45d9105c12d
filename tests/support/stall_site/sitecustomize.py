"""Imported by Python at start-up in the servers tests start while the stall guard is on
(tests/peers/transship.py puts this directory on their PYTHONPATH): watch the event loops."""

import os
from pathlib import Path

if os.environ.get("TRANSSHIP_TEST_LOOP_STALL_MS") and os.environ.get(
    "TRANSSHIP_TEST_LOOP_STALL_DIR"
):
    from tests.support.loop_stall_child import install

    install(
        float(os.environ["TRANSSHIP_TEST_LOOP_STALL_MS"]),
        Path(os.environ["TRANSSHIP_TEST_LOOP_STALL_DIR"]),
    )
