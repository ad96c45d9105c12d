"""Count the requests an upstream session sends, by kind, as the upstream sees them.

A `RequestLog` hooks an `aiohttp.ClientSession` through its trace configs, so it sees every
request the session really sent (each redirect hop, each challenged attempt, each retry)
without the client that sends them knowing. The dry run uses it to report what it spent and
to predict what the real import would spend.

Kinds:

- **manifest** / **blob**: `/v2/<repository>/manifests/…` and `/v2/<repository>/blobs/…`,
  by method (GET or HEAD);
- **auth**: token requests (a POST, or a query naming `scope` or `service`, as the token
  realm is asked);
- **other**: anything else (the `/v2/` probe, a redirect hop to a storage host).

A **pull**, in Docker Hub's sense, is a manifest GET the upstream answered with anything but
401 (a challenge) or 429 (refused before it counted): HEAD requests never count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
from yarl import URL

_MANIFEST = re.compile(r"^/v2/.+/manifests/[^/]+$")
_BLOB = re.compile(r"^/v2/.+/blobs/[^/]+$")
_NOT_A_PULL = frozenset({401, 429})


@dataclass(frozen=True, slots=True)
class RequestCount:
    """Upstream requests by kind (see the module docstring); `challenged` counts those
    answered 401, `pulls` the rate-limited manifest GETs among them all."""

    manifest_gets: int = 0
    manifest_heads: int = 0
    blob_gets: int = 0
    blob_heads: int = 0
    auth: int = 0
    other: int = 0
    challenged: int = 0
    pulls: int = 0

    @property
    def total(self) -> int:
        return (
            self.manifest_gets
            + self.manifest_heads
            + self.blob_gets
            + self.blob_heads
            + self.auth
            + self.other
        )

    def plus(self, other: RequestCount) -> RequestCount:
        """Both counts added, kind by kind."""
        return RequestCount(
            manifest_gets=self.manifest_gets + other.manifest_gets,
            manifest_heads=self.manifest_heads + other.manifest_heads,
            blob_gets=self.blob_gets + other.blob_gets,
            blob_heads=self.blob_heads + other.blob_heads,
            auth=self.auth + other.auth,
            other=self.other + other.other,
            challenged=self.challenged + other.challenged,
            pulls=self.pulls + other.pulls,
        )


def classify(method: str, url: URL) -> str:
    """The kind of one request: "manifest", "blob", "auth" or "other"."""
    if method.upper() == "POST" or "scope" in url.query or "service" in url.query:
        return "auth"
    path = url.path
    if _MANIFEST.match(path):
        return "manifest"
    if _BLOB.match(path):
        return "blob"
    return "other"


class RequestLog:
    """A mutable tally of one session's requests; `counts` reads it. Safe from many tasks of
    one event loop (the trace callbacks run on the loop, one at a time)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def record(self, method: str, url: URL, status: int | None) -> None:
        """Count one request sent; `status` is None when no answer came (a transport
        failure: the upstream may still have counted it)."""
        kind = classify(method, url)
        verb = method.upper()
        if kind in ("manifest", "blob"):
            key = f"{kind}_{'heads' if verb == 'HEAD' else 'gets'}"
        else:
            key = kind
        self._bump(key)
        if status == 401:
            self._bump("challenged")
        if kind == "manifest" and verb == "GET" and status not in _NOT_A_PULL:
            self._bump("pulls")

    def _bump(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1

    def counts(self) -> RequestCount:
        return RequestCount(**self._counts)

    def trace_config(self) -> aiohttp.TraceConfig:
        """A trace config for `aiohttp.ClientSession(trace_configs=[…])` that records every
        request of the session here."""
        config = aiohttp.TraceConfig()

        async def ended(
            session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
        ) -> None:
            self.record(params.method, params.url, params.response.status)

        async def failed(
            session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
        ) -> None:
            self.record(params.method, params.url, None)

        config.on_request_end.append(ended)
        config.on_request_exception.append(failed)
        return config
