"""`create_worker_app(settings)`: the application of a `transship worker` process. It serves
no registry surface: its lifecycle builds the services and runs the background work under
one Supervisor, and its only routes are `/healthz` and `/readyz` (bound only when the worker
is given a health port)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from transship.api import ops
from transship.api.app import service_lifecycle
from transship.api.errors import error_middleware
from transship.config import Settings
from transship.worker.supervisor import Loop


def create_worker_app(
    settings: Settings, *, extra_loops: Mapping[str, Loop] | None = None
) -> web.Application:
    """Build a worker's application: on startup, the services and every background loop
    (whatever `settings.background_work` says: doing it is the worker's purpose) plus
    `extra_loops` (the child processes of `worker --processes N`); on cleanup, the loops
    stop (running import jobs go back to the queue at once) and the services close.
    Startup raises what `build_services` raises."""
    settings = settings.model_copy(update={"background_work": True})
    app = web.Application(middlewares=[error_middleware])

    app.cleanup_ctx.append(service_lifecycle(settings, extra_loops=extra_loops))
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    return app
