"""`create_app(settings)`: the aiohttp application with every surface and background loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from transship.api import (
    acr,
    arm,
    arm_access,
    arm_authorization,
    arm_tenancy,
    dataplane_auth,
    graph,
    identity,
    openapi,
    ops,
    v2,
)
from transship.api.errors import error_middleware
from transship.api.services import Services, build_services
from transship.config import Settings
from transship.worker.gc_loop import run_periodically
from transship.worker.key_loop import refresh_keys_periodically


async def merge_leading_slashes(request: web.Request) -> web.StreamResponse:
    """`az cloud register --endpoint-resource-manager https://host/` appends its paths to the
    URL as given: `//metadata/endpoints`. Redirect such requests to the path with one slash,
    query kept. A route (registered last, so only such paths reach it), not a middleware:
    nothing is added to every other request's path."""
    target = request.rel_url.with_path("/" + request.path.lstrip("/")).with_query(request.rel_url.query)
    raise web.HTTPPermanentRedirect(target)


def create_app(settings: Settings, services: Services | None = None) -> web.Application:
    """Build the application. Services are created on startup unless given (tests)."""
    app = web.Application(
        middlewares=[
            arm.request_ids,
            ops.metrics_middleware,
            error_middleware,
            dataplane_auth.data_plane_auth,
        ],
        client_max_size=settings.max_manifest_bytes + 1024,
    )
    app[ops.METRICS] = ops.Metrics.from_settings(settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        owned = services is None
        app[v2.SERVICES] = services if services is not None else await build_services(settings)
        background = [
            asyncio.create_task(app[v2.SERVICES].imports.run_forever()),
            asyncio.create_task(refresh_keys_periodically(app[v2.SERVICES].tokens.keys)),
        ]
        if settings.gc_interval_seconds > 0:
            background.append(
                asyncio.create_task(
                    run_periodically(app[v2.SERVICES].gc, settings.gc_interval_seconds)
                )
            )
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if owned:
                await app[v2.SERVICES].close()

    app.cleanup_ctx.append(lifecycle)
    v2.add_routes(app)
    acr.add_routes(app)
    arm.add_routes(app)
    arm_access.add_routes(app)
    arm_tenancy.add_routes(app)
    arm_authorization.add_routes(app)
    dataplane_auth.add_routes(app)
    graph.add_routes(app)
    identity.add_routes(app)
    ops.add_routes(app)
    openapi.add_routes(app)
    app.router.add_route("*", "/{slashes:/.*}", merge_leading_slashes)
    return app
