"""`create_app(settings)`: the aiohttp application with every surface and its process's
background loops."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from transship.api import arm, dataplane_auth, ops, v2
from transship.api.errors import error_middleware
from transship.api.openapi import DOCUMENTED_ROUTES
from transship.api.route_table import ROUTES
from transship.api.routes import register
from transship.api.services import Services, build_services
from transship.config import Settings
from transship.portal import static_files
from transship.portal.routes import PORTAL_ROUTES
from transship.worker.loops import background_loops
from transship.worker.supervisor import Loop, Supervisor


def create_app(
    settings: Settings,
    services: Services | None = None,
    *,
    extra_loops: Mapping[str, Loop] | None = None,
) -> web.Application:
    """Build the application. Services are created on startup unless given (tests). The
    background work runs in it when `settings.background_work`; `extra_loops` join its
    supervisor (the child processes of `serve --workers N`, started once the services are
    built, so after the schema is migrated and the service bootstrapped)."""
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

    app.cleanup_ctx.append(service_lifecycle(settings, services, extra_loops))

    async def release_followers(app: web.Application) -> None:
        # Shutdown waits for the requests in progress: long polls must answer now, not at
        # the end of their wait.
        if v2.SERVICES in app:
            app[v2.SERVICES].imports.signals.close()

    app.on_shutdown.append(release_followers)
    app[DOCUMENTED_ROUTES] = ROUTES
    register(app, ROUTES)
    # The web portal's pages: after the API's routes, outside the OpenAPI document.
    static_files.preload()
    register(app, PORTAL_ROUTES)
    return app


def service_lifecycle(
    settings: Settings,
    services: Services | None = None,
    extra_loops: Mapping[str, Loop] | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A process's cleanup context: on startup the services (built from `settings` unless
    given; then their owner closes them) and its supervised loops (`process_loops`), on
    cleanup the loops stop (running import jobs go back to the queue at once) and the
    services built here close. Startup raises what `build_services` raises."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        built = services if services is not None else await build_services(settings)
        app[v2.SERVICES] = built
        loops = process_loops(built, settings, extra_loops)
        app[ops.LOOPS] = loops
        loops.start()
        try:
            yield
        finally:
            await loops.stop()
            if services is None:
                await built.close()

    return lifecycle


def process_loops(
    services: Services, settings: Settings, extra: Mapping[str, Loop] | None = None
) -> Supervisor:
    """The supervised loops of one process (not started): the background work when
    `settings.background_work`, and always the signing-key refresh and the change feed
    (this process's caches follow what the other processes of the service change), plus
    `extra`."""
    return background_loops(
        services.imports,
        services.tokens.keys,
        services.gc,
        gc_interval_seconds=settings.gc_interval_seconds,
        webhooks=services.webhook_dispatcher,
        background_work=settings.background_work,
        change_feed=services.change_listener.run_forever,
        extra=extra,
        sync=services.sync,
    )
