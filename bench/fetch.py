"""Download one URL and discard the bytes; print one JSON line with what happened.

Run as a subprocess (``python bench/fetch.py URL [HEADER: VALUE …]``) so the download
has a core and an interpreter of its own. Reads with ``readinto`` into one reused 1 MiB
buffer: the client costs little CPU and holds no more than that in memory. The clock
starts just before the request, so interpreter start-up is not counted. Redirects (301,
302, 303, 307, 308) are followed, without the headers, up to MAX_REDIRECTS; ``redirects``
counts them.
"""

from __future__ import annotations

import http.client
import json
import resource
import sys
import time
import urllib.parse


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)


def _get(url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    conn.request("GET", path, headers=headers)
    return conn.getresponse()


def fetch(url: str, headers: dict[str, str]) -> dict[str, object]:
    buffer = memoryview(bytearray(1 << 20))
    cpu0 = _cpu()
    start = time.perf_counter()
    response = _get(url, headers)
    redirects = 0
    while response.status in REDIRECTS and redirects < MAX_REDIRECTS:
        location = urllib.parse.urljoin(url, response.getheader("Location", ""))
        response.read()
        response.close()
        redirects += 1
        # A presigned URL carries its own authorization: the registry's headers stay behind.
        response = _get(location, {})
    first_byte = time.perf_counter() - start
    received = 0
    while count := response.readinto(buffer):
        received += count
    seconds = time.perf_counter() - start
    response.close()
    return {
        "redirects": redirects,
        "status": response.status,
        "bytes": received,
        "seconds": seconds,
        "first_byte_seconds": first_byte,
        "client_cpu_seconds": _cpu() - cpu0,
    }


def main(argv: list[str]) -> None:
    headers = dict(h.split(": ", 1) for h in argv[1:])
    print(json.dumps(fetch(argv[0], headers)))


if __name__ == "__main__":
    main(sys.argv[1:])
