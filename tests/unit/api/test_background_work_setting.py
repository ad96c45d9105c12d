"""`background_work = false` (`serve --no-background-work`): the process serves the registry
and its API, runs only the signing-key refresh, and says so on /readyz; an import submitted
to it stays queued for a worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.app import make_settings, running_registry
from tests.support.imports import Management


async def test_an_http_only_process_runs_no_background_work(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", None, background_work=False)
    async with running_registry(settings) as reg:
        async with reg.request("GET", "/readyz") as r:
            assert r.status == 200
            ready = await r.json()
        assert ready["backgroundWork"] is False
        assert [loop["name"] for loop in ready["loops"]] == ["signing-keys", "change-feed"]
        admin = Management(reg, settings.data_dir)
        operation = await admin.start_import(
            "default",
            {
                "source": {"registryUri": "upstream.invalid", "sourceImage": "team/app:v1"},
                "targetTags": ["app:v1"],
            },
        )
        assert operation.status == 202, operation.body
        # A process with the background work claims a job at once (the submission wakes
        # its claim loop); give it time it would need.
        await asyncio.sleep(1.0)
        status = await admin.status(operation)
        assert status["status"] == "InProgress"
        assert status["properties"]["state"] == "queued" and status["properties"]["attempts"] == 0


async def test_the_default_process_says_it_runs_the_background_work(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        async with reg.request("GET", "/readyz") as r:
            ready = await r.json()
        assert ready["backgroundWork"] is True
        assert "imports" in {loop["name"] for loop in ready["loops"]}
