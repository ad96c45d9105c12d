"""Sync rules run by two `transship worker` processes for a `serve --no-background-work`, on
SQLite and PostgreSQL: the processes race for a rule due every second, and its runs never
overlap (one claim at a time), each listing the upstream once; a run asked for through the
API process is run by a worker."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import TARGET, ProxyFactory
from tests.peers.distribution import DistributionRegistry
from tests.peers.transship import TransshipServer
from tests.peers.transship_worker import TransshipWorker
from tests.support.batches import push_small_images
from tests.support.imports import Management
from tests.support.sync import put_rule, runs, start_run, wait_run

pytestmark = pytest.mark.slow


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., TransshipWorker]]:
    """``make(name, **kwargs)`` → a started :class:`TransshipWorker`; all stopped after."""
    workers: list[TransshipWorker] = []

    def make(name: str, **kwargs: Any) -> TransshipWorker:
        worker = TransshipWorker(tmp_path / name, **kwargs)
        workers.append(worker)
        return worker.start()

    try:
        yield make
    finally:
        for worker in reversed(workers):
            worker.stop()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_two_workers_never_run_a_rule_at_once(
    tmp_path: Path,
    database_url: str | None,
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,
    transship_factory: Callable[..., TransshipServer],
    worker_factory: Callable[..., TransshipWorker],
    http: aiohttp.ClientSession,
) -> None:
    await push_small_images(tmp_path, distribution_anon.url, ["team/app"], tag="1.0")
    proxy = await upstream_proxy(distribution_anon.url)
    config = tmp_path / "transship.toml"
    config.write_text(
        "gc_interval_seconds = 0\n"
        "sync_poll_seconds = 0.2\n"
        "sync_min_interval_seconds = 1\n"
        f'[upstreams."{proxy.host}"]\n'
        "insecure = true\n"
    )
    env = {"TRANSSHIP_CONFIG": str(config)}
    server = await asyncio.to_thread(
        transship_factory,
        database_url=database_url,
        env=env,
        extra_args=["--no-background-work"],
    )
    admin = await Management.remote(server.url, http, server.data_dir)
    await admin.create_registry(TARGET)
    for name in ("worker-a", "worker-b"):
        await asyncio.to_thread(
            worker_factory, name, data_dir=server.data_dir, database_url=database_url, env=env
        )
    status, rule = await put_rule(
        admin,
        TARGET,
        "raced",
        {"sourceRegistry": proxy.host, "sourceRepositories": ["team/app"], "intervalSeconds": 1},
    )
    assert status == 201, rule

    # A run asked for through the API process (which runs no background work).
    manual = await start_run(admin, TARGET, "raced")
    final = await wait_run(admin, TARGET, "raced", manual["name"], timeout=30)
    assert final["state"] == "succeeded", final

    deadline = asyncio.get_running_loop().time() + 60
    while True:
        found = await runs(admin, TARGET, "raced")
        ended = [r for r in found if r["state"] not in ("queued", "running")]
        if len(ended) >= 5:
            break
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.3)
    assert all(r["state"] == "succeeded" for r in ended), ended
    spans = sorted((_at(r["startTime"]), _at(r["endTime"])) for r in ended)
    for (_, previous_end), (start, _) in itertools.pairwise(spans):
        assert start >= previous_end, spans
    # Each run listed the upstream once: no run went twice, no other run went unrecorded.
    listed = len(proxy.requests_to("/tags/list"))
    assert len(ended) <= listed <= len(await runs(admin, TARGET, "raced")), listed
    assert {r["trigger"] for r in ended} == {"manual", "scheduled"}
