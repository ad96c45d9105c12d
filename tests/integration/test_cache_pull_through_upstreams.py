"""Pull-through from the other kinds of upstream: a Docker-Hub-style rate-limited registry
with token auth, reached with the rule's credentials (each manifest pull spent once, none by
the import job or a second pull), and a second Transship service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.integration.conftest import TARGET, ImportEnv, insecure, small_index
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, push_layout_http
from tests.peers.rate_limited import RateLimitedRegistry
from tests.support.app import make_settings, running_registry
from tests.support.cache_rules import (
    Rule,
    StaticCacheRules,
    cached_registry,
    pull_all,
    wait_for_jobs,
)
from tests.support.imports import Management
from transship.imports.ports import Credentials


@asynccontextmanager
async def pulling_through(
    tmp_path: Path, database_url: str | None, rule: Rule
) -> AsyncIterator[ImportEnv]:
    """A server whose registry pulls `cache/*` through `rule` (its host plain HTTP)."""
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url, upstreams=insecure(rule.host))
    async with cached_registry(settings, StaticCacheRules([rule])) as reg:
        admin = Management(reg, data_dir)
        await admin.create_registry(TARGET)
        yield ImportEnv(reg, admin, data_dir, database_url)


async def test_a_rate_limited_token_upstream_spends_one_pull_per_manifest(
    tmp_path: Path,
    database_url: str | None,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    user, password = distribution_token.username, distribution_token.password
    assert user is not None and password is not None
    index = await asyncio.to_thread(small_index, tmp_path, platforms=("linux/amd64", "linux/arm64"))
    await asyncio.to_thread(
        push_layout_http, index, distribution_token.url, "team/app", "v1",
        auth=distribution_token.auth,
    )  # fmt: skip
    rule = Rule("hub", "cache/*", hub.host, "team/*", Credentials(user, password))
    async with pulling_through(tmp_path, database_url, rule) as env:
        await pull_all(env, "cache/app", "v1", index)
        (done,) = await wait_for_jobs(env, 1)
        assert done["status"] == "Succeeded", done
        assert password not in str(done)
        # The index and each platform's manifest, pulled once each with the rule's
        # credentials (bearer tokens from the token server): the job read what the pull
        # fetched, and a second pull is served locally.
        assert hub.pulls[user] == 1 + len(index.children)
        assert hub.pulls[""] == 0 and hub.refused[user] == 0
        await pull_all(env, "cache/app", "v1", index)
        assert hub.pulls[user] == 1 + len(index.children)


async def test_a_second_transship_is_an_upstream_like_any_registry(
    tmp_path: Path, database_url: str | None
) -> None:
    index: BuiltIndex = await asyncio.to_thread(small_index, tmp_path)
    async with running_registry(make_settings(tmp_path / "upstream", None)) as upstream:
        await asyncio.to_thread(push_layout_http, index, upstream.url, "team/app", "v1")
        host = upstream.url.removeprefix("http://")
        async with pulling_through(
            tmp_path, database_url, Rule("up", "cache/*", host, "team/*")
        ) as env:
            await pull_all(env, "cache/app", "v1", index)
            (done,) = await wait_for_jobs(env, 1)
            assert done["status"] == "Succeeded", done
            assert await env.tags("cache/app") == ["v1"]
            await env.assert_consistent()
