"""`/metrics`: bounded labels (route templates, not paths), output that a request cannot
inject lines into, and the access modes (public, loopback, token, off)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from yarl import URL

from tests.support.app import RunningRegistry, make_settings, running_registry
from transship.api import ops
from transship.api.app import create_app
from transship.config import Settings

# A sample line of our own output: a transship_ metric, optional labels, a value.
_SAMPLE = re.compile(r'transship_[a-z_]+(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})? \S+')


async def _scrape(reg: RunningRegistry, **kwargs: Any) -> str:
    async with reg.request("GET", "/metrics", **kwargs) as r:
        assert r.status == 200, await r.text()
        return str(await r.text())


def _series(text: str) -> set[str]:
    """The series of the exposition (sample lines without their values)."""
    return {
        line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def _requests_total(text: str) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "transship_http_requests_total":
                labels = sample.labels
                found[(labels["method"], labels["route"], labels["status"])] = sample.value
    return found


async def test_labels_are_route_templates(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        await reg.push_blob("team/app", b"counted")
        async with reg.request("GET", "/v2/team/app/blobs/sha256:" + "0" * 64) as r:
            assert r.status == 404
        async with reg.request("GET", "/v2/team/app/manifests/v1") as r:
            assert r.status == 404
        async with reg.request("GET", "/healthz") as r:
            assert r.status == 200
        text = await _scrape(reg)
    counts = _requests_total(text)
    assert counts[("POST", "/v2/{name}/blobs/uploads/", "201")] == 1
    assert counts[("GET", "/v2/{name}/blobs/{digest}", "404")] == 1
    assert counts[("GET", "/v2/{name}/manifests/{reference}", "404")] == 1
    assert counts[("GET", "/healthz", "200")] == 1
    # No label value carries a repository name or a digest.
    assert "team/app" not in text and "0" * 64 not in text
    assert "transship_http_request_seconds_total" in text


# Methods the HTTP parser knows but no route has; each would be a label value of its own.
_EXOTIC_METHODS = ("PROPFIND", "MKCOL", "LOCK", "UNLOCK", "COPY", "MOVE", "SEARCH", "PURGE")


async def test_a_thousand_unknown_paths_add_no_series(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        # One request of each kind first, so every series this test can create exists.
        for path in ("/nowhere-x/a", "/v2/r/nowhere-x", "/acr/v1/r/nothing-x"):
            async with reg.request("GET", path) as r:
                assert r.status == 404
        async with reg.request("PROPFIND", "/healthz") as r:
            assert r.status == 405
        await _scrape(reg)  # the scrape itself is counted too
        before = _series(await _scrape(reg))
        for i in range(1000):
            method, path = [
                ("GET", f"/nowhere-{i}/a"),
                ("GET", f"/v2/r/nowhere-{i}"),
                ("GET", f"/acr/v1/r/nothing-{i}"),
                (_EXOTIC_METHODS[i % len(_EXOTIC_METHODS)], "/healthz"),
            ][i % 4]
            async with reg.request(method, path) as r:
                assert r.status in (404, 405)
        after = _series(await _scrape(reg))
    assert after == before, sorted(after - before)[:10]


@pytest.mark.parametrize("encoded", ["%0a", "%0d", "%0d%0a", "%22%7D%201%0a"])
async def test_an_encoded_path_cannot_inject_lines(tmp_path: Path, encoded: str) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        injected = f"/x{encoded}injected_total%201{encoded}transship_fake_total%207{encoded}"
        for path in (
            injected,
            f"/v2/r{encoded}x/manifests/v1{encoded}",
            f"/acr{encoded}injected_total%201",
        ):
            async with reg.http.get(URL(reg.url + path, encoded=True)) as r:
                assert r.status in (400, 404)
        text = await _scrape(reg)
    for line in text.splitlines():
        assert line.startswith("#") or _SAMPLE.fullmatch(line), repr(line)
    names = {family.name for family in text_string_to_metric_families(text)}
    assert names <= {
        "transship_http_requests",
        "transship_http_request_seconds",
        "transship_start_time_seconds",
        # The upstream budgets' families (empty here: no import ran).
        "transship_upstream_ratelimit_remaining",
        "transship_upstream_ratelimit_limit",
        "transship_upstream_pulls",
        "transship_upstream_ratelimit_blocked_until_seconds",
        # Pull-through re-checks that served the cache (0 here).
        "transship_cache_stale_served",
    }


# -- access ------------------------------------------------------------------------------------


def _remote_request(
    app: web.Application, peer: str, authorization: str | None = None
) -> web.Request:
    """A request for /metrics arriving from `peer` (a transport's peer address)."""
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    headers = {"Authorization": authorization} if authorization else {}
    return make_mocked_request("GET", "/metrics", headers=headers, app=app, transport=transport)


def _app(tmp_path: Path, **settings: Any) -> web.Application:
    return create_app(make_settings(tmp_path / "data", None, **settings))


async def test_loopback_is_the_default_and_refuses_other_clients(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).metrics_access == "loopback"
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        await _scrape(reg)  # the test client is on 127.0.0.1
    app = _app(tmp_path)
    for peer in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        response = await ops.metrics(_remote_request(app, peer))
        assert response.status == 200, peer
    for peer in ("192.0.2.1", "10.0.0.1", "::ffff:192.0.2.1", "2001:db8::1", "", "not-an-address"):
        response = await ops.metrics(_remote_request(app, peer))
        assert response.status == 403, peer
        assert "transship_http_requests_total" not in (response.text or "")


async def test_public_answers_everyone(tmp_path: Path) -> None:
    app = _app(tmp_path, metrics_access="public")
    response = await ops.metrics(_remote_request(app, "192.0.2.1"))
    assert response.status == 200
    assert "transship_start_time_seconds" in (response.text or "")


async def test_off_is_404_even_on_loopback(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", None, metrics_access="off")
    async with running_registry(settings) as reg, reg.request("GET", "/metrics") as r:
        assert r.status == 404
        assert "transship_" not in await r.text()


async def test_token_needs_the_bearer_token_from_everyone(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text("s3cret-metrics-token\n")
    settings = make_settings(
        tmp_path / "data", None, metrics_access="token", metrics_token_file=token_file
    )
    async with running_registry(settings) as reg:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Bearer s3cret-metrics-token-and-more"},
            {"Authorization": "Basic czNjcmV0LW1ldHJpY3MtdG9rZW4="},
            {"Authorization": "s3cret-metrics-token"},
        ):
            async with reg.request("GET", "/metrics", headers=headers) as r:
                assert r.status == 401, headers  # loopback is no exemption in this mode
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
                assert "transship_" not in await r.text()
        text = await _scrape(reg, headers={"Authorization": "Bearer s3cret-metrics-token"})
        assert "transship_http_requests_total" in text
    app = create_app(settings)
    response = await ops.metrics(_remote_request(app, "192.0.2.1", "Bearer s3cret-metrics-token"))
    assert response.status == 200
    assert "s3cret" not in repr(app[ops.METRICS])


def test_token_mode_needs_a_token_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="metrics_token_file"):
        Settings(data_dir=tmp_path, metrics_access="token")


def test_an_empty_or_missing_token_file_is_refused_at_start(tmp_path: Path) -> None:
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(ops.MetricsTokenError, match="empty"):
        _app(tmp_path, metrics_access="token", metrics_token_file=empty)
    with pytest.raises(OSError):
        _app(tmp_path, metrics_access="token", metrics_token_file=tmp_path / "missing.token")
