"""Operations endpoints: liveness, readiness (which really checks its dependencies), metrics."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import make_settings, running_registry
from transship.api import ops
from transship.metadata.jobs import JobQueries
from transship.worker import loops
from transship.worker.supervisor import Backoff, LoopState


async def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        async with reg.request("GET", "/healthz") as r:
            assert r.status == 200
        async with reg.request("GET", "/readyz") as r:
            assert r.status == 200
            ready = await r.json()
        assert ready["status"] == "ready" and ready["problems"] == []
        states = {loop["name"]: loop["state"] for loop in ready["loops"]}
        assert states == {
            "imports": "running",
            "import-heartbeats": "running",
            "signing-keys": "running",
            "webhooks": "running",
            "sync": "running",
            "change-feed": "running",
        }
        await reg.push_blob("app", b"counted")
        async with reg.request("GET", "/v2/app/blobs/sha256:" + "0" * 64) as r:
            assert r.status == 404
        async with reg.request("GET", "/metrics") as r:
            text = await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        assert (
            'transship_http_requests_total{method="POST",route="/v2/{name}/blobs/uploads/",'
            'status="201"} 1.0' in text
        )
        assert (
            'transship_http_requests_total{method="GET",route="/v2/{name}/blobs/{digest}",'
            'status="404"} 1.0' in text
        )
        assert "transship_http_request_seconds_total" in text


async def test_readiness_fails_when_the_blob_store_is_gone(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        shutil.rmtree(tmp_path / "data" / "blobs")
        async with reg.request("GET", "/readyz") as r:
            assert r.status == 503
            assert "blob" in await r.text()


async def test_readiness_names_a_background_loop_that_keeps_crashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: JobQueries, *args: Any, **kwargs: Any) -> Any:
        raise OSError("the database connection was reset")

    monkeypatch.setattr(JobQueries, "claim_job", broken)
    # The loop stays down (backing off) for the whole test, and down at all is too long.
    monkeypatch.setattr(loops, "RESTART_BACKOFF", Backoff(initial_seconds=3600))
    settings = make_settings(tmp_path / "data", None, loop_unready_seconds=0)
    async with running_registry(settings) as reg:
        supervisor = reg.server.app[ops.LOOPS]
        await asyncio.wait_for(
            supervisor.wait_for(lambda s: s["imports"].state is LoopState.BACKING_OFF), 30
        )
        async with reg.request("GET", "/readyz") as r:
            assert r.status == 503
            body = await r.json()
        assert body["status"] == "unavailable"
        assert len(body["problems"]) == 1
        assert "imports" in body["problems"][0] and "OSError" in body["problems"][0]
        by_name = {loop["name"]: loop for loop in body["loops"]}
        assert by_name["imports"]["state"] == "backing_off"
        assert by_name["imports"]["lastError"] == "OSError"  # the type only, never the text
        assert by_name["import-heartbeats"]["state"] == "running"
