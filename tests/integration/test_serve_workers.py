"""`serve --workers 2` on the embedded SQLite default: both HTTP processes answer on the one
port; an upload whose chunks land on different processes completes and verifies; a token
issued by one process is accepted by the other; a child killed with `kill -9` is restarted;
SIGTERM on the master stops every process, and a master killed outright takes its
children with it. `worker --processes 2` supervises its child the same way."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.peers.procs import children_of, wait_until
from tests.peers.transship import TransshipServer
from tests.peers.transship_worker import TransshipWorker
from tests.support.imports import API_VERSION, Management

pytestmark = pytest.mark.slow

CHUNK = 64 * 1024


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Connection:
    """One keep-alive connection to the server, so consecutive requests reach the same
    process; `master()` asks that process whether it runs the background work (the master
    of `serve --workers N` does, its children do not)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def master(self) -> bool:
        async with self.session.get(f"{self.url}/readyz") as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
            return bool(body["backgroundWork"])

    async def readiness(self) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/readyz") as r:
            body: dict[str, Any] = await r.json()
            return body


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def on_each_process(url: str, want: set[bool], timeout: float = 30.0) -> None:
    """New connections until each kind in `want` (master: True, child: False) answered (a
    child takes a few seconds to start serving)."""
    seen: set[bool] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with Connection(url) as conn:
            seen.add(await conn.master())
        if want <= seen:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {seen} answered in {timeout} s")


async def test_two_http_processes_share_the_port_and_the_state(
    tmp_path: Path,
    transship_factory: Callable[..., TransshipServer],
    http: aiohttp.ClientSession,
) -> None:
    server = await asyncio.to_thread(transship_factory, extra_args=["--workers", "2"])
    master = server.pid
    await asyncio.to_thread(
        wait_until, lambda: len(children_of(master)) == 1, 20, what="one HTTP child"
    )
    (child,) = children_of(master)
    await on_each_process(server.url, {True, False})

    # An upload whose chunks land on both processes, each on a new connection.
    async with http.post(f"{server.url}/v2/app/blobs/uploads/") as r:
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
    data, served_by = bytearray(), []
    while len(served_by) < 40 and not (len(served_by) >= 6 and len(set(served_by)) == 2):
        chunk = os.urandom(CHUNK)
        async with Connection(server.url) as conn:
            async with conn.session.patch(
                f"{server.url}{location}",
                data=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{len(data)}-{len(data) + CHUNK - 1}",
                },
            ) as r:
                assert r.status == 202, await r.text()
                location = r.headers["Location"]
            served_by.append(await conn.master())
        data += chunk
    assert set(served_by) == {True, False}, served_by
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    separator = "&" if "?" in location else "?"
    async with http.put(f"{server.url}{location}{separator}digest={digest}") as r:
        assert r.status == 201, await r.text()
    for _ in range(4):
        async with (
            Connection(server.url) as conn,
            conn.session.get(f"{server.url}/v2/app/blobs/{digest}") as r,
        ):
            assert r.status == 200 and await r.read() == bytes(data)

    # A token issued by one process, accepted by the other.
    admin = await Management.remote(server.url, http, server.data_dir)
    credential = (server.data_dir / "owner-credential.json").read_text()
    token, issuer = await _token(server.url, credential)
    checked = False
    for _ in range(60):
        async with Connection(server.url) as conn:
            if await conn.master() == issuer:
                continue
            async with conn.session.get(
                f"{server.url}{admin.base}?api-version={API_VERSION}",
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 200, await r.text()
            checked = True
            break
    assert checked, "no connection reached the other process"

    # A child killed outright is replaced; the master's /readyz counts the restart.
    os.kill(child, signal.SIGKILL)
    await asyncio.to_thread(
        wait_until,
        lambda: len(children_of(master) - {child}) == 1,
        20,
        what="a new HTTP child",
    )
    await on_each_process(server.url, {True, False})
    for _ in range(60):
        async with Connection(server.url) as conn:
            body = await conn.readiness()
        if body["backgroundWork"]:
            loops = {loop["name"]: loop for loop in body["loops"]}
            assert loops["http-2"]["restarts"] >= 1 and loops["http-2"]["state"] == "running"
            assert body["status"] == "ready"
            break
    else:
        raise AssertionError("the master never answered")

    # SIGTERM to the master alone stops its children too.
    (child,) = children_of(master)
    os.kill(master, signal.SIGTERM)
    await asyncio.to_thread(
        wait_until,
        lambda: not alive(master) and not alive(child),
        30,
        what="the master and its child stopped",
    )


async def test_children_end_with_a_killed_master(
    transship_factory: Callable[..., TransshipServer],
) -> None:
    server = await asyncio.to_thread(transship_factory, extra_args=["--workers", "3"])
    master = server.pid
    await asyncio.to_thread(
        wait_until, lambda: len(children_of(master)) == 2, 20, what="two HTTP children"
    )
    children = children_of(master)
    os.kill(master, signal.SIGKILL)
    await asyncio.to_thread(
        wait_until,
        lambda: not any(alive(pid) for pid in children),
        30,
        what="the children of the killed master ended",
    )


async def _token(url: str, credential_json: str) -> tuple[str, bool]:
    """An access token for the owner, and which kind of process issued it."""
    import json

    credential = json.loads(credential_json)
    async with Connection(url) as conn:
        async with conn.session.post(
            f"{url}/{credential['tenantId']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": credential["clientId"],
                "client_secret": credential["clientSecret"],
                "scope": f"{url}/.default",
            },
        ) as r:
            body = await r.json()
            assert r.status == 200, body
        return body["access_token"], await conn.master()


async def test_worker_processes_are_supervised_by_their_master(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    worker = TransshipWorker(tmp_path / "worker", extra_args=["--processes", "2"])
    try:
        await asyncio.to_thread(worker.start)
        master = worker.pid
        await asyncio.to_thread(
            wait_until, lambda: len(children_of(master)) == 1, 20, what="one worker child"
        )
        (child,) = children_of(master)
        os.kill(child, signal.SIGKILL)
        await asyncio.to_thread(
            wait_until,
            lambda: len(children_of(master) - {child}) == 1,
            20,
            what="a new worker child",
        )
        async with http.get(f"{worker.url}/readyz") as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        loops = {loop["name"]: loop for loop in body["loops"]}
        assert body["backgroundWork"] is True
        assert {"imports", "import-heartbeats", "webhooks", "gc"} <= set(loops)
        assert loops["worker-2"]["restarts"] >= 1
        (child,) = children_of(master)
        os.kill(master, signal.SIGTERM)
        await asyncio.to_thread(
            wait_until,
            lambda: not alive(master) and not alive(child),
            30,
            what="the worker and its child stopped",
        )
    finally:
        await asyncio.to_thread(worker.stop)
