"""Keeps a server process's signing keys in step with the database."""

from __future__ import annotations

import asyncio

from transship.identity.tokens import SigningKeys
from transship.worker.supervisor import Beat

# A key rotated by another process (or `transship keys rotate`) becomes this process's
# signing key within this time; tokens signed meanwhile with the retired key stay valid.
REFRESH_SECONDS = 60.0


async def refresh_keys_periodically(
    keys: SigningKeys, beat: Beat, interval_seconds: float = REFRESH_SECONDS
) -> None:
    """Reload the keys every `interval_seconds` until cancelled; beats after each reload.
    Raises what a reload raises (the supervisor logs it and restarts the loop)."""
    while True:
        await asyncio.sleep(interval_seconds)
        await keys.refresh()
        beat()
