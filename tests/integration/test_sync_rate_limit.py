"""Scheduled sync against a Docker-Hub-style rate-limited upstream with token auth
(tests/peers/rate_limited.py in front of docker-registry): the rule's sealed credentials get
bearer tokens for the tag list and the HEADs, and a run without changes spends no pull, so it
succeeds even when the caller's pull budget is spent. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.conftest import TARGET, ImportEnvFactory, insecure, small_index
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import push_layout_http
from tests.peers.rate_limited import RateLimitedRegistry
from tests.support.sync import outcomes, put_rule, run_rule


async def test_a_no_change_run_spends_no_pull_even_with_the_budget_spent(
    tmp_path: Path,
    database_url: str | None,
    import_env: ImportEnvFactory,
    distribution_token: DistributionRegistry,
    hub: RateLimitedRegistry,
) -> None:
    user = distribution_token.username
    assert user is not None and distribution_token.password is not None
    for tag in ("1.0", "2.0"):
        index = await asyncio.to_thread(
            small_index, tmp_path, seed=tag, platforms=("linux/amd64", "linux/arm64")
        )
        await asyncio.to_thread(
            push_layout_http, index, distribution_token.url, "team/app", tag,
            auth=distribution_token.auth,
        )  # fmt: skip
    env = await import_env(database_url, upstreams=insecure(hub.host), sync_min_interval_seconds=1)
    status, rule = await put_rule(
        env.admin,
        TARGET,
        "hub-mirror",
        {
            "sourceRegistry": hub.host,
            "sourceRepositories": ["team/app"],
            "credentials": {"username": user, "password": distribution_token.password},
        },
    )
    assert status == 201, rule
    assert distribution_token.password not in str(rule)

    first = await run_rule(env.admin, TARGET, "hub-mirror")
    assert outcomes(first) == {"1.0": "copied", "2.0": "copied"}, first
    spent = hub.pulls[user]
    assert spent > 0 and hub.refused[user] == 0
    # The caller's budget is gone: any pull now would be refused with 429.
    hub.limit = spent
    heads = hub.heads[user]

    again = await run_rule(env.admin, TARGET, "hub-mirror")
    assert again["state"] == "succeeded", again
    assert outcomes(again) == {"1.0": "unchanged", "2.0": "unchanged"}
    assert hub.pulls[user] == spent and hub.refused[user] == 0
    assert hub.heads[user] == heads + 2
    assert again["upstreamRequests"]["pulls"] == 0
