"""One rate-limit budget per upstream, against a Docker-Hub-style upstream: a real
docker-registry with bearer tokens from the real token server, behind a proxy that counts
pulls per credential, sends `ratelimit-*` headers and answers 429 + Retry-After once the
budget is spent (tests/peers/rate_limited.py). On SQLite and PostgreSQL.

Imports spend exactly the pulls the upstream counts (a re-import of an unchanged image
spends none: HEAD, then the target's own copy); an import that needs more pulls than the
budget has waits (its operation says so), resumes after the window and succeeds; a 429
mid-import is waited out; a wait can be cancelled, and one beyond the maximum fails with
UpstreamRateLimited; the budget shows in the API, /metrics and the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from tests.integration.conftest import TARGET, ImportEnv, ImportEnvFactory, insecure, small_index
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, push_layout_http
from tests.peers.rate_limited import ANONYMOUS, RateLimitedRegistry
from tests.peers.transship import TransshipServer
from tests.peers.transship_worker import TransshipWorker
from tests.support.imports import Management, assert_failed, assert_succeeded
from transship.cli.main import main

# Two platforms: an index and two image manifests, three pulls per fresh import.
PULLS_PER_IMPORT = 3
WAITING = "waiting for upstream rate limit until "
FAST = {"upstream_rate_limit_recheck": 0.2}


async def pushed(
    tmp_path: Path, registry: DistributionRegistry, repository: str = "team/app"
) -> BuiltIndex:
    index = await asyncio.to_thread(
        small_index, tmp_path, seed=repository, platforms=("linux/amd64", "linux/arm64")
    )
    # Straight to the registry: the proxy counts imports only.
    await asyncio.to_thread(
        push_layout_http, index, registry.url, repository, "v1", auth=registry.auth
    )
    return index


def body(
    hub: RateLimitedRegistry,
    registry: DistributionRegistry | None,
    tag: str = "app:v1",
    *,
    image: str = "team/app:v1",
    force: bool = False,
) -> dict[str, Any]:
    source: dict[str, Any] = {"registryUri": hub.host, "sourceImage": image}
    if registry is not None:
        source["credentials"] = {"username": registry.username, "password": registry.password}
    answer: dict[str, Any] = {"source": source, "targetTags": [tag]}
    if force:
        answer["mode"] = "Force"
    return answer


async def budgets(admin: Management) -> dict[tuple[str, str | None], dict[str, Any]]:
    status, answer, _ = await admin.call("GET", "/transship/v1/upstreamBudgets")
    assert status == 200, answer
    return {(b["host"], b["user"]): b for b in answer["value"]}


async def test_imports_spend_the_pulls_the_upstream_counts(
    tmp_path: Path,
    database_url: str | None,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    user = distribution_token.username
    assert user is not None
    index = await pushed(tmp_path, distribution_token)
    env = await import_env(database_url, upstreams=insecure(hub.host))

    assert_succeeded(await env.run_import(body(hub, distribution_token)))
    got = await env.manifest("app", "v1")
    assert got.status == 200 and got.body == index.index_bytes
    assert hub.pulls == {user: PULLS_PER_IMPORT} and not hub.refused

    seen = (await budgets(env.admin))[(hub.host, user)]
    assert seen["limit"] == 100 and seen["windowSeconds"] == 3600
    assert seen["remaining"] == hub.remaining(user) == 100 - PULLS_PER_IMPORT
    assert seen["pulls"] == PULLS_PER_IMPORT and seen["blockedUntil"] is None

    # An unchanged image again, under another tag: a HEAD, then the target's own copies.
    heads = hub.heads[user]
    assert_succeeded(await env.run_import(body(hub, distribution_token, "app:again")))
    assert hub.pulls == {user: PULLS_PER_IMPORT}, "a held manifest cost a pull"
    assert hub.heads[user] == heads + 1
    got = await env.manifest("app", "again")
    assert got.status == 200 and got.body == index.index_bytes

    # Anonymous pulls are another budget.
    assert_succeeded(await env.run_import(body(hub, None, "anon:v1")))
    assert hub.pulls[ANONYMOUS] == 0  # held too: no pull at all
    found = await budgets(env.admin)
    assert found[(hub.host, None)]["pulls"] == 0
    assert found[(hub.host, user)]["pulls"] == PULLS_PER_IMPORT


async def test_a_spent_budget_is_waited_for_and_the_import_succeeds(
    tmp_path: Path,
    database_url: str | None,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    user = distribution_token.username
    hub.limit, hub.window = 2, 3
    index = await pushed(tmp_path, distribution_token)
    env = await import_env(database_url, upstreams=insecure(hub.host), **FAST)
    began = time.monotonic()
    operation = await env.admin.start_import(TARGET, body(hub, distribution_token))

    waiting = await env.admin.wait_for(
        operation,
        lambda s: "waiting" in s["properties"] or s["status"] != "InProgress",
        timeout=30,
        what="the rate-limit wait",
    )
    shown = waiting["properties"]["waiting"]
    assert shown["host"] == hub.host
    assert shown["message"].startswith(WAITING + shown["until"][:19]), shown
    assert waiting["status"] == "InProgress"

    final = await env.admin.wait(operation, timeout=60)
    assert_succeeded(final)
    assert "waiting" not in final["properties"]
    assert time.monotonic() - began >= hub.window
    # Transship waited for the window instead of asking and being refused.
    assert hub.pulls[user] == PULLS_PER_IMPORT and not hub.refused
    got = await env.manifest("app", "v1")
    assert got.status == 200 and got.body == index.index_bytes


async def test_a_429_mid_import_is_waited_out(
    tmp_path: Path,
    database_url: str | None,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    user = distribution_token.username
    await pushed(tmp_path, distribution_token)
    # upstream_retry_attempts = 1: a 429 retried like other statuses would fail the import.
    env = await import_env(
        database_url, upstreams=insecure(hub.host), upstream_retry_attempts=1, **FAST
    )
    hub.inject_429(retry_after=2, by_digest=True)
    began = time.monotonic()
    final = await env.run_import(body(hub, distribution_token))
    assert_succeeded(final)
    assert time.monotonic() - began >= 2
    assert hub.refused == {user: 1}
    assert hub.pulls[user] == PULLS_PER_IMPORT


async def test_cancel_during_a_wait(
    tmp_path: Path,
    database_url: str | None,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    hub.limit, hub.window = 1, 600
    await pushed(tmp_path, distribution_token)
    env = await import_env(database_url, upstreams=insecure(hub.host), **FAST)
    operation = await env.admin.start_import(TARGET, body(hub, distribution_token))
    await env.admin.wait_for(
        operation, lambda s: "waiting" in s["properties"], timeout=30, what="the wait"
    )
    status, _ = await env.admin.cancel(operation)
    assert status == 200
    final = await env.admin.wait(operation, timeout=15)
    assert final["status"] == "Canceled", final
    assert "waiting" not in final["properties"]
    assert not hub.refused
    assert await env.tags("app") is None


async def test_a_wait_beyond_the_maximum_fails_clearly(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    hub.limit, hub.window = 1, 600
    await pushed(tmp_path, distribution_token)
    env = await import_env(upstreams=insecure(hub.host), upstream_rate_limit_max_wait=5, **FAST)
    final = await env.run_import(body(hub, distribution_token))
    assert_failed(final, "UpstreamRateLimited")
    assert hub.host in final["error"]["message"]
    assert "upstream_rate_limit_max_wait" in final["error"]["message"]


async def test_a_dry_run_spends_real_pulls_and_never_waits(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    user = distribution_token.username
    hub.limit, hub.window = PULLS_PER_IMPORT, 600
    await pushed(tmp_path, distribution_token)
    env = await import_env(upstreams=insecure(hub.host), **FAST)
    request = {**body(hub, distribution_token), "dryRun": True}

    status, plan, _ = await env.admin.call(
        "POST", f"{env.admin.base}/{TARGET}/importImage", request
    )
    assert status == 200, plan
    assert plan["spentRequests"]["pulls"] == PULLS_PER_IMPORT
    # The dry run's GETs were pulls the upstream counted, and the budget knows it.
    assert hub.pulls[user] == PULLS_PER_IMPORT
    assert (await budgets(env.admin))[(hub.host, user)]["remaining"] == 0

    # Spent: a second dry run fails at once (an HTTP request cannot wait for a window).
    began = time.monotonic()
    status, error, _ = await env.admin.call(
        "POST", f"{env.admin.base}/{TARGET}/importImage", request
    )
    assert time.monotonic() - began < 10
    assert status == 400 and error["error"]["code"] == "UpstreamRateLimited", error
    assert hub.host in error["error"]["message"]
    assert "a dry run does not wait" in error["error"]["message"]
    assert hub.pulls[user] == PULLS_PER_IMPORT and not hub.refused


async def test_the_budget_shows_in_metrics_and_the_cli(
    tmp_path: Path,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = distribution_token.username
    await pushed(tmp_path, distribution_token)
    env = await import_env(upstreams=insecure(hub.host))
    assert_succeeded(await env.run_import(body(hub, distribution_token)))
    left = 100 - PULLS_PER_IMPORT

    async with env.reg.http.get(env.reg.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    labels = f'{{host="{hub.host}",user="{user}"}}'
    assert f"transship_upstream_ratelimit_remaining{labels} {left}.0" in text
    assert f"transship_upstream_ratelimit_limit{labels} 100.0" in text
    assert f"transship_upstream_pulls_total{labels} {PULLS_PER_IMPORT}.0" in text
    assert distribution_token.password not in text

    found = await asyncio.to_thread(cli_budgets, env, tmp_path, monkeypatch)
    assert [(b["host"], b["user"], b["remaining"]) for b in found] == [(hub.host, user, left)]
    table = await asyncio.to_thread(cli_budgets_table, env, tmp_path, monkeypatch)
    assert hub.host in table and user in table and str(left) in table


def _login(env: ImportEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runner = CliRunner()
    credential = env.data_dir / "owner-credential.json"
    result = runner.invoke(
        main, ["login", "--server", env.reg.url, "--credential-file", str(credential)]
    )
    assert result.exit_code == 0, result.output
    return runner


def cli_budgets(
    env: ImportEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    runner = _login(env, tmp_path, monkeypatch)
    result = runner.invoke(main, ["upstream", "budgets", "-o", "json"])
    assert result.exit_code == 0, result.output
    answer: list[dict[str, Any]] = json.loads(result.stdout)
    return answer


def cli_budgets_table(env: ImportEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    runner = _login(env, tmp_path, monkeypatch)
    result = runner.invoke(main, ["upstream", "budgets"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.slow
async def test_a_server_and_a_worker_share_one_budget(
    tmp_path: Path,
    database_url: str | None,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
    transship_factory: Callable[..., TransshipServer],
) -> None:
    # Two images, one import each, one in the server and one in a `transship worker` (one
    # import at a time each): the budget of 4 pulls is the service's, not each process's,
    # so the six pulls they need take two windows, and the upstream never refuses one.
    user = distribution_token.username
    hub.limit, hub.window = 4, 4
    await pushed(tmp_path / "one", distribution_token, "team/one")
    await pushed(tmp_path / "two", distribution_token, "team/two")
    config = tmp_path / "transship.toml"
    config.write_text(
        "import_workers = 1\n"
        "upstream_rate_limit_recheck = 0.2\n"
        f'[upstreams."{hub.host}"]\n'
        "insecure = true\n"
    )
    env = {"TRANSSHIP_CONFIG": str(config)}
    server = await asyncio.to_thread(transship_factory, database_url=database_url, env=env)
    worker = TransshipWorker(
        tmp_path / "worker", data_dir=server.data_dir, database_url=database_url, env=env
    )
    await asyncio.to_thread(worker.start)
    try:
        async with aiohttp.ClientSession() as http:
            admin = await Management.remote(server.url, http, server.data_dir)
            await admin.create_registry(TARGET)
            began = time.monotonic()
            operations = [
                await admin.start_import(
                    TARGET, body(hub, distribution_token, f"{n}:v1", image=f"team/{n}:v1")
                )
                for n in ("one", "two")
            ]
            finals = [await admin.wait(op, timeout=90) for op in operations]
            elapsed = time.monotonic() - began
            for final in finals:
                assert_succeeded(final)
            found = await budgets(admin)
    finally:
        await asyncio.to_thread(worker.stop)
    assert not hub.refused, hub.refused
    assert hub.pulls[user] == 2 * PULLS_PER_IMPORT
    assert found[(hub.host, user)]["pulls"] == 2 * PULLS_PER_IMPORT, found
    assert elapsed >= hub.window
