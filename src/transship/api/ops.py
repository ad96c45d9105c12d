"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time
from collections import Counter

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import text

from transship.api.v2 import SERVICES


class Metrics:
    """Request counters and latency sums, exposed in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.seconds: dict[tuple[str, str], float] = {}
        self.started = time.time()

    def observe(self, method: str, surface: str, status: int, seconds: float) -> None:
        self.requests[(method, surface, status)] += 1
        self.seconds[(method, surface)] = self.seconds.get((method, surface), 0.0) + seconds

    def render(self) -> str:
        lines = [
            "# HELP transship_http_requests_total HTTP requests answered.",
            "# TYPE transship_http_requests_total counter",
        ]
        for (method, surface, status), count in sorted(self.requests.items()):
            lines.append(
                f'transship_http_requests_total{{method="{method}",surface="{surface}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP transship_http_request_seconds_total Time spent answering HTTP requests.",
            "# TYPE transship_http_request_seconds_total counter",
        ]
        for (method, surface), seconds in sorted(self.seconds.items()):
            lines.append(
                f'transship_http_request_seconds_total{{method="{method}",surface="{surface}"}} {seconds:.6f}'
            )
        lines += [
            "# HELP transship_start_time_seconds When the process started.",
            "# TYPE transship_start_time_seconds gauge",
            f"transship_start_time_seconds {self.started:.3f}",
        ]
        return "\n".join(lines) + "\n"


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


def surface_of(path: str) -> str:
    if path.startswith("/v2"):
        for part in (
            "/blobs/uploads",
            "/blobs/",
            "/manifests/",
            "/tags/list",
            "/referrers/",
            "_catalog",
        ):
            if part in path:
                return "v2" + part.rstrip("/").replace("/", "_")
        return "v2"
    return path.strip("/").split("/")[0] or "root"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    began = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe(
            request.method, surface_of(request.path), status, time.perf_counter() - began
        )


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        async with services.db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return web.Response(status=503, text=f"database unavailable: {type(exc).__name__}\n")
    if not services.settings.blob_dir.is_dir():
        return web.Response(status=503, text="blob directory missing\n")
    return web.Response(text="ready\n")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[METRICS].render(), content_type="text/plain", charset="utf-8"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
