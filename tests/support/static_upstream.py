"""A tiny in-process upstream registry (aiohttp) serving fixed manifests and blobs, anonymously.

It answers only what an import reads: ``GET /v2/`` (200), ``GET``/``HEAD``
``/v2/<repo>/manifests/<tag or digest>`` and ``GET``/``HEAD`` ``/v2/<repo>/blobs/<digest>``.
Anything it was not given is a 404 with the OCI error envelope, so a test can describe a
manifest whose blob the upstream never serves (the "knowing a digest" attack). Every request
line is recorded in :attr:`StaticUpstream.requests`.

Use as ``async with StaticUpstream(port) as upstream: ...`` (binds 127.0.0.1:port, stops on exit).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from aiohttp import web

from tests.support.app import OCI_MANIFEST, image_manifest


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _unknown(code: str, what: str) -> web.Response:
    body = {"errors": [{"code": code, "message": f"{what} unknown", "detail": None}]}
    return web.json_response(body, status=404)


@dataclass
class StaticUpstream:
    """An anonymous upstream on 127.0.0.1:`port` serving :attr:`manifests` and :attr:`blobs`."""

    port: int
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_image(
        self, repository: str, tag: str, config: bytes, layers: list[bytes], *, serve: bool = True
    ) -> bytes:
        """Serve a one-manifest image at `repository:tag` (and by digest); its blobs too when
        `serve`. Returns the manifest bytes."""
        body = image_manifest(config, layers)
        self.add_manifest(repository, tag, body)
        if serve:
            for blob in (config, *layers):
                self.blobs[_digest(blob)] = blob
        return body

    def add_manifest(
        self, repository: str, tag: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> None:
        """Serve `body` as the manifest `repository:tag` and `repository@<its digest>`."""
        self.manifests[(repository, tag)] = (media_type, body)
        self.manifests[(repository, _digest(body))] = (media_type, body)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        path = request.path
        if path in ("/v2/", "/v2"):
            return web.json_response({})
        if "/manifests/" in path:
            repository, _, reference = path.removeprefix("/v2/").rpartition("/manifests/")
            found = self.manifests.get((repository, reference))
            if found is None:
                return _unknown("MANIFEST_UNKNOWN", "manifest")
            media_type, body = found
            headers = {"Content-Type": media_type, "Docker-Content-Digest": _digest(body)}
            return web.Response(body=body, headers=headers)
        if "/blobs/" in path:
            digest = path.rpartition("/blobs/")[2]
            blob = self.blobs.get(digest)
            if blob is None:
                return _unknown("BLOB_UNKNOWN", "blob")
            headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
            return web.Response(body=blob, headers=headers)
        return web.Response(status=404, text=json.dumps({"errors": []}))

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
