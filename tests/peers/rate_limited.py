"""A Docker-Hub-style rate-limited upstream for tests: a reverse proxy (aiohttp, on the
test's own event loop) in front of a real docker-registry, usually one that authenticates
with bearer tokens from :class:`tests.peers.token_server.TokenServer`.

Like Docker Hub, it counts **pulls** (manifest GETs answered 200) per caller, within a
fixed window of ``window`` seconds that starts at the caller's first pull:

- every manifest answer (GET or HEAD) carries ``ratelimit-limit: <limit>;w=<window>`` and
  ``ratelimit-remaining: <left>;w=<window>``;
- a manifest GET once the caller's ``limit`` is spent answers ``429`` with the
  ``TOOMANYREQUESTS`` error, ``Retry-After`` (seconds until the window ends) and the same
  headers; HEADs and blob requests are never counted nor refused;
- :meth:`RateLimitedRegistry.inject_429` makes the next manifest GETs answer 429 with a
  given ``Retry-After`` whatever the budget (a limit another client spent).

The caller is the ``sub`` claim of its bearer token (verified with the token server), the
user of HTTP Basic credentials, or ``""`` (anonymous). Counters: :attr:`pulls`,
:attr:`heads`, :attr:`refused` (per caller); every request is forwarded as received
(redirects and 401 challenges included, so token auth works through it).
"""

from __future__ import annotations

import base64
import math
import time
from collections import Counter

from aiohttp import web

from tests.support.forwarding import ForwardingServer, answer

from .token_server import TokenServer

ANONYMOUS = ""


class RateLimitedRegistry(ForwardingServer):
    """``await RateLimitedRegistry(url, limit=…, window=…).start()`` / ``await close()``.
    `limit` and `window` may be changed between imports (a new window then starts at the
    next pull)."""

    def __init__(
        self,
        upstream_url: str,
        *,
        limit: int,
        window: float,
        token_server: TokenServer | None = None,
    ) -> None:
        super().__init__(upstream_url)
        self.limit = limit
        self.window = window
        self.token_server = token_server
        self.pulls: Counter[str] = Counter()
        self.heads: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._spent: Counter[str] = Counter()  # pulls in the caller's current window
        self._window_start: dict[str, float] = {}
        self._injected: list[int] = []  # Retry-After of the 429s to answer next
        self._injected_by_digest = False

    # -- control -----------------------------------------------------------------------------
    def inject_429(self, retry_after: int, times: int = 1, *, by_digest: bool = False) -> None:
        """Answer the next `times` manifest GETs (`by_digest`: GETs by digest only, i.e.
        mid-import rather than its first pull) with 429 and `Retry-After: retry_after`."""
        self._injected.extend([retry_after] * times)
        self._injected_by_digest = by_digest

    def reset(self) -> None:
        """Forget every window and counter."""
        for counter in (self.pulls, self.heads, self.refused, self._spent):
            counter.clear()
        self._window_start.clear()
        self._injected.clear()

    def remaining(self, caller: str = ANONYMOUS) -> int:
        self._roll(caller, time.monotonic())
        return max(0, self.limit - self._spent[caller])

    # -- serving ------------------------------------------------------------------------------
    def _caller(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token_server is not None:
            try:
                return str(self.token_server.decode(value.strip()).get("sub") or ANONYMOUS)
            except Exception:
                return ANONYMOUS  # the registry refuses it; nothing is counted
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value.strip()).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return ANONYMOUS
        return ANONYMOUS

    def _roll(self, caller: str, now: float) -> None:
        started = self._window_start.get(caller)
        if started is not None and now - started >= self.window:
            del self._window_start[caller]
            self._spent[caller] = 0

    def _headers(self, caller: str) -> dict[str, str]:
        window = max(1, math.ceil(self.window))
        left = max(0, self.limit - self._spent[caller])
        return {
            "ratelimit-limit": f"{self.limit};w={window}",
            "ratelimit-remaining": f"{left};w={window}",
        }

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        manifest = "/manifests/" in request.path and request.path.startswith("/v2/")
        caller = self._caller(request)
        now = time.monotonic()
        self._roll(caller, now)
        # Through a token registry the first, anonymous try only fetches a challenge.
        pull = (
            manifest
            and request.method == "GET"
            and (self.token_server is None or "Authorization" in request.headers)
        )
        injected = bool(self._injected) and (
            not self._injected_by_digest or "/manifests/sha256:" in request.path
        )
        if pull and (injected or self._spent[caller] >= self.limit):
            if injected:
                retry_after = self._injected.pop(0)
            else:
                ends = self._window_start.get(caller, now) + self.window
                retry_after = max(1, math.ceil(ends - now))
            self.refused[caller] += 1
            return web.json_response(
                {
                    "errors": [
                        {
                            "code": "TOOMANYREQUESTS",
                            "message": "You have reached your pull rate limit.",
                        }
                    ]
                },
                status=429,
                headers={**self._headers(caller), "Retry-After": str(retry_after)},
            )
        status, body, headers = await self.forward(request)
        if manifest and status in (200, 404):
            if request.method == "GET" and status == 200:
                self._window_start.setdefault(caller, now)
                self._spent[caller] += 1
                self.pulls[caller] += 1
            elif request.method == "HEAD":
                self.heads[caller] += 1
            headers.update(self._headers(caller))
        return answer(request, status, body, headers)
