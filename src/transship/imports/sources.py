"""Open the image source an import names: a registry of this service, or an upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from transship.config import UpstreamHost
from transship.imports.egress import EgressDenied, EgressPolicies, PolicyResolver, egress_failure
from transship.imports.endpoints import resolve_endpoint
from transship.imports.errors import ImportFailure, Step
from transship.imports.local_source import LocalSource
from transship.imports.model import SourceSpec
from transship.imports.ports import Credentials, ImageSource
from transship.imports.request_log import RequestLog
from transship.imports.retry import RetryPolicy
from transship.imports.upstream import UpstreamClient
from transship.metadata.queries import MetadataStore
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
    ) -> None:
        self._meta = meta
        self._store = store
        self._upstreams = upstreams
        self._retry = retry
        self._max_manifest_bytes = max_manifest_bytes
        self._read_timeout = read_timeout
        self._egress = egress
        self._max_header_bytes = max_header_bytes

    @asynccontextmanager
    async def open(
        self,
        spec: SourceSpec,
        credentials: Credentials | None,
        target_registry_id: int,
        *,
        request_log: RequestLog | None = None,
    ) -> AsyncIterator[ImageSource]:
        """See SourceFactory.open; `request_log`, when given, counts every request sent to
        an upstream (a registry of this service is read without any)."""
        async with self._meta.reading() as q:
            registries = await q.registries_by_id(
                [target_registry_id] + ([] if spec.registry_id is None else [spec.registry_id])
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
            yield UpstreamClient(
                session,
                endpoint,
                spec.repository,
                credentials,
                retry=self._retry,
                max_manifest_bytes=self._max_manifest_bytes,
                read_timeout=self._read_timeout,
                egress=policy,
            )
