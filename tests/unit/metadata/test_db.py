"""`Database`: the readiness ping answers through the async driver, and fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from transship.metadata.db import Database


async def test_ping_answers_when_the_database_is_reachable(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    try:
        await database.ping()
    finally:
        await database.close()


async def test_ping_raises_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    # The database file becomes a directory before the first connection: SQLite cannot open it.
    (tmp_path / "m.db").unlink()
    (tmp_path / "m.db").mkdir()
    try:
        with pytest.raises(Exception) as raised:
            await database.ping()
        assert "unable to open database file" in str(raised.value)
    finally:
        await database.close()
