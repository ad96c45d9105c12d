"""`create_app(settings)`: the aiohttp application with every surface and background loop."""

from __future__ import annotations

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
from transship.worker.loops import background_loops


async def merge_leading_slashes(request: web.Request) -> web.StreamResponse:
    """`az cloud register --endpoint-resource-manager https://host/` appends its paths to the
    URL as given: `//metadata/endpoints`. Redirect such requests to the path with one slash,
    query kept. A route (registered last, so only such paths reach it), not a middleware:
    nothing is added to every other request's path."""
    target = request.rel_url.with_path("/" + request.path.lstrip("/")).with_query(
        request.rel_url.query
    )
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
        built = app[v2.SERVICES]
        loops = background_loops(
            built.imports,
            built.tokens.keys,
            built.gc,
            gc_interval_seconds=settings.gc_interval_seconds,
        )
        app[ops.LOOPS] = loops
        loops.start()
        try:
            yield
        finally:
            # Cancels every loop (no restart) and hands running import jobs back.
            await loops.stop()
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
