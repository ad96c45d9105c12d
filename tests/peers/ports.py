"""Free loopback ports and HTTP readiness polling.

Contracts:

- :func:`free_port` returns a TCP port that was free on 127.0.0.1 a moment ago. Another
  process may still grab it before the caller binds it; launchers treat a failed start as a
  test failure, which is rare enough in practice.
- :func:`wait_for_http` polls a loopback URL until any HTTP response arrives (or one of the
  wanted statuses), never through an HTTP proxy from the environment.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection

LOOPBACK = "127.0.0.1"

# A proxy-free opener: environment proxies must never see loopback test traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` (loopback by default) that nobody was listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Return the status of ``GET url``, or ``None`` when no HTTP answer came (refused, reset, timeout)."""
    request = urllib.request.Request(url, method="GET")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def wait_for_http(
    url: str,
    timeout: float = 10.0,
    *,
    statuses: Collection[int] | None = None,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.05,
) -> int:
    """Poll ``GET url`` until it answers, and return the status it answered with.

    ``statuses``: when given, only these statuses count as ready (e.g. ``{200}``); any other
    answer keeps polling. ``alive``: a liveness check of the process behind the URL; when it
    returns False, fail at once instead of waiting out the timeout.

    Raises :class:`TimeoutError` (naming the last status seen) when not ready in ``timeout``
    seconds, :class:`RuntimeError` when ``alive`` reports the server died.
    """
    deadline = time.monotonic() + timeout
    last: int | None = None
    while True:
        last = http_status(url, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        if last is not None and (statuses is None or last in statuses):
            return last
        if alive is not None and not alive():
            raise RuntimeError(
                f"server behind {url} exited before it was ready (last status {last})"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} not ready after {timeout:.1f}s (last status {last})")
        time.sleep(interval)
