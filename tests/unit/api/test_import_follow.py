"""`GET /transship/v1/subscriptions/{sub}/importOperations/{id}`, the long poll, against the
real application: the status body and an ETag; 304 for the version named; a wait that a
cancel ends at once (not its bound); validation; the ARM status URL unchanged; and a server
shutdown that answers a pending long poll instead of waiting for it.

The background loops are stopped before the jobs are submitted, so a job stays queued until
the test changes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.imports import Management, Operation
from transship.api import ops

LONG = 25  # seconds: longer than any of these tests may take


@dataclass
class Env:
    reg: RunningRegistry
    admin: Management
    operation: Operation

    @property
    def path(self) -> str:
        return (
            f"/transship/v1/subscriptions/{self.admin.subscription_id}"
            f"/importOperations/{self.operation.id}"
        )

    async def get(
        self,
        etag: str | None = None,
        wait: str | None = None,
        *,
        path: str | None = None,
        authorization: str | None = "admin",
    ) -> tuple[int, Any, CIMultiDict[str]]:
        headers = {}
        if authorization == "admin":
            headers["Authorization"] = self.admin.authorization
        if etag is not None:
            headers["If-None-Match"] = etag
        query = {} if wait is None else {"waitSeconds": wait}
        async with self.reg.http.get(
            self.reg.url + (path or self.path),
            params=query,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as r:
            text = await r.text()
            body = await r.json() if text else None
            return r.status, body, r.headers.copy()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = make_settings(tmp_path / "data", None, egress={"default": "deny"})
    async with running_registry(settings) as reg:
        await reg.server.app[ops.LOOPS].stop()  # no worker: submitted jobs stay queued
        admin = Management(reg, tmp_path / "data")
        await admin.create_registry("myregistry")
        operation = await admin.start_import(
            "myregistry",
            {"source": {"registryUri": "registry.example.com", "sourceImage": "app:1"}},
        )
        assert operation.status == 202, operation.body
        yield Env(reg, admin, operation)


async def test_the_status_with_its_version_and_304_for_that_version(env: Env) -> None:
    status, body, headers = await env.get()
    assert status == 200
    assert body == await env.admin.status(env.operation)  # the ARM status URL's body
    assert body["status"] == "InProgress" and body["properties"]["state"] == "queued"
    etag = headers["ETag"]
    assert etag.startswith('"') and headers["Cache-Control"] == "no-store"
    assert "Retry-After" not in headers
    # The version named, no wait asked: answered at once.
    status, body, headers = await env.get(etag)
    assert (status, body, headers["ETag"]) == (304, None, etag)
    # Another version named: the current one, whatever the wait.
    status, body, headers = await env.get('"older"', str(LONG))
    assert status == 200 and headers["ETag"] == etag


async def test_a_wait_ends_with_304_when_nothing_changes(env: Env) -> None:
    _, _, headers = await env.get()
    loop = asyncio.get_running_loop()
    began = loop.time()
    status, _, answered = await env.get(headers["ETag"], "0.5")
    assert status == 304 and answered["ETag"] == headers["ETag"]
    assert loop.time() - began >= 0.45


async def test_a_cancel_answers_the_waiting_follower_at_once(env: Env) -> None:
    _, _, headers = await env.get()
    follower = asyncio.create_task(env.get(headers["ETag"], str(LONG)))
    services = env.reg.services
    async with asyncio.timeout(LONG / 2):
        while services.imports.signals.followers == 0:
            await asyncio.sleep(0.01)
        status, canceled = await env.admin.cancel(env.operation)
        assert status == 200 and canceled["status"] == "Canceled"
        status, body, answered = await follower  # long before its wait is over
    assert status == 200 and body["status"] == "Canceled"
    assert answered["ETag"] != headers["ETag"]
    # Ended: answered at once even for its own version, whatever the wait.
    async with asyncio.timeout(LONG / 2):
        status, _, _ = await env.get(answered["ETag"], str(LONG))
    assert status == 304


@pytest.mark.parametrize("wait", ["31", "-1", "soon", "nan", "inf", ""])
async def test_a_wait_out_of_bounds_is_an_invalid_parameter(env: Env, wait: str) -> None:
    status, body, _ = await env.get('"x"', wait)
    assert status == 400
    assert body["error"]["code"] == "InvalidParameter"
    assert body["error"]["target"] == "waitSeconds"


async def test_unknown_operations_and_callers(env: Env) -> None:
    other = env.path.rsplit("/", 1)[0] + "/" + "0" * 32
    status, body, _ = await env.get(path=other)
    assert status == 404 and body["error"]["code"] == "OperationNotFound"
    status, body, _ = await env.get(path=env.path.replace(env.admin.subscription_id, "nope"))
    assert status == 404
    status, body, _ = await env.get(authorization=None)
    assert status == 401


async def test_a_shutdown_answers_a_pending_long_poll(env: Env) -> None:
    _, _, headers = await env.get()
    follower = asyncio.create_task(env.get(headers["ETag"], str(LONG)))
    async with asyncio.timeout(LONG / 2):
        while env.reg.services.imports.signals.followers == 0:
            await asyncio.sleep(0.01)
        # The server's shutdown waits for requests in progress; this one is answered now.
        await env.reg.server.close()
        status, _, answered = await follower
    assert status == 304 and answered["ETag"] == headers["ETag"]
