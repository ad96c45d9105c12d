"""Sync rules in tests: the rule API driven through a `Management`, and waiting for runs."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.support.imports import Management

UNFINISHED = ("queued", "running")


def rule_path(registry: str, rule: str) -> str:
    return f"/transship/v1/registries/{registry}/syncRules/{rule}"


async def put_rule(
    admin: Management, registry: str, rule: str, body: dict[str, Any], method: str = "PUT"
) -> tuple[int, Any]:
    status, payload, _ = await admin.call(method, rule_path(registry, rule), body)
    return status, payload


async def start_run(admin: Management, registry: str, rule: str) -> dict[str, Any]:
    status, payload, headers = await admin.call("POST", f"{rule_path(registry, rule)}/run")
    assert status == 202, payload
    assert headers["Location"].endswith(payload["id"])
    return dict(payload)


async def get_run(admin: Management, registry: str, rule: str, run: str) -> dict[str, Any]:
    status, payload, _ = await admin.call("GET", f"{rule_path(registry, rule)}/runs/{run}")
    assert status == 200, payload
    return dict(payload)


async def wait_run(
    admin: Management, registry: str, rule: str, run: str, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await get_run(admin, registry, rule, run)
        if found["state"] not in UNFINISHED:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"sync run {run} still {found['state']} after {timeout} s")
        await asyncio.sleep(0.1)


async def run_rule(admin: Management, registry: str, rule: str) -> dict[str, Any]:
    """Queue a run and wait for its end; the run with its per-tag report."""
    started = await start_run(admin, registry, rule)
    return await wait_run(admin, registry, rule, started["name"])


async def runs(admin: Management, registry: str, rule: str) -> list[dict[str, Any]]:
    status, payload, _ = await admin.call("GET", f"{rule_path(registry, rule)}/runs")
    assert status == 200, payload
    return list(payload["value"])


def outcomes(run: dict[str, Any]) -> dict[str, str]:
    """tag → outcome."""
    return {t["tag"]: t["outcome"] for t in run["tags"]}


async def delete_upstream_manifest(base_url: str, repository: str, digest: str) -> None:
    """DELETE a manifest (and so its tags) from an anonymous docker-registry."""
    async with (
        aiohttp.ClientSession() as http,
        http.delete(f"{base_url}/v2/{repository}/manifests/{digest}") as r,
    ):
        assert r.status == 202, await r.text()
