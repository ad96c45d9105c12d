"""Run the server (bind every configured address, serve until SIGINT/SIGTERM) or a worker."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Sequence
from typing import cast

from aiohttp import web

from transship.api.app import create_app
from transship.api.connections import app_runner
from transship.api.worker_app import create_worker_app
from transship.cli.processes import (
    Address,
    ChildSpec,
    bind_listeners,
    child_loops,
    child_settings,
    join_listeners,
    stop_event,
)
from transship.cli.pull_hint import Resolver, host_of, resolves, unresolved_fix
from transship.config import Settings

log = logging.getLogger("transship")


async def serve(settings: Settings, ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve until a termination signal (HTTPS when `ssl_context` is given). With
    `settings.http_workers` > 1, this process binds the sockets once and starts the other
    HTTP processes as supervised children (`transship.cli.processes`). Raises OSError when
    no address could be bound."""
    if settings.http_workers == 1:
        await _serve(settings, ssl_context, None, child=False)
        return
    sockets = bind_listeners(settings.hosts, settings.port, reuse_port=True)
    try:
        await _serve(settings, ssl_context, sockets, child=False)
    finally:
        for sock in sockets:
            sock.close()


async def serve_child(
    settings: Settings, ssl_context: ssl.SSLContext | None, addresses: Sequence[Address]
) -> None:
    """An HTTP child of `serve --workers N`: once its services are built, serve sockets of
    its own on the master's `addresses` (`join_listeners`) until SIGTERM or the master's
    end. Raises OSError when they cannot be bound."""
    await _serve(settings, ssl_context, None, child=True, join=addresses)


async def _serve(
    settings: Settings,
    ssl_context: ssl.SSLContext | None,
    sockets: list[socket.socket] | None,
    *,
    child: bool,
    join: Sequence[Address] = (),
) -> None:
    stop = stop_event(child=child)
    children = {}
    if sockets is not None and not child:
        addresses = tuple(cast(Address, s.getsockname()) for s in sockets)
        spec = ChildSpec("serve", child_settings(settings), addresses)
        children = child_loops("http", settings.http_workers, spec, stop)
    app = create_app(settings, extra_loops=children)
    # The runner adds the connection timeouts and the per-client cap (api/connections.py).
    runner = app_runner(
        app, settings, access_log=log.getChild("access") if settings.log_level == "DEBUG" else None
    )
    await runner.setup()
    bound: list[str] = []
    try:
        if join:
            # Bound only now that the services are built: the kernel hands a child's socket
            # connections from the moment it exists, and none should wait for a start-up.
            sockets = join_listeners(join)
        if sockets is not None:
            for sock in sockets:
                await web.SockSite(runner, sock, ssl_context=ssl_context).start()
                host, port = sock.getsockname()[:2]
                bound.append(_url(host, port, secure=ssl_context is not None))
        else:
            bound = await _bind_sites(runner, settings, ssl_context)
        if child:
            log.debug("HTTP child serving %s", ", ".join(bound))
        else:
            log.info(
                "Transship listening on %s (data in %s%s%s)",
                ", ".join(bound),
                settings.data_dir,
                f"; {settings.http_workers} HTTP processes" if settings.http_workers > 1 else "",
                "" if settings.background_work else "; no background work",
            )
        # Resolving may wait on a DNS server: on a thread, and nothing waits for it.
        probe = (
            None
            if child
            else asyncio.create_task(
                asyncio.to_thread(check_login_server_names, settings.effective_login_server_suffix)
            )
        )
        await stop.wait()
        log.info("shutting down")
        if probe is not None:
            probe.cancel()
    finally:
        await runner.cleanup()


async def _bind_sites(
    runner: web.AppRunner, settings: Settings, ssl_context: ssl.SSLContext | None
) -> list[str]:
    bound: list[str] = []
    for host in settings.hosts:
        site = web.TCPSite(
            runner,
            host,
            settings.port,
            reuse_address=True,
            backlog=1024,
            ssl_context=ssl_context,
        )
        try:
            await site.start()
        except OSError as exc:
            # A machine without IPv6 (or without ::1) still serves on the other addresses;
            # anything else (a port in use) is fatal.
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise
            log.warning("cannot listen on %s port %s: %s", host, settings.port, exc.strerror or exc)
            continue
        bound.append(_url(host, settings.port, secure=ssl_context is not None))
    if not bound:
        raise OSError(
            f"could not listen on any of {', '.join(settings.hosts)} port {settings.port}"
        )
    return bound


async def run_worker(
    settings: Settings,
    health: list[socket.socket] | None = None,
    *,
    processes: int = 1,
    child: bool = False,
) -> None:
    """A `transship worker` process: the background work until SIGTERM (or SIGINT, or in a
    child the master's end); running imports are handed back to the queue on the way out.
    `processes` > 1: this process also starts that many minus one worker children, as
    supervised loops. `health`: sockets to answer /healthz and /readyz on. Raises what
    building the services raises."""
    stop = stop_event(child=child)
    spec = ChildSpec("worker", child_settings(settings))
    children = child_loops("worker", processes, spec, stop) if not child else {}
    app = create_worker_app(settings, extra_loops=children)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        for sock in health or []:
            await web.SockSite(runner, sock).start()
        if not child:
            log.info(
                "Transship worker: imports, GC, upload expiry and webhook deliveries in %d "
                "process%s (data in %s)",
                processes,
                "es" if processes > 1 else "",
                settings.data_dir,
            )
        await stop.wait()
        log.info("worker stopping: handing running imports back to the queue")
    finally:
        await runner.cleanup()


PROBE_LABEL = "transship-probe"


def check_login_server_names(suffix: str, resolver: Resolver = resolves) -> bool:
    """Whether registries' login servers (`<name>.<suffix>`) resolve on this machine, tried
    with a probe name; when not, log what to change (clients reach a registry only by its
    login server). Blocking: call it on a thread."""
    suffix_host = host_of(suffix)
    if resolver(f"{PROBE_LABEL}.{suffix_host}"):
        return True
    fix = unresolved_fix(f"<name>.{suffix_host}")
    log.warning(
        "registry login servers <name>.%s do not resolve on this machine (probed %s.%s), so "
        "podman, skopeo and docker cannot reach the registries. Either:\n%s\n"
        "`transship registry create` and `transship import` print the line for each registry.",
        suffix,
        PROBE_LABEL,
        suffix_host,
        "\n".join(fix[1:]),
    )
    return False


def _url(host: str, port: int, *, secure: bool = False) -> str:
    scheme = "https" if secure else "http"
    try:
        is_v6 = socket.inet_pton(socket.AF_INET6, host) is not None
    except OSError:
        is_v6 = False
    return f"{scheme}://[{host}]:{port}" if is_v6 else f"{scheme}://{host}:{port}"
