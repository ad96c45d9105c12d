"""Run the real application in-process on a loopback port, for API tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner
from multidict import CIMultiDictProxy

from transship.api.app import create_app
from transship.api.connections import app_runner
from transship.api.services import Services, build_services
from transship.config import Settings

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, content: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(content), "size": len(content), **extra}


def image_manifest(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
            **extra,
        }
    ).encode()


async def push_image(
    http: aiohttp.ClientSession,
    url: str,
    host: str,
    authorization: str,
    repository: str,
    tag: str | None,
    *,
    config: bytes | None = None,
    layer: bytes | None = None,
) -> str:
    """Push a one-layer image through /v2 as `authorization` would, by `tag` (by digest when
    None); returns its digest. The default config and layer are derived from `repository`."""
    if config is None:
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "repository": repository}
        ).encode()
    if layer is None:
        layer = b"layer of " + repository.encode() * 50
    headers = {"Host": host, "Authorization": authorization}
    for blob in (config, layer):
        async with http.post(
            f"{url}/v2/{repository}/blobs/uploads/?digest={sha256(blob)}",
            data=blob,
            headers=headers,
        ) as r:
            assert r.status == 201, await r.text()
    body = image_manifest(config, [layer])
    async with http.put(
        f"{url}/v2/{repository}/manifests/{tag or sha256(body)}",
        data=body,
        headers={**headers, "Content-Type": OCI_MANIFEST},
    ) as r:
        assert r.status == 201, await r.text()
    return sha256(body)


@dataclass(frozen=True)
class Answer:
    """A response read whole, usable after its connection is released."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def error_code(self) -> str:
        return str(json.loads(self.body)["errors"][0]["code"])


@dataclass
class RunningRegistry:
    """A live server plus a client session; `url` is http://127.0.0.1:PORT."""

    services: Services
    server: TestServer
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.request(method, self.url + path, allow_redirects=False, **kwargs)

    async def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        async with self.request(
            "POST", f"/v2/{repository}/blobs/uploads/?digest={digest}", data=data
        ) as r:
            assert r.status == 201, await r.text()
        return digest

    async def push_manifest(
        self, repository: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> Answer:
        async with self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type},
        ) as r:
            return Answer(r.status, r.headers, await r.read())

    async def push_image(
        self, repository: str, tag: str, seed: bytes = b"x"
    ) -> tuple[str, bytes, list[str]]:
        """Push a one-layer image; returns (manifest digest, manifest bytes, blob digests)."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed.hex()}).encode()
        layer = b"layer-" + seed * 100
        blobs = [await self.push_blob(repository, config), await self.push_blob(repository, layer)]
        body = image_manifest(config, [layer])
        r = await self.push_manifest(repository, tag, body)
        assert r.status == 201
        return sha256(body), body, blobs


def make_settings(data_dir: Path, database_url: str | None, **overrides: Any) -> Settings:
    """Settings for an in-process server. The data plane is open (`data_plane_auth=False`)
    unless a test asks for authentication: most API tests are about OCI semantics."""
    overrides.setdefault("data_plane_auth", False)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        gc_interval_seconds=0,
        durable_writes=False,
        **overrides,
    )


class AppTestServer(TestServer):
    """aiohttp's TestServer running `app` the way `serve` does: with the connection
    timeouts and per-client cap of `settings` (transship.api.connections)."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._settings = settings

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return app_runner(self.app, self._settings, **kwargs)


@asynccontextmanager
async def running_registry(settings: Settings) -> AsyncIterator[RunningRegistry]:
    services = await build_services(settings)
    server = AppTestServer(create_app(settings, services), settings, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningRegistry(services, server, http)
    finally:
        await server.close()
        await services.close()


@contextmanager
def registry_in_thread(
    settings: Settings,
) -> Iterator[tuple[RunningRegistry, asyncio.AbstractEventLoop]]:
    """`running_registry(settings)` on an event loop of its own in a daemon thread, for
    synchronous callers (the CLI through CliRunner): the registry and its loop, stopped and
    closed when the block exits. Raises AssertionError when it did not start in 60 s."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        try:
            async with running_registry(settings) as reg:
                holder["reg"] = reg
                ready.set()
                await stop.wait()
        finally:
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60) and "reg" in holder, "the server did not start"
    try:
        yield holder["reg"], loop
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(60)
        loop.close()
