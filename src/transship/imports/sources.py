"""Open the image source an import names: a registry of this service, or an upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from transship.config import UpstreamHost
from transship.imports.endpoints import resolve_endpoint
from transship.imports.errors import ImportFailure, Step
from transship.imports.local_source import LocalSource
from transship.imports.model import SourceSpec
from transship.imports.ports import Credentials, ImageSource
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
    ) -> None:
        self._meta = meta
        self._store = store
        self._upstreams = upstreams
        self._retry = retry
        self._max_manifest_bytes = max_manifest_bytes
        self._read_timeout = read_timeout

    @asynccontextmanager
    async def open(self, spec: SourceSpec, credentials: Credentials | None) -> AsyncIterator[ImageSource]:
        if spec.registry_id is not None:
            async with self._meta.reading() as q:
                registry = next((r for r in await q.registries() if r.id == spec.registry_id), None)
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
            raise ImportFailure("InvalidEndpoint", str(exc), step=Step.RESOLVE, obj=spec.host) from None
        # No automatic decompression (blobs are stored as served) and no environment proxies
        # or .netrc credentials: an import talks only to the host it names.
        async with aiohttp.ClientSession(auto_decompress=False, trust_env=False) as session:
            yield UpstreamClient(
                session,
                endpoint,
                spec.repository,
                credentials,
                retry=self._retry,
                max_manifest_bytes=self._max_manifest_bytes,
                read_timeout=self._read_timeout,
            )
