"""Upload sessions survive restarts and shrug off bytes left by an interrupted request."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.support.app import make_settings, running_registry, sha256


async def test_a_session_started_before_a_restart_continues_after_it(
    tmp_path: Path, database_url: str | None
) -> None:
    data = os.urandom(300_000)
    settings = make_settings(tmp_path / "data", database_url)
    async with running_registry(settings) as reg:
        async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
            location = r.headers["Location"]
        async with reg.request(
            "PATCH", location, data=data[:100_000], headers={"Content-Range": "0-99999"}
        ) as r:
            assert r.status == 202
    async with running_registry(settings) as reg:  # a new process: no hash state in memory
        async with reg.request("GET", location) as r:
            assert r.status == 204
            assert r.headers["Range"] == "0-99999"
        async with reg.request(
            "PATCH",
            location,
            data=data[100_000:],
            headers={"Content-Range": f"100000-{len(data) - 1}"},
        ) as r:
            assert r.status == 202
        async with reg.request("PUT", f"{location}?digest={sha256(data)}") as r:
            assert r.status == 201
        async with reg.request("GET", f"/v2/app/blobs/{sha256(data)}") as r:
            assert await r.read() == data


async def test_bytes_past_the_committed_offset_are_dropped(
    tmp_path: Path, database_url: str | None
) -> None:
    """A crash mid-PATCH leaves a partial chunk in the staging file; the session resumes at
    the last acknowledged offset and the final digest is still right."""
    data = b"A" * 1000 + b"B" * 1000
    settings = make_settings(tmp_path / "data", database_url)
    async with running_registry(settings) as reg:
        async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
            location, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
        async with reg.request(
            "PATCH", location, data=data[:1000], headers={"Content-Range": "0-999"}
        ) as r:
            assert r.status == 202
    with (tmp_path / "data" / "uploads" / upload_id).open("ab") as staged:
        staged.write(b"half a chunk that was never acknowledged")
    async with running_registry(settings) as reg:
        async with reg.request(
            "PATCH", location, data=data[1000:], headers={"Content-Range": "1000-1999"}
        ) as r:
            assert r.status == 202
        async with reg.request("PUT", f"{location}?digest={sha256(data)}") as r:
            assert r.status == 201, await r.text()


async def test_a_failed_chunk_does_not_corrupt_the_hash_state(
    tmp_path: Path, database_url: str | None
) -> None:
    data = b"0123456789" * 100
    async with running_registry(make_settings(tmp_path / "data", database_url)) as reg:
        async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
            location = r.headers["Location"]
        async with reg.request(
            "PATCH", location, data=data[:500], headers={"Content-Range": "0-499"}
        ) as r:
            assert r.status == 202
        # Declares more than it sends: refused, and the offset stays at 500.
        async with reg.request(
            "PATCH", location, data=b"zz", headers={"Content-Range": "500-510"}
        ) as r:
            assert r.status == 416
        async with reg.request("GET", location) as r:
            assert r.headers["Range"] == "0-499"
        async with reg.request(
            "PATCH", location, data=data[500:], headers={"Content-Range": "500-999"}
        ) as r:
            assert r.status == 202
        async with reg.request("PUT", f"{location}?digest={sha256(data)}") as r:
            assert r.status == 201


async def test_concurrent_chunks_to_one_session_are_serialised(
    tmp_path: Path, database_url: str | None
) -> None:
    async with running_registry(make_settings(tmp_path / "data", database_url)) as reg:
        async with reg.request("POST", "/v2/app/blobs/uploads/") as r:
            location = r.headers["Location"]

        async def patch() -> int:
            async with reg.request(
                "PATCH", location, data=b"x" * 1000, headers={"Content-Range": "0-999"}
            ) as r:
                return r.status

        statuses = sorted(await asyncio.gather(*(patch() for _ in range(5))))
        assert statuses == [202, 416, 416, 416, 416]
        async with reg.request("PUT", f"{location}?digest={sha256(b'x' * 1000)}") as r:
            assert r.status == 201
