"""Free loopback ports and HTTP readiness polling.

Contracts:

- :func:`free_port` returns a TCP port that was free on 127.0.0.1 a moment ago. Another
  process may still grab it before the caller binds it; launchers treat a failed start as a
  test failure. Under pytest-xdist each worker takes its ports from a block of its own
  below the kernel's ephemeral range (:func:`worker_port_block`), so workers never hand
  out the same port, and neither do the kernel's outgoing connections; alone, it lets the
  kernel choose.
- :func:`wait_for_http` polls a loopback URL until any HTTP response arrives (or one of the
  wanted statuses), never through an HTTP proxy from the environment.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Collection, Iterator

LOOPBACK = "127.0.0.1"

# A proxy-free opener: environment proxies must never see loopback test traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# Worker port blocks live in [_BLOCKS_START, _BLOCKS_END): under Linux's default ephemeral
# range (32768-60999), so an outgoing connection never holds one, and above the ports
# well-known services use.
_BLOCKS_START = 10_000
_BLOCKS_END = 32_000
BLOCK_SIZE = 250
_BLOCKS = (_BLOCKS_END - _BLOCKS_START) // BLOCK_SIZE


def worker_port_block(worker: str, run: str) -> range:
    """The ports xdist worker ``worker`` (``gw0``, ``gw1``…) of test run ``run`` (xdist's
    ``PYTEST_XDIST_TESTRUNUID``) hands out. Workers of one run get distinct blocks; the
    run id shifts them all, so two runs on one machine rarely share a block."""
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    block = (zlib.crc32(run.encode()) + index) % _BLOCKS
    start = _BLOCKS_START + block * BLOCK_SIZE
    return range(start, start + BLOCK_SIZE)


def _worker_ports() -> Iterator[int] | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return None
    return itertools.cycle(worker_port_block(worker, os.environ.get("PYTEST_XDIST_TESTRUNUID", "")))


_worker_cycle = _worker_ports()


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` (loopback by default) that nobody was listening on.

    Under xdist, the next bindable port of this worker's block (round robin, so a port
    comes back only after the rest of the block; one still bound, or in TIME_WAIT, is
    passed over); raises :class:`RuntimeError` when none of the block is bindable.
    """
    if _worker_cycle is not None:
        for _ in range(BLOCK_SIZE):
            port = next(_worker_cycle)
            if _bindable(host, port):
                return port
        raise RuntimeError(f"no free port left in this worker's block of {BLOCK_SIZE}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Return the status of ``GET url``, or ``None`` when no HTTP answer came (refused,
    reset, timeout)."""
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
