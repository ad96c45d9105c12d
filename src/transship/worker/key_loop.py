"""Keeps a server process's signing keys in step with the database."""

from __future__ import annotations

import asyncio
import logging

from transship.identity.tokens import SigningKeys

log = logging.getLogger(__name__)

# A key rotated by another process (or `transship keys rotate`) becomes this process's
# signing key within this time; tokens signed meanwhile with the retired key stay valid.
REFRESH_SECONDS = 60.0


async def refresh_keys_periodically(keys: SigningKeys, interval_seconds: float = REFRESH_SECONDS) -> None:
    """Reload the keys every `interval_seconds` until cancelled; a failure is logged."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await keys.refresh()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reloading the token-signing keys failed; will retry in %ss", interval_seconds)
