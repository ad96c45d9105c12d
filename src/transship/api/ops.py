"""Operations endpoints: liveness, readiness and Prometheus metrics.

Metric labels come from fixed sets only (route templates, known methods, status codes), so
no request can add a series or a line to `/metrics`; the exposition itself is written by
prometheus-client, which escapes label values. Who may read `/metrics` is the setting
`metrics_access` (see docs/configuration.md, "Metrics").
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from transship.api.answers import json_answer
from transship.api.auth import bearer_token
from transship.api.v2 import SERVICES
from transship.config import Settings
from transship.metadata.records import Budget
from transship.wire.service import LoopLiveness, Readiness
from transship.worker.supervisor import LoopStatus, Supervisor

MetricsAccessMode = Literal["public", "loopback", "token", "off"]

# The label of requests no route matched (404, and 405 on a path with routes).
UNMATCHED = "unmatched"
# Methods counted under their own name; any other method (a client may send any token) is
# counted as OTHER, so methods cannot grow the label set either.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

# The /v2 and /acr/v1 routers match their paths themselves (repository names hold slashes),
# so aiohttp's template for them is one catch-all (`/v2/{tail}`). These tables give the
# endpoint's template instead, checked in the routers' order. They only choose a label: a
# disagreement with the routers would mislabel a request, never change how it is served.
_V2_ENDPOINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r".+/blobs/uploads/?", "/v2/{name}/blobs/uploads/"),
        (r".+/blobs/uploads/[^/]+", "/v2/{name}/blobs/uploads/{session}"),
        (r".+/blobs/[^/]+", "/v2/{name}/blobs/{digest}"),
        (r".+/manifests/[^/]+", "/v2/{name}/manifests/{reference}"),
        (r".+/tags/list", "/v2/{name}/tags/list"),
        (r".+/referrers/[^/]+", "/v2/{name}/referrers/{digest}"),
    )
)
_ACR_ENDPOINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r".+/_tags/[^/]+", "/acr/v1/{name}/_tags/{reference}"),
        (r".+/_manifests/[^/]+", "/acr/v1/{name}/_manifests/{reference}"),
        (r".+/_tags", "/acr/v1/{name}/_tags"),
        (r".+/_manifests", "/acr/v1/{name}/_manifests"),
        (r".+", "/acr/v1/{name}"),
    )
)
_REFINED = {"/v2/{tail}": _V2_ENDPOINTS, "/acr/v1/{tail}": _ACR_ENDPOINTS}


def route_label(request: web.Request) -> str:
    """The template of the route that served `request` (`/v2/{name}/blobs/{digest}`,
    `/healthz`…), or UNMATCHED: one of a fixed set whatever the path."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED
    canonical = resource.canonical
    endpoints = _REFINED.get(canonical)
    if endpoints is not None:
        tail = request.match_info.get("tail", "")
        for pattern, template in endpoints:
            if pattern.fullmatch(tail):
                return template
    return canonical


def method_label(method: str) -> str:
    return method if method in _METHODS else OTHER_METHOD


class MetricsTokenError(OSError):
    """The metrics token file is empty. (An OSError, so the command line reports it like a
    file it cannot read.)"""


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read `/metrics`: everyone ("public"), clients on a loopback address
    ("loopback"), holders of the bearer `token` ("token"), or nobody ("off": 404)."""

    mode: MetricsAccessMode = "loopback"
    token: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> MetricsAccess:
        """Read the token file when the mode needs it. Raises OSError when it cannot be read
        and MetricsTokenError when it holds no token."""
        if settings.metrics_access != "token":
            return cls(settings.metrics_access)
        assert settings.metrics_token_file is not None  # the settings validator ensures it
        return cls("token", read_token(settings.metrics_token_file))

    def refusal(self, request: web.Request) -> web.Response | None:
        """The answer for a caller who may not read the metrics; None for one who may."""
        if self.mode == "public":
            return None
        if self.mode == "off":
            return web.Response(status=404, text="404: Not Found")
        if self.mode == "loopback":
            if is_loopback(request.remote):
                return None
            return web.Response(status=403, text="metrics are served to loopback clients only\n")
        presented = bearer_token(request)
        # compare_digest: the time taken says nothing about how much of the token matched.
        if (
            presented is not None
            and self.token is not None
            and hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self.token)
        ):
            return None
        return web.Response(
            status=401,
            text="a bearer token is required\n",
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="metrics"'},
        )


def read_token(path: Path) -> bytes:
    """The token in `path`, surrounding whitespace removed. Raises OSError when the file
    cannot be read, MetricsTokenError when it is empty."""
    token = path.read_bytes().strip()
    if not token:
        raise MetricsTokenError(f"the metrics token file {path} is empty")
    return token


def is_loopback(address: str | None) -> bool:
    """Whether a peer address is 127.0.0.0/8 or ::1 (also as an IPv4-mapped IPv6 address).
    Not an address (a Unix socket, a missing peer): False."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.is_loopback


class Metrics:
    """Request counters and latency sums per (method, route, status), and who may read them.

    Each application has its own instance and its own CollectorRegistry (never the
    process-wide default registry), so two applications in one process count apart.
    """

    def __init__(self, access: MetricsAccess | None = None) -> None:
        self.access = access or MetricsAccess()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.seconds: dict[tuple[str, str], float] = {}
        self.started = time.time()
        # The upstream rate-limit budgets as read for the scrape being answered (the
        # collector protocol is synchronous; the handler reads them first).
        self.budgets: list[Budget] = []
        self.budgets_read_at: datetime | None = None
        # Pulls served from the cache because re-checking a tag upstream failed (read from
        # the pull-through service for the scrape being answered; None: no services).
        self.cache_stale_served: int | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> Metrics:
        """Raises what MetricsAccess.from_settings raises."""
        return cls(MetricsAccess.from_settings(settings))

    def __repr__(self) -> str:
        return f"Metrics(access={self.access!r})"

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request. `method` and `route` must be labels (method_label,
        route_label): values from fixed sets."""
        self.requests[(method, route, status)] += 1
        self.seconds[(method, route)] = self.seconds.get((method, route), 0.0) + seconds

    def collect(self) -> Iterator[Metric]:
        """The metric families (the CollectorRegistry's collector protocol)."""
        requests = CounterMetricFamily(
            "transship_http_requests",
            "HTTP requests answered.",
            labels=("method", "route", "status"),
        )
        for (method, route, status), count in sorted(self.requests.items()):
            requests.add_metric((method, route, str(status)), count)
        seconds = CounterMetricFamily(
            "transship_http_request_seconds",
            "Time spent answering HTTP requests.",
            labels=("method", "route"),
        )
        for (method, route), total in sorted(self.seconds.items()):
            seconds.add_metric((method, route), total)
        yield requests
        yield seconds
        yield GaugeMetricFamily(
            "transship_start_time_seconds", "When the process started.", value=self.started
        )
        yield from self._budget_gauges()
        if self.cache_stale_served is not None:
            yield CounterMetricFamily(
                "transship_cache_stale_served",
                "Pulls through a cache rule answered from the cache because re-checking the "
                "tag upstream failed (this process).",
                value=self.cache_stale_served,
            )

    def _budget_gauges(self) -> Iterator[Metric]:
        labels = ("host", "user")
        remaining = GaugeMetricFamily(
            "transship_upstream_ratelimit_remaining",
            'Pulls left in an upstream\'s rate-limit budget, per credential user ("" = '
            "anonymous); absent until the upstream announces one.",
            labels=labels,
        )
        limit = GaugeMetricFamily(
            "transship_upstream_ratelimit_limit",
            "An upstream's announced pull limit per window, per credential user.",
            labels=labels,
        )
        pulls = CounterMetricFamily(
            "transship_upstream_pulls",
            "Manifest pulls (GETs) imports made from an upstream, all processes together.",
            labels=labels,
        )
        waiting = GaugeMetricFamily(
            "transship_upstream_ratelimit_blocked_until_seconds",
            "Until when an upstream's rate limit stops pulls (POSIX time; 0 when it does not).",
            labels=labels,
        )
        now = self.budgets_read_at
        for budget in self.budgets:
            assert now is not None  # set with the budgets
            key = (budget.key.host, budget.key.user)
            left = budget.remaining_at(now)
            if left is not None:
                remaining.add_metric(key, left)
            if budget.limit is not None:
                limit.add_metric(key, budget.limit)
            pulls.add_metric(key, budget.pulls)
            until = budget.wait_until(now)
            waiting.add_metric(key, 0.0 if until is None else until.timestamp())
        yield remaining
        yield limit
        yield pulls
        yield waiting

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4)."""
        return generate_latest(self.registry)


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    began = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe(
            method_label(request.method),
            route_label(request),
            status,
            time.perf_counter() - began,
        )


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


LOOPS: web.AppKey[Supervisor] = web.AppKey("loops", Supervisor)


def _loop_json(status: LoopStatus) -> LoopLiveness:
    return LoopLiveness(
        name=status.name,
        state=status.state.value,
        restarts=status.restarts,
        last_error=status.last_error,
        failing_seconds=None
        if status.failing_seconds is None
        else round(status.failing_seconds, 3),
        heartbeat_age_seconds=(
            None if status.heartbeat_age_seconds is None else round(status.heartbeat_age_seconds, 3)
        ),
    )


async def readyz(request: web.Request) -> web.Response:
    """`GET /readyz`: 200 when the database answers, the blob directory exists (blobs on the
    filesystem; an object store is reached by the requests themselves) and no background
    loop has been crashing for `loop_unready_seconds`; else 503. The JSON body lists every
    problem, whether this process runs the background work, and each of its loops'
    liveness (state, restarts, the type of its last error, how long it has been failing,
    the age of its last heartbeat)."""
    services = request.app[SERVICES]
    problems: list[str] = []
    try:
        await services.db.ping()
    except Exception as exc:
        problems.append(f"database unavailable: {type(exc).__name__}")
    location = services.settings.storage_location
    if location is None or location.kind == "file":
        # An object store has no directory here: a replica's data dir is scratch space.
        root = location.path if location is not None else None
        blob_dir = services.settings.blob_dir if root is None else root / "blobs"
        if not blob_dir.is_dir():
            problems.append("blob directory missing")
    loops = request.app[LOOPS].status() if LOOPS in request.app else {}
    bound = services.settings.loop_unready_seconds
    for status in loops.values():
        if status.unready(bound):
            problems.append(
                f"background loop {status.name} has been failing for "
                f"{status.failing_seconds or 0.0:.0f} s ({status.last_error})"
            )
    body = Readiness(
        status="unavailable" if problems else "ready",
        problems=problems,
        background_work=services.settings.background_work,
        loops=[_loop_json(status) for status in loops.values()],
    )
    return json_answer(body, status=503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    """`GET /metrics`: 200 with the exposition; 404 ("off"), 403 (not loopback) or 401
    (token missing or wrong) as `metrics_access` says."""
    found = request.app[METRICS]
    refused = found.access.refusal(request)
    if refused is not None:
        return refused
    services = request.app.get(SERVICES)
    budgets = None if services is None else services.budgets
    if budgets is not None:
        found.budgets = await budgets.list()
        found.budgets_read_at = budgets.now()
    if services is not None:
        found.cache_stale_served = services.pull_through.stale_served
    return web.Response(body=found.render(), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_PLAIN_0_0_4})
