"""Open the image source an import names: a registry of this service, or an upstream."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from transship.config import UpstreamHost
from transship.imports.auth_memory import UpstreamAuthMemory
from transship.imports.budgets import BudgetGate, BudgetLedger, WaitReporter
from transship.imports.egress import EgressDenied, EgressPolicies, PolicyResolver, egress_failure
from transship.imports.endpoints import Endpoint, resolve_endpoint
from transship.imports.errors import ImportFailure, Step
from transship.imports.held import HeldFirstSource
from transship.imports.local_source import LocalSource
from transship.imports.model import SourceSpec
from transship.imports.ports import Credentials, FetchedManifest, ImageSource
from transship.imports.request_log import RequestLog
from transship.imports.retry import RetryPolicy
from transship.imports.shelf import ManifestShelf
from transship.imports.upstream import UpstreamClient
from transship.metadata.queries import MetadataStore
from transship.metadata.records import ANONYMOUS, BudgetKey
from transship.oci.digest import Digest
from transship.storage.base import BlobStore


class Sources:
    """The SourceFactory of the running service."""

    def __init__(
        self,
        meta: MetadataStore,
        store: BlobStore,
        upstreams: Mapping[str, UpstreamHost],
        *,
        retry: RetryPolicy,
        max_manifest_bytes: int,
        read_timeout: float,
        egress: EgressPolicies,
        max_header_bytes: int = 16384,
        budgets: BudgetLedger | None = None,
        max_rate_limit_wait: float = 21600.0,
        rate_limit_recheck: float = 5.0,
        shelf: ManifestShelf | None = None,
    ) -> None:
        """`budgets`: the ledger of upstream rate-limit budgets (None: no budget is kept,
        429s are retried like other transient statuses); `max_rate_limit_wait`: the
        longest one pull may wait for its budget (seconds); `rate_limit_recheck`: how often
        a waiting import looks at its budget again; `shelf`: manifests a pull through a
        cache rule already fetched, read before the upstream is asked for them. The
        clients it opens share what they learn of upstreams' authentication (one
        `UpstreamAuthMemory` for the process's `Sources`)."""
        self._meta = meta
        self._store = store
        self._upstreams = upstreams
        self._retry = retry
        self._max_manifest_bytes = max_manifest_bytes
        self._read_timeout = read_timeout
        self._egress = egress
        self._auth_memory = UpstreamAuthMemory()
        self._max_header_bytes = max_header_bytes
        self._budgets = budgets
        self._max_rate_limit_wait = max_rate_limit_wait
        self._rate_limit_recheck = rate_limit_recheck
        self._shelf = shelf

    @asynccontextmanager
    async def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        on_wait: WaitReporter | None = None,
        request_log: RequestLog | None = None,
        wait_for_budget: bool = True,
        shared_auth: bool = True,
    ) -> AsyncIterator[ImageSource]:
        """See SourceFactory.open; `request_log`, when given, counts every request sent to
        an upstream (a registry of this service is read without any). Without
        `wait_for_budget`, a pull the rate-limit budget refuses fails at once with
        UpstreamRateLimited instead of waiting (a dry run answers an HTTP request). Without
        `shared_auth`, the client neither uses nor leaves challenges and tokens in the
        process's memory of them: it starts cold, as a client of a fresh process does."""
        registries = await self._meta.read_at_once(
            lambda q: q.registries_by_id(
                [target_registry_id] + ([] if spec.registry_id is None else [spec.registry_id])
            )
        )
        if spec.registry_id is not None:
            registry = registries.get(spec.registry_id)
            if registry is None:
                raise ImportFailure(
                    "ResourceNotFound", "the source registry no longer exists", step=Step.RESOLVE
                )
            yield LocalSource(self._meta, self._store, registry, spec.repository)
            return
        assert spec.host is not None
        try:
            endpoint = resolve_endpoint(spec.host, self._upstreams)
        except ValueError as exc:
            raise ImportFailure(
                "InvalidEndpoint", str(exc), step=Step.RESOLVE, obj=spec.host
            ) from None
        target = registries.get(target_registry_id)
        policy = self._egress.for_registry(target.name if target is not None else None)
        if endpoint.trusted and endpoint.url.host:
            # The administrator chose this endpoint: private ranges do not stop imports
            # from it (explicit rules still do); its redirects elsewhere are judged as usual.
            policy = policy.trusting(endpoint.url.host)
        try:
            policy.check_literal(endpoint.url.host or spec.host)
        except EgressDenied as exc:
            raise egress_failure(exc, Step.RESOLVE) from None
        # Every connection resolves through the policy (and connects to the address it
        # allowed); no automatic decompression (blobs are stored as served); no environment
        # proxies or .netrc credentials: an import talks only to the hosts it names.
        connector = aiohttp.TCPConnector(
            resolver=PolicyResolver(policy, self._egress.inner_resolver())
        )
        async with aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            max_line_size=self._max_header_bytes,
            max_field_size=self._max_header_bytes,
            trace_configs=None if request_log is None else [request_log.trace_config()],
        ) as session:
            client = UpstreamClient(
                session,
                endpoint,
                spec.repository,
                credentials,
                retry=self._retry,
                max_manifest_bytes=self._max_manifest_bytes,
                read_timeout=self._read_timeout,
                egress=policy,
                budget=self._gate(
                    _budget_host(endpoint), credentials, on_wait, wait=wait_for_budget
                ),
                auth_memory=self._auth_memory if shared_auth else UpstreamAuthMemory(),
            )
            yield HeldFirstSource(client, functools.partial(self._held, target_registry_id))

    async def _held(self, registry_id: int, digest: Digest) -> FetchedManifest | None:
        shelved = None if self._shelf is None else self._shelf.get(registry_id, digest)
        if shelved is not None:
            return shelved
        record = await self._meta.read_at_once(lambda q: q.held_manifest(registry_id, digest))
        if record is None:
            return None
        return FetchedManifest(record.content, record.media_type, record.digest)

    def _gate(
        self,
        host: str,
        credentials: Credentials | None,
        on_wait: WaitReporter | None,
        *,
        wait: bool,
    ) -> BudgetGate | None:
        if self._budgets is None:
            return None
        # The user name only: an identity token (no user name) spends an account's budget
        # we cannot name, counted with the anonymous one of the host.
        user = credentials.username if credentials is not None and credentials.username else None
        key = BudgetKey(host, user or ANONYMOUS)
        return BudgetGate(
            self._budgets,
            key,
            max_wait=self._max_rate_limit_wait if wait else 0.0,
            recheck=self._rate_limit_recheck,
            on_wait=on_wait,
            wait_limit=(
                "setting upstream_rate_limit_max_wait" if wait else "a dry run does not wait"
            ),
        )


def _budget_host(endpoint: Endpoint) -> str:
    """Whose limits apply: the host requests go to (with an explicit port), so the names of
    one upstream (`docker.io` and `registry-1.docker.io`) share its budget."""
    url = endpoint.url
    host = (url.host or endpoint.host).lower()
    return f"{host}:{url.explicit_port}" if url.explicit_port is not None else host
