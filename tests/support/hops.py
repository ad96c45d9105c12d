"""Counting a loop's hand-offs to threads: what a test asserts to keep a path from
drifting back to one hop per file operation or statement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


def count_hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The functions the running loop hands to a thread from now on (`asyncio.to_thread`
    and SQLite's write thread go through `run_in_executor` too)."""
    loop = asyncio.get_running_loop()
    handed: list[object] = []
    original = loop.run_in_executor

    def counting(executor: object, func: Callable[..., object], *args: object) -> object:
        handed.append(func)
        return original(executor, func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "run_in_executor", counting)
    return handed
