"""`create_app(settings)`: the aiohttp application with every surface and background loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from transship.api import ops, v2
from transship.api.errors import error_middleware
from transship.api.services import Services, build_services
from transship.config import Settings
from transship.worker.gc_loop import run_periodically


def create_app(settings: Settings, services: Services | None = None) -> web.Application:
    """Build the application. Services are created on startup unless given (tests)."""
    app = web.Application(
        middlewares=[ops.metrics_middleware, error_middleware],
        client_max_size=settings.max_manifest_bytes + 1024,
    )
    app[ops.METRICS] = ops.Metrics()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        owned = services is None
        app[v2.SERVICES] = services if services is not None else await build_services(settings)
        gc_task = None
        if settings.gc_interval_seconds > 0:
            gc_task = asyncio.create_task(
                run_periodically(app[v2.SERVICES].gc, settings.gc_interval_seconds)
            )
        try:
            yield
        finally:
            if gc_task is not None:
                gc_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gc_task
            if owned:
                await app[v2.SERVICES].close()

    app.cleanup_ctx.append(lifecycle)
    v2.add_routes(app)
    ops.add_routes(app)
    return app
