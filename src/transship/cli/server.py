"""Run the server: bind every configured address, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import ssl

from aiohttp import web

from transship.api.app import create_app
from transship.api.connections import app_runner
from transship.cli.pull_hint import Resolver, host_of, resolves, unresolved_fix
from transship.config import Settings

log = logging.getLogger("transship")


async def serve(settings: Settings, ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve until a termination signal (HTTPS when `ssl_context` is given). Raises OSError
    when no address could be bound."""
    app = create_app(settings)
    # The runner adds the connection timeouts and the per-client cap (api/connections.py).
    runner = app_runner(
        app, settings, access_log=log.getChild("access") if settings.log_level == "DEBUG" else None
    )
    await runner.setup()
    bound: list[str] = []
    try:
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
                log.warning(
                    "cannot listen on %s port %s: %s", host, settings.port, exc.strerror or exc
                )
                continue
            bound.append(_url(host, settings.port, secure=ssl_context is not None))
        if not bound:
            raise OSError(
                f"could not listen on any of {', '.join(settings.hosts)} port {settings.port}"
            )
        log.info("Transship listening on %s (data in %s)", ", ".join(bound), settings.data_dir)
        # Resolving may wait on a DNS server: on a thread, and nothing waits for it.
        probe = asyncio.create_task(
            asyncio.to_thread(check_login_server_names, settings.effective_login_server_suffix)
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down")
        probe.cancel()
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
