"""Operations endpoints: liveness, readiness (which really checks its dependencies), metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.app import make_settings, running_registry


async def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        async with reg.request("GET", "/healthz") as r:
            assert r.status == 200
        async with reg.request("GET", "/readyz") as r:
            assert r.status == 200
        await reg.push_blob("app", b"counted")
        async with reg.request("GET", "/v2/app/blobs/sha256:" + "0" * 64) as r:
            assert r.status == 404
        async with reg.request("GET", "/metrics") as r:
            text = await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        assert 'transship_http_requests_total{method="POST",route="/v2/{name}/blobs/uploads/",status="201"} 1.0' in text
        assert 'transship_http_requests_total{method="GET",route="/v2/{name}/blobs/{digest}",status="404"} 1.0' in text
        assert "transship_http_request_seconds_total" in text


async def test_readiness_fails_when_the_blob_store_is_gone(tmp_path: Path) -> None:
    async with running_registry(make_settings(tmp_path / "data", None)) as reg:
        shutil.rmtree(tmp_path / "data" / "blobs")
        async with reg.request("GET", "/readyz") as r:
            assert r.status == 503
            assert "blob" in await r.text()
