"""`UpstreamClient` against a real registry: Debian's docker-registry (CNCF distribution 2.8)
in its three auth modes, with the real token server, and through the fault proxy.

Each test pushes deterministic images with `push_layout_http`, then reads them back with the
client and compares bytes and digests with what was built.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import requests

from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultProxy
from tests.peers.images import (
    OCI_INDEX,
    BuiltImage,
    BuiltIndex,
    OciLayout,
    build_image,
    build_index,
    push_layout_http,
)
from tests.unit.imports.doubles import MemoryWriter, Sleeps
from transship.config import UpstreamHost
from transship.imports.endpoints import resolve_endpoint
from transship.imports.errors import ImportFailure, Step
from transship.imports.ports import Credentials
from transship.imports.retry import RetryPolicy
from transship.imports.upstream import UpstreamClient
from transship.oci.digest import Digest

pytestmark = pytest.mark.peers

MiB = 1 << 20
REPO = "team/app"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        auto_decompress=False, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as s:
        yield s


def client_for(
    session: aiohttp.ClientSession,
    host: str,
    base_url: str,
    credentials: Credentials | None = None,
    *,
    retry: RetryPolicy | None = None,
    read_timeout: float = 30.0,
) -> UpstreamClient:
    """A client for REPO on `host`, reached at `base_url` through an `upstreams` override."""
    endpoint = resolve_endpoint(host, {host: UpstreamHost(endpoint=base_url, insecure=True)})
    return UpstreamClient(
        session,
        endpoint,
        REPO,
        credentials,
        retry=retry or RetryPolicy(attempts=3, base_delay=0.05),
        max_manifest_bytes=4 * MiB,
        read_timeout=read_timeout,
    )


def sizes_of(built: BuiltIndex | BuiltImage) -> dict[str, int]:
    children = built.children if isinstance(built, BuiltIndex) else (built,)
    return {
        d.digest: d.size
        for child in children
        for d in (child.config, *(layer.descriptor for layer in child.layers))
    }


async def assert_whole_image_reads_back(client: UpstreamClient, built: BuiltIndex) -> None:
    """The index by tag, each child by digest byte-identical, and every blob verified."""
    root = await client.get_manifest("multi")
    assert root.content == built.index_bytes
    assert root.media_type == OCI_INDEX
    assert str(root.digest) == built.digest
    for child in built.children:
        fetched = await client.get_manifest(Digest.parse(child.digest))
        assert fetched.content == child.manifest_bytes
        assert fetched.media_type == child.media_type
        assert str(fetched.digest) == child.digest
    sizes = sizes_of(built)
    for digest in built.blob_digests:
        writer = MemoryWriter()
        await client.fetch_blob(Digest.parse(digest), sizes[digest], writer)
        assert str(writer.digest) == digest
        assert writer.offset == sizes[digest]


@pytest.fixture
def multiarch(oci_layout: OciLayout) -> BuiltIndex:
    return build_index(
        oci_layout, tag="multi", layer_sizes=(1024, 300_000), shared_layer_size=50_000
    )


# -- auth modes --------------------------------------------------------------------------------


async def test_anonymous_registry_multi_arch_index_reads_back_byte_identical(
    distribution_anon: DistributionRegistry,
    multiarch: BuiltIndex,
    session: aiohttp.ClientSession,
) -> None:
    await asyncio.to_thread(push_layout_http, multiarch, distribution_anon.url, REPO, "multi")
    client = client_for(session, distribution_anon.host, distribution_anon.url)
    await assert_whole_image_reads_back(client, multiarch)


async def test_anonymous_registry_unknown_manifest_and_blob(
    distribution_anon: DistributionRegistry, multiarch: BuiltIndex, session: aiohttp.ClientSession
) -> None:
    await asyncio.to_thread(push_layout_http, multiarch, distribution_anon.url, REPO, "multi")
    client = client_for(session, distribution_anon.host, distribution_anon.url)
    with pytest.raises(ImportFailure) as info:
        await client.get_manifest("no-such-tag")
    assert (info.value.code, info.value.upstream_status, info.value.obj) == (
        "ManifestUnknown",
        404,
        f"{REPO}:no-such-tag",
    )
    absent = Digest.of(b"not pushed")
    with pytest.raises(ImportFailure) as info:
        await client.fetch_blob(absent, 10, MemoryWriter())
    assert (info.value.code, info.value.upstream_status, info.value.step) == (
        "BlobUnknown",
        404,
        Step.COPY,
    )


async def test_htpasswd_registry_with_good_and_wrong_passwords(
    distribution_htpasswd: DistributionRegistry,
    multiarch: BuiltIndex,
    session: aiohttp.ClientSession,
) -> None:
    registry = distribution_htpasswd
    assert registry.username is not None and registry.password is not None
    await asyncio.to_thread(
        push_layout_http, multiarch, registry.url, REPO, "multi", auth=registry.auth
    )
    good = client_for(
        session, registry.host, registry.url, Credentials(registry.username, registry.password)
    )
    await assert_whole_image_reads_back(good, multiarch)

    wrong_password = "definitely-" + registry.password[::-1]
    wrong = client_for(
        session, registry.host, registry.url, Credentials(registry.username, wrong_password)
    )
    with pytest.raises(ImportFailure) as info:
        await wrong.get_manifest("multi")
    failure = info.value
    assert (failure.code, failure.step, failure.upstream_status, failure.obj) == (
        "UpstreamUnauthorized",
        Step.AUTHENTICATE,
        401,
        registry.host,
    )
    assert wrong_password not in f"{failure} {failure!r}"

    with pytest.raises(ImportFailure) as info:
        await client_for(session, registry.host, registry.url).get_manifest("multi")
    assert info.value.code == "UpstreamUnauthorized"


async def test_token_registry_uses_the_real_token_server_with_credentials_and_scope(
    distribution_token: DistributionRegistry,
    multiarch: BuiltIndex,
    session: aiohttp.ClientSession,
) -> None:
    registry = distribution_token
    tokens = registry.token_server
    assert tokens is not None and registry.username is not None and registry.password is not None
    await asyncio.to_thread(
        push_layout_http, multiarch, registry.url, REPO, "multi", auth=registry.auth
    )
    tokens.clear_requests()

    client = client_for(
        session, registry.host, registry.url, Credentials(registry.username, registry.password)
    )
    await assert_whole_image_reads_back(client, multiarch)
    seen = tokens.requests
    assert len(seen) == 1, "the token is cached for the whole image"
    (request,) = seen
    assert request.method == "GET"
    assert request.authenticated and request.username == registry.username
    assert request.query["service"] == [tokens.service]
    assert request.scopes == (f"repository:{REPO}:pull",)
    assert request.granted == ({"type": "repository", "name": REPO, "actions": ["pull"]},)


async def test_token_registry_anonymous_pull_and_wrong_password(
    distribution_token: DistributionRegistry,
    multiarch: BuiltIndex,
    session: aiohttp.ClientSession,
) -> None:
    registry = distribution_token
    tokens = registry.token_server
    assert tokens is not None and registry.username is not None and registry.password is not None
    await asyncio.to_thread(
        push_layout_http, multiarch, registry.url, REPO, "multi", auth=registry.auth
    )
    tokens.clear_requests()

    anonymous = client_for(session, registry.host, registry.url)
    assert (await anonymous.get_manifest("multi")).content == multiarch.index_bytes
    assert [r.authorization for r in tokens.requests] == [None]

    tokens.clear_requests()
    wrong_password = registry.password + "-nope"
    wrong = client_for(
        session, registry.host, registry.url, Credentials(registry.username, wrong_password)
    )
    with pytest.raises(ImportFailure) as info:
        await wrong.get_manifest("multi")
    failure = info.value
    assert (failure.code, failure.step, failure.upstream_status) == (
        "UpstreamUnauthorized",
        Step.AUTHENTICATE,
        401,
    )
    assert "token service" in failure.message
    assert wrong_password not in f"{failure} {failure!r}"
    assert [r.status for r in tokens.requests] == [401]


async def test_token_registry_with_a_refresh_token(
    distribution_token: DistributionRegistry,
    multiarch: BuiltIndex,
    session: aiohttp.ClientSession,
) -> None:
    registry = distribution_token
    tokens = registry.token_server
    assert tokens is not None and registry.username is not None
    await asyncio.to_thread(
        push_layout_http, multiarch, registry.url, REPO, "multi", auth=registry.auth
    )
    with requests.Session() as http:
        http.trust_env = False
        answer = http.post(
            tokens.realm,
            data={
                "grant_type": "password",
                "username": registry.username,
                "password": registry.password,
                "service": tokens.service,
                "access_type": "offline",
                "client_id": "test",
            },
            timeout=30,
        )
    refresh = answer.json()["refresh_token"]
    tokens.clear_requests()
    client = client_for(session, registry.host, registry.url, Credentials(None, refresh))
    assert (await client.get_manifest("multi")).content == multiarch.index_bytes
    (request,) = tokens.requests
    assert (request.method, request.grant_type, request.username) == (
        "POST",
        "refresh_token",
        registry.username,
    )


# -- faults --------------------------------------------------------------------------------------


@pytest.fixture
def big_image(oci_layout: OciLayout) -> BuiltImage:
    return build_image(oci_layout, tag="big", layer_sizes=(12 * MiB,), seed="big")


def big_layer(image: BuiltImage) -> tuple[Digest, int]:
    layer = image.layers[0].descriptor
    return Digest.parse(layer.digest), layer.size


async def test_a_connection_reset_mid_blob_resumes_and_completes(
    distribution_anon: DistributionRegistry,
    big_image: BuiltImage,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    session: aiohttp.ClientSession,
) -> None:
    await asyncio.to_thread(push_layout_http, big_image, distribution_anon.url, REPO, "big")
    proxy = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    digest, size = big_layer(big_image)
    assert size > 10 * MiB
    proxy.reset_after(3 * MiB, once=True)
    sleeps = Sleeps()
    client = client_for(
        session,
        distribution_anon.host,
        proxy.url,
        retry=RetryPolicy(attempts=3, base_delay=0.05, jitter=0.0, sleep=sleeps),
    )
    writer = MemoryWriter()
    await client.fetch_blob(digest, size, writer)
    assert writer.digest == digest
    assert writer.offset == size
    assert proxy.stats.resets == 1
    assert proxy.stats.connections >= 2
    # Resumed with Range where the cut left it, not restarted.
    assert writer.resets == 0
    assert len(writer.append_offsets) == 2 and 0 < writer.append_offsets[1] <= 3 * MiB
    assert len(sleeps.delays) == 1


async def test_a_stall_mid_blob_times_out_and_resumes(
    distribution_anon: DistributionRegistry,
    big_image: BuiltImage,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    session: aiohttp.ClientSession,
) -> None:
    await asyncio.to_thread(push_layout_http, big_image, distribution_anon.url, REPO, "big")
    proxy = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    digest, size = big_layer(big_image)
    # Slow enough that little is in flight when the stall starts.
    proxy.bandwidth(8 * MiB)
    timers: list[threading.Timer] = []
    writer = MemoryWriter()

    def stall_once(offset: int) -> None:
        if offset >= 2 * MiB and not timers:
            proxy.blackhole()
            timer = threading.Timer(1.5, proxy.passthrough)
            timers.append(timer)
            timer.start()

    writer.on_progress = stall_once
    client = client_for(
        session,
        distribution_anon.host,
        proxy.url,
        retry=RetryPolicy(attempts=10, base_delay=0.2, max_delay=0.5, jitter=0.0),
        read_timeout=0.5,
    )
    try:
        await client.fetch_blob(digest, size, writer)
    finally:
        for timer in timers:
            timer.cancel()
    assert timers, "the stall was never triggered"
    assert proxy.stats.connections >= 2
    assert writer.digest == digest
    assert writer.resets == 0
    assert writer.append_offsets[0] == 0
    assert writer.append_offsets[-1] >= 2 * MiB, "resumed from where the stall left it"


async def test_a_stall_that_outlasts_the_retry_budget_is_upstream_unavailable(
    distribution_anon: DistributionRegistry,
    big_image: BuiltImage,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    session: aiohttp.ClientSession,
) -> None:
    await asyncio.to_thread(push_layout_http, big_image, distribution_anon.url, REPO, "big")
    proxy = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    digest, size = big_layer(big_image)
    proxy.blackhole()
    client = client_for(
        session,
        distribution_anon.host,
        proxy.url,
        retry=RetryPolicy(attempts=2, base_delay=0.05, jitter=0.0),
        read_timeout=0.3,
    )
    with pytest.raises(ImportFailure) as info:
        await client.fetch_blob(digest, size, MemoryWriter())
    failure = info.value
    assert (failure.code, failure.step, failure.obj, failure.retryable) == (
        "UpstreamUnavailable",
        Step.COPY,
        str(digest),
        True,
    )
    assert distribution_anon.host in failure.message
    assert proxy.stats.connections == 2


async def test_a_refused_upstream_is_upstream_unreachable(
    distribution_anon: DistributionRegistry,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    session: aiohttp.ClientSession,
) -> None:
    proxy = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    proxy.refuse()
    client = client_for(
        session,
        "gone.example:5000",
        proxy.url,
        retry=RetryPolicy(attempts=2, base_delay=0.01, jitter=0.0),
    )
    with pytest.raises(ImportFailure) as info:
        await client.get_manifest("multi")
    assert (info.value.code, info.value.obj, info.value.retryable) == (
        "UpstreamUnreachable",
        "gone.example:5000",
        True,
    )
    assert "gone.example:5000" in info.value.message
