"""`UpstreamClient` against small in-process registries on loopback (see fake_registry.py).

Auth flows (Basic, Bearer with token caching and scope changes, refresh tokens),
redirects (credentials stay on the registry's origin), retries (429 with Retry-After, 5xx),
resumption by Range (cut, stalled and short bodies, ignored Range), manifest and blob
verification, TLS settings, and the failures each path raises.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import random
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.unit.imports.doubles import MemoryWriter, Sleeps
from tests.unit.imports.fake_registry import (
    REPO,
    BadRange,
    Body,
    Cut,
    Extra,
    FakeRegistry,
    FakeStorage,
    FakeTokenService,
    Hang,
    IgnoreRange,
    PartialRange,
    Redirect,
    Short,
    Stall,
    Status,
    scopes_asked,
)
from tests.unit.imports.tls import write_self_signed
from transship.config import UpstreamHost
from transship.imports.auth_memory import UpstreamAuthMemory
from transship.imports.endpoints import Endpoint, resolve_endpoint
from transship.imports.errors import ImportFailure, Step
from transship.imports.ports import Credentials
from transship.imports.retry import RetryPolicy
from transship.imports.upstream import CHUNK_SIZE, UpstreamClient
from transship.oci import mediatypes as mt
from transship.oci.digest import Digest

HOST = "upstream.test:5000"  # what the import request named; the endpoint override points home
PULL = f"repository:{REPO}:pull"


# -- test doubles ----------------------------------------------------------------------------


@functools.cache
def blob_bytes(size: int, seed: int = 1) -> bytes:
    # Deterministic bytes made in C: a Python loop over 32-byte hashes held the test's loop
    # past the stall guard's bound for a few MiB.
    return random.Random(seed).randbytes(size)


def digest_of(data: bytes) -> Digest:
    return Digest.of(data)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


@pytest.fixture
async def servers() -> AsyncIterator[list[Any]]:
    started: list[Any] = []
    yield started
    for server in reversed(started):
        await server.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


Start = Callable[..., Awaitable[Any]]


@pytest.fixture
def start(servers: list[Any]) -> Start:
    async def _start(server: Any, **kwargs: Any) -> Any:
        await server.start(**kwargs)
        servers.append(server)
        return server

    return _start


def endpoint_for(registry: FakeRegistry, host: str = HOST) -> Endpoint:
    return resolve_endpoint(host, {host: UpstreamHost(endpoint=registry.url, insecure=True)})


def make_client(
    session: aiohttp.ClientSession,
    registry: FakeRegistry,
    sleeps: Sleeps,
    credentials: Credentials | None = None,
    *,
    attempts: int = 4,
    read_timeout: float = 5.0,
    max_manifest_bytes: int = 1 << 20,
    clock: Callable[[], float] | None = None,
    endpoint: Endpoint | None = None,
    auth_memory: UpstreamAuthMemory | None = None,
) -> UpstreamClient:
    retry = RetryPolicy(
        attempts=attempts,
        base_delay=0.25,
        max_delay=2.0,
        jitter=0.0,
        max_retry_after=60.0,
        sleep=sleeps,
    )
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    return UpstreamClient(
        session,
        endpoint or endpoint_for(registry),
        REPO,
        credentials,
        retry=retry,
        max_manifest_bytes=max_manifest_bytes,
        read_timeout=read_timeout,
        auth_memory=auth_memory,
        **extra,
    )


def creds_of(registry: FakeRegistry) -> Credentials:
    return Credentials(registry.username, registry.password)


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    text = f"{exc} {exc!r} {getattr(exc, 'message', '')} {getattr(exc, 'obj', '')}"
    for secret in secrets:
        assert secret not in text


# -- construction ----------------------------------------------------------------------------


async def test_a_decompressing_session_is_refused(sleeps: Sleeps) -> None:
    endpoint = Endpoint("h", "http://127.0.0.1:1")
    async with aiohttp.ClientSession() as decompressing:
        with pytest.raises(ValueError, match="auto_decompress=False"):
            UpstreamClient(
                decompressing, endpoint, REPO, None, retry=RetryPolicy(), max_manifest_bytes=10
            )


async def test_an_invalid_repository_is_refused(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError):
        UpstreamClient(
            session,
            Endpoint("h", "http://127.0.0.1:1"),
            "../etc",
            None,
            retry=RetryPolicy(),
            max_manifest_bytes=10,
        )


# -- manifests -------------------------------------------------------------------------------


async def test_manifest_by_tag_is_exact_bytes_with_type_and_sha256(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = (
        b'{"schemaVersion":2,  "mediaType":"application/vnd.oci.image.index.v1+json",'
        b'"manifests":[]}'
    )
    digest = registry.add_manifest(data, mt.OCI_INDEX, tag="v1")
    fetched = await make_client(session, registry, sleeps).get_manifest("v1")
    assert fetched.content == data
    assert fetched.media_type == mt.OCI_INDEX
    assert str(fetched.digest) == digest
    accept = registry.seen("manifest")[0].headers["Accept"]
    assert {t.strip() for t in accept.split(",")} >= {
        mt.OCI_MANIFEST,
        mt.OCI_INDEX,
        mt.DOCKER_MANIFEST,
        mt.DOCKER_MANIFEST_LIST,
    }


async def test_manifest_by_digest_is_verified_with_its_own_algorithm(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = b'{"schemaVersion":2}'
    sha512 = Digest.of(data, "sha512")
    registry.manifests[str(sha512)] = (data, mt.DOCKER_MANIFEST)
    fetched = await make_client(session, registry, sleeps).get_manifest(sha512)
    assert fetched.digest == sha512
    assert fetched.content == data
    assert fetched.media_type == mt.DOCKER_MANIFEST


async def test_manifest_by_digest_with_other_bytes_is_digest_invalid(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    wanted = registry.add_manifest(b'{"a":1}')
    registry.on("manifest", Body(b'{"a":2}', {"Content-Type": mt.OCI_MANIFEST}))
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).get_manifest(Digest.parse(wanted))
    assert info.value.code == "DIGEST_INVALID"
    assert info.value.step is Step.PLAN
    assert info.value.obj == f"{REPO}@{wanted}"


async def test_tag_whose_docker_content_digest_disagrees_is_digest_invalid(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = b'{"schemaVersion":2}'
    lie = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    registry.on(
        "manifest", Body(data, {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": lie})
    )
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).get_manifest("latest")
    assert info.value.code == "DIGEST_INVALID"
    assert lie in info.value.message
    # The same bytes with a matching header pass, and without one the digest is computed.
    registry.on(
        "manifest",
        Body(
            data, {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": str(digest_of(data))}
        ),
    )
    registry.on("manifest", Body(data, {"Content-Type": mt.OCI_MANIFEST}))
    client = make_client(session, registry, sleeps)
    assert (await client.get_manifest("latest")).digest == digest_of(data)
    assert (await client.get_manifest("latest")).digest == digest_of(data)


async def test_oversize_manifests_are_refused_announced_or_not(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    big = b'{"pad":"' + b"x" * 5000 + b'"}'
    registry.on("manifest", Body(big, {"Content-Type": mt.OCI_MANIFEST}))
    registry.on("manifest", Body(big, {"Content-Type": mt.OCI_MANIFEST}, chunked=True))
    client = make_client(session, registry, sleeps, max_manifest_bytes=4096)
    for _ in range(2):
        with pytest.raises(ImportFailure) as info:
            await client.get_manifest("big")
        assert info.value.code == "ManifestTooLarge"
        assert info.value.step is Step.PLAN
        assert not info.value.retryable
    # Exactly at the limit is fine.
    registry.add_manifest(big, tag="fits")
    assert (
        await make_client(session, registry, sleeps, max_manifest_bytes=len(big)).get_manifest(
            "fits"
        )
    ).content == big


async def test_missing_manifest_is_manifest_unknown(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).get_manifest("nope")
    failure = info.value
    assert (failure.code, failure.obj, failure.upstream_status, failure.step) == (
        "ManifestUnknown",
        f"{REPO}:nope",
        404,
        Step.PLAN,
    )
    assert sleeps.delays == []


async def test_manifest_media_type_falls_back_to_the_json_when_content_type_is_generic(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST}).encode()
    registry.on("manifest", Body(data, {"Content-Type": "application/json; charset=utf-8"}))
    assert (
        await make_client(session, registry, sleeps).get_manifest("x")
    ).media_type == mt.DOCKER_MANIFEST_LIST


async def test_manifest_5xx_and_a_cut_body_are_retried(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = b'{"schemaVersion":2,"padding":"' + b"p" * 10_000 + b'"}'
    registry.add_manifest(data, tag="v1")
    registry.on("manifest", Status(502), Cut(after=100))
    fetched = await make_client(session, registry, sleeps).get_manifest("v1")
    assert fetched.content == data
    assert sleeps.delays == [0.25, 0.5]


@pytest.mark.parametrize("reference", ["sha384:abc", "bad/tag", "-dash", "sha256:XYZ"])
async def test_invalid_references_never_reach_the_upstream(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps, reference: str
) -> None:
    registry = await start(FakeRegistry())
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).get_manifest(reference)
    assert info.value.code == "InvalidReference"
    assert registry.requests == []


# -- blobs: the plain path -------------------------------------------------------------------


async def test_blob_streams_in_bounded_chunks(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(3 * CHUNK_SIZE + 123)
    digest = registry.add_blob(data)
    writer = MemoryWriter()
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert writer.digest == Digest.parse(digest)
    assert writer.append_offsets == [0]
    assert max(writer.chunk_sizes) <= CHUNK_SIZE
    assert "Range" not in registry.seen("blob")[0].headers
    assert registry.seen("blob")[0].headers.get("Accept-Encoding") == "identity"


async def test_empty_blob(session: aiohttp.ClientSession, start: Start, sleeps: Sleeps) -> None:
    registry = await start(FakeRegistry())
    registry.add_blob(b"")
    writer = MemoryWriter()
    await make_client(session, registry, sleeps).fetch_blob(digest_of(b""), 0, writer)
    assert writer.offset == 0
    assert len(registry.seen("blob")) == 1


async def test_a_writer_that_already_has_everything_fetches_nothing(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(1000)
    registry.add_blob(data)
    writer = MemoryWriter(prefill=data)
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert registry.requests == []


async def test_missing_blob_is_blob_unknown_without_retries(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    digest = digest_of(b"absent")
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).fetch_blob(digest, 6, MemoryWriter())
    failure = info.value
    assert (
        failure.code,
        failure.obj,
        failure.upstream_status,
        failure.step,
        failure.retryable,
    ) == (
        "BlobUnknown",
        str(digest),
        404,
        Step.COPY,
        False,
    )
    assert len(registry.seen("blob")) == 1
    assert sleeps.delays == []


# -- blobs: retries ----------------------------------------------------------------------------


async def test_429_retry_after_is_honoured(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(5000)
    registry.add_blob(data)
    registry.on("blob", Status(429, {"Retry-After": "7"}), Status(429, {"Retry-After": "3"}))
    writer = MemoryWriter()
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert sleeps.delays == [7.0, 3.0]
    assert writer.digest == digest_of(data)
    assert len(registry.seen("blob")) == 3


async def test_5xx_then_success_backs_off_exponentially(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(5000)
    registry.add_blob(data)
    registry.on("blob", Status(500), Status(502), Status(504))
    writer = MemoryWriter()
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert sleeps.delays == [0.25, 0.5, 1.0]
    assert writer.digest == digest_of(data)


async def test_giving_up_is_upstream_unavailable_naming_the_blob_and_last_status(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(100)
    registry.add_blob(data)
    registry.on("blob", Status(500), Status(503), Status(503))
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps, attempts=3).fetch_blob(
            digest_of(data), 100, MemoryWriter()
        )
    failure = info.value
    assert failure.code == "UpstreamUnavailable"
    assert failure.retryable
    assert failure.upstream_status == 503
    assert failure.step is Step.COPY
    assert failure.obj == str(digest_of(data))
    assert str(digest_of(data)) in failure.message and HOST in failure.message
    assert len(registry.seen("blob")) == 3
    assert sleeps.delays == [0.25, 0.5]


async def test_other_statuses_fail_at_once(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(100)
    registry.add_blob(data)
    registry.on("blob", Status(400))
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).fetch_blob(
            digest_of(data), 100, MemoryWriter()
        )
    assert (info.value.code, info.value.upstream_status, info.value.retryable) == (
        "UpstreamError",
        400,
        False,
    )
    assert sleeps.delays == []


# -- blobs: resumption -----------------------------------------------------------------------


async def test_a_body_cut_midway_resumes_with_range_from_the_writer_offset(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(2 * CHUNK_SIZE + 4321)
    registry.add_blob(data)
    registry.on("blob", Cut(after=700_000))
    writer = MemoryWriter()
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert writer.digest == digest_of(data)
    assert writer.resets == 0
    first, second = registry.seen("blob")
    assert "Range" not in first.headers
    resumed_at = writer.append_offsets[1]
    assert 0 < resumed_at <= 700_000
    assert second.headers["Range"] == f"bytes={resumed_at}-"
    assert len(sleeps.delays) == 1


async def test_a_200_answer_to_a_range_request_resets_the_writer(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(300_000)
    registry.add_blob(data)
    registry.on("blob", IgnoreRange())
    writer = MemoryWriter(prefill=data[:1000])
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert registry.seen("blob")[0].headers["Range"] == "bytes=1000-"
    assert writer.resets == 1
    assert writer.digest == digest_of(data)
    assert writer.offset == len(data)


async def test_a_cut_then_an_ignored_range_still_completes(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(500_000)
    registry.add_blob(data)
    registry.on("blob", Cut(after=200_000), IgnoreRange())
    writer = MemoryWriter()
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert writer.resets == 1
    assert writer.digest == digest_of(data)


async def test_a_stalled_body_times_out_and_resumes(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(400_000)
    registry.add_blob(data)
    release = asyncio.Event()
    registry.on("blob", Stall(after=150_000, release=release))
    writer = MemoryWriter()
    try:
        await asyncio.wait_for(
            make_client(session, registry, sleeps, read_timeout=0.3).fetch_blob(
                digest_of(data), len(data), writer
            ),
            timeout=10,
        )
    finally:
        release.set()
    assert writer.digest == digest_of(data)
    assert len(writer.append_offsets) == 2 and writer.append_offsets[1] > 0
    assert registry.seen("blob")[1].headers["Range"] == f"bytes={writer.append_offsets[1]}-"


async def test_a_stall_before_any_header_times_out_too(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    release = asyncio.Event()
    data = blob_bytes(1000)
    registry.add_blob(data)
    registry.on("blob", Hang(release), Hang(release))
    client = make_client(session, registry, sleeps, attempts=2, read_timeout=0.2)
    try:
        with pytest.raises(ImportFailure) as info:
            await asyncio.wait_for(client.fetch_blob(digest_of(data), 1000, MemoryWriter()), 10)
    finally:
        release.set()
    assert info.value.code == "UpstreamUnavailable"
    assert info.value.retryable
    assert info.value.upstream_status is None
    assert "no data" in info.value.message
    assert len(registry.seen("blob")) == 2
    assert sleeps.delays == [0.25]


async def test_a_clean_but_short_body_is_continued_at_once(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(200_000)
    registry.add_blob(data)
    registry.on("blob", Short(50_000), PartialRange(60_000))
    writer = MemoryWriter()
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert writer.digest == digest_of(data)
    assert writer.append_offsets == [0, 50_000, 110_000]
    assert [r.headers.get("Range") for r in registry.seen("blob")] == [
        None,
        "bytes=50000-",
        "bytes=110000-",
    ]
    assert sleeps.delays == []


async def test_a_range_answer_from_the_wrong_offset_restarts_from_zero(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(100_000)
    registry.add_blob(data)
    registry.on("blob", BadRange(start=10))
    writer = MemoryWriter(prefill=data[:5000])
    await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert writer.resets == 1
    assert [r.headers.get("Range") for r in registry.seen("blob")] == ["bytes=5000-", None]
    assert writer.digest == digest_of(data)


async def test_repeated_cuts_without_progress_give_up(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(100_000)
    registry.add_blob(data)
    registry.on("blob", Cut(after=0), Cut(after=0), Cut(after=0))
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps, attempts=3).fetch_blob(
            digest_of(data), len(data), MemoryWriter()
        )
    assert info.value.code == "UpstreamUnavailable"
    assert info.value.upstream_status is None
    assert "connection" in info.value.message.lower() or "payload" in info.value.message.lower()


async def test_cuts_that_make_progress_do_not_use_up_the_budget(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(1_000_000)
    registry.add_blob(data)
    registry.on("blob", *(Cut(after=100_000) for _ in range(6)))
    writer = MemoryWriter()
    await make_client(session, registry, sleeps, attempts=2).fetch_blob(
        digest_of(data), len(data), writer
    )
    assert writer.digest == digest_of(data)
    assert len(registry.seen("blob")) == 7


# -- blobs: size -------------------------------------------------------------------------------


async def test_more_bytes_than_size_is_size_invalid_and_never_kept(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(3 * CHUNK_SIZE)
    registry.add_blob(data)
    registry.on("blob", Extra(b"EXTRA" * 1000, chunked=True))
    writer = MemoryWriter()
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert info.value.code == "SIZE_INVALID"
    assert info.value.step is Step.COPY
    assert writer.offset <= len(data)
    assert sleeps.delays == []


async def test_an_announced_length_other_than_size_is_size_invalid_before_reading(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(10_000)
    registry.add_blob(data)
    registry.on("blob", Extra(b"x", chunked=False))
    writer = MemoryWriter()
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert info.value.code == "SIZE_INVALID"
    assert writer.offset == 0


async def test_a_descriptor_size_larger_than_the_blob_is_size_invalid(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(10_000)
    registry.add_blob(data)
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).fetch_blob(
            digest_of(data), len(data) + 1, MemoryWriter()
        )
    assert info.value.code == "SIZE_INVALID"


async def test_the_writers_own_failure_propagates_unretried(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(3 * CHUNK_SIZE)
    registry.add_blob(data)

    class DiskFull(Exception):
        pass

    writer = MemoryWriter()

    def fail(offset: int) -> None:
        raise DiskFull()

    writer.on_progress = fail
    with pytest.raises(DiskFull):
        await make_client(session, registry, sleeps).fetch_blob(digest_of(data), len(data), writer)
    assert len(registry.seen("blob")) == 1


# -- auth: Basic -------------------------------------------------------------------------------


async def test_basic_challenge_uses_the_credentials_and_then_sends_them_up_front(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry(auth="basic"))
    data = blob_bytes(1000)
    registry.add_blob(data)
    registry.add_manifest(b"{}", tag="v1")
    client = make_client(session, registry, sleeps, creds_of(registry))
    await client.get_manifest("v1")
    await client.fetch_blob(digest_of(data), len(data), MemoryWriter())
    auths = [r.headers.get("Authorization") for r in registry.requests]
    assert auths[0] is None
    assert all(a is not None and a.startswith("Basic ") for a in auths[1:])
    assert len(registry.requests) == 3  # one challenge, then credentials up front


async def test_basic_without_credentials_is_unauthorized(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry(auth="basic"))
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).get_manifest("v1")
    failure = info.value
    assert (failure.code, failure.step, failure.obj, failure.upstream_status) == (
        "UpstreamUnauthorized",
        Step.AUTHENTICATE,
        HOST,
        401,
    )
    assert HOST in failure.message


async def test_basic_with_a_wrong_password_is_unauthorized_and_keeps_it_secret(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = await start(FakeRegistry(auth="basic"))
    wrong = Credentials("alice", "wr0ng-hunter2")
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps, wrong).get_manifest("v1")
    assert info.value.code == "UpstreamUnauthorized"
    assert len(registry.requests) == 2
    assert_no_secret(info.value, "wr0ng-hunter2")
    assert "wr0ng-hunter2" not in caplog.text  # the server's access log included


# -- auth: Bearer ------------------------------------------------------------------------------


async def bearer_setup(start: Start, **token_kwargs: Any) -> tuple[FakeRegistry, FakeTokenService]:
    registry = FakeRegistry(auth="bearer")
    tokens = FakeTokenService(registry, **token_kwargs)
    await start(tokens)
    await start(registry)
    return registry, tokens


async def test_bearer_token_is_fetched_with_credentials_service_and_scope_then_cached(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    registry.add_manifest(b"{}", tag="v1")
    blobs = [blob_bytes(5000, seed) for seed in range(3)]
    for blob in blobs:
        registry.add_blob(blob)
    client = make_client(session, registry, sleeps, creds_of(registry))
    await client.get_manifest("v1")
    for blob in blobs:
        await client.fetch_blob(digest_of(blob), len(blob), MemoryWriter())
    (token_request,) = tokens.token_requests
    assert token_request.method == "GET"
    assert token_request.query["service"] == "fake-registry"
    assert scopes_asked(token_request) == [PULL]
    assert token_request.headers["Authorization"].startswith("Basic ")
    # One challenge; every later request carried the token up front.
    statuses_auth = [r.headers.get("Authorization") for r in registry.requests]
    assert statuses_auth[0] is None
    assert statuses_auth[1:] == ["Bearer tok-1"] * 4


async def test_bearer_anonymous_asks_the_realm_without_credentials(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start, token_key="access_token", expires_in=None)
    registry.add_manifest(b"{}", tag="v1")
    await make_client(session, registry, sleeps).get_manifest("v1")
    (token_request,) = tokens.token_requests
    assert "Authorization" not in token_request.headers
    assert registry.requests[-1].headers["Authorization"] == "Bearer tok-1"


async def test_a_challenge_for_a_new_scope_gets_a_new_token(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    wider = f"repository:{REPO}:pull,push repository:other/repo:pull"
    registry.scope_for["blob"] = wider
    registry.add_manifest(b"{}", tag="v1")
    data = blob_bytes(1000)
    registry.add_blob(data)
    client = make_client(session, registry, sleeps, creds_of(registry))
    await client.get_manifest("v1")
    await client.fetch_blob(digest_of(data), len(data), MemoryWriter())
    await client.fetch_blob(digest_of(data), len(data), MemoryWriter())
    assert [scopes_asked(r) for r in tokens.token_requests] == [[PULL], wider.split(" ")]
    # The second blob went out with the wider token at once.
    assert registry.seen("blob")[-1].headers["Authorization"] == "Bearer tok-2"
    assert len(registry.seen("blob")) == 3


async def test_a_realm_that_refuses_the_credentials_is_unauthorized_with_its_status(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry, tokens = await bearer_setup(start)
    wrong = Credentials("alice", "n0t-the-pa55word")
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps, wrong).get_manifest("v1")
    failure = info.value
    assert (failure.code, failure.step, failure.upstream_status, failure.obj) == (
        "UpstreamUnauthorized",
        Step.AUTHENTICATE,
        401,
        HOST,
    )
    assert "token service" in failure.message and HOST in failure.message
    (token_request,) = tokens.token_requests
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert len(registry.requests) == 1
    assert_no_secret(failure, "n0t-the-pa55word")
    assert "n0t-the-pa55word" not in caplog.text


async def test_a_fresh_token_refused_again_is_unauthorized_after_one_retry(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    registry.accept_tokens = False
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).get_manifest("v1")
    assert info.value.code == "UpstreamUnauthorized"
    assert info.value.upstream_status == 401
    assert len(tokens.token_requests) == 1
    assert len(registry.requests) == 2
    assert_no_secret(info.value, "tok-1")


async def test_a_cached_token_the_registry_stops_accepting_is_replaced_once(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    registry.add_manifest(b"{}", tag="v1")
    client = make_client(session, registry, sleeps)
    await client.get_manifest("v1")
    registry.revoked.add("tok-1")
    await client.get_manifest("v1")
    assert len(tokens.token_requests) == 2
    assert registry.requests[-1].headers["Authorization"] == "Bearer tok-2"


# -- auth: what one client learnt, the next one of the same credentials uses ------------------


async def shared_bearer(start: Start) -> tuple[FakeRegistry, FakeTokenService, UpstreamAuthMemory]:
    """A bearer registry holding `v1`, its token service, and a memory for clients to share."""
    registry, tokens = await bearer_setup(start)
    registry.add_manifest(b"{}", tag="v1")
    return registry, tokens, UpstreamAuthMemory()


async def pull_v1(
    session: aiohttp.ClientSession,
    registry: FakeRegistry,
    sleeps: Sleeps,
    memory: UpstreamAuthMemory,
    credentials: Credentials | None = None,
) -> None:
    """GET `v1` with a new client sharing `memory`."""
    client = make_client(session, registry, sleeps, credentials, auth_memory=memory)
    await client.get_manifest("v1")


async def test_a_second_client_sends_the_token_an_earlier_one_got_up_front(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens, memory = await shared_bearer(start)
    await pull_v1(session, registry, sleeps, memory, creds_of(registry))
    assert len(registry.requests) == 2  # the 401, then the answer
    await pull_v1(session, registry, sleeps, memory, creds_of(registry))
    assert len(tokens.token_requests) == 1
    assert len(registry.requests) == 3  # one request, no challenge
    assert registry.requests[-1].headers["Authorization"] == "Bearer tok-1"


async def test_a_token_is_never_sent_for_other_credentials_or_anonymously(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens, memory = await shared_bearer(start)
    await pull_v1(session, registry, sleeps, memory, creds_of(registry))
    sent = len(registry.requests)
    await pull_v1(session, registry, sleeps, memory)
    anonymous = registry.requests[sent:]
    assert [r.headers.get("Authorization") for r in anonymous] == [None, "Bearer tok-2"]
    assert "Authorization" not in tokens.token_requests[1].headers
    # The same user name with another password is other credentials too.
    other = Credentials(registry.username, "an0ther-pa55")
    with pytest.raises(ImportFailure) as info:
        await pull_v1(session, registry, sleeps, memory, other)
    assert info.value.code == "UpstreamUnauthorized"
    tokens_sent = {r.headers.get("Authorization") for r in registry.requests[sent + 2 :]}
    assert tokens_sent == {None}


async def test_clients_challenged_at_once_fetch_one_token_between_them(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens, memory = await shared_bearer(start)
    tokens.delay = 0.2  # the others are challenged while the first fetch is under way
    await asyncio.gather(*(pull_v1(session, registry, sleeps, memory) for _ in range(5)))
    assert len(tokens.token_requests) == 1
    assert len(registry.requests) == 10  # each challenged once, then served with tok-1
    assert {r.headers.get("Authorization") for r in registry.requests[5:]} == {"Bearer tok-1"}


async def test_a_shared_token_the_registry_revoked_is_replaced_for_every_client(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens, memory = await shared_bearer(start)
    await pull_v1(session, registry, sleeps, memory)
    registry.revoked.add("tok-1")
    await pull_v1(session, registry, sleeps, memory)
    await pull_v1(session, registry, sleeps, memory)
    assert len(tokens.token_requests) == 2
    auths = [r.headers.get("Authorization") for r in registry.requests]
    assert auths == [None, "Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]


async def test_a_second_client_sends_basic_up_front_where_an_earlier_one_was_asked_for_it(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry(auth="basic"))
    registry.add_manifest(b"{}", tag="v1")
    memory = UpstreamAuthMemory()
    for _ in range(2):
        await pull_v1(session, registry, sleeps, memory, creds_of(registry))
    auths = [r.headers.get("Authorization") for r in registry.requests]
    assert len(auths) == 3 and auths[0] is None
    assert all(a is not None and a.startswith("Basic ") for a in auths[1:])
    # Anonymous clients learn nothing from it: they are not sent credentials they lack.
    with pytest.raises(ImportFailure):
        await pull_v1(session, registry, sleeps, memory)
    assert registry.requests[-1].headers.get("Authorization") is None


async def test_tokens_are_asked_for_again_when_they_expire(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start, expires_in=100)
    registry.add_manifest(b"{}", tag="v1")
    now = [1000.0]
    client = make_client(session, registry, sleeps, clock=lambda: now[0])
    await client.get_manifest("v1")
    now[0] += 80  # within the lifetime (less the safety margin)
    await client.get_manifest("v1")
    assert len(tokens.token_requests) == 1
    now[0] += 20  # past it
    await client.get_manifest("v1")
    assert len(tokens.token_requests) == 2
    assert registry.requests[-1].headers["Authorization"] == "Bearer tok-2"


async def test_concurrent_fetches_share_one_token_request(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    blobs = [blob_bytes(20_000, seed) for seed in range(6)]
    for blob in blobs:
        registry.add_blob(blob)
    client = make_client(session, registry, sleeps, creds_of(registry))
    writers = [MemoryWriter() for _ in blobs]
    await asyncio.gather(
        *(client.fetch_blob(digest_of(b), len(b), w) for b, w in zip(blobs, writers, strict=True))
    )
    assert len(tokens.token_requests) == 1
    assert [w.digest for w in writers] == [digest_of(b) for b in blobs]


async def test_a_realm_5xx_is_retried(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    registry.add_manifest(b"{}", tag="v1")
    tokens.faults.append(Status(503, {"Retry-After": "2"}))
    await make_client(session, registry, sleeps).get_manifest("v1")
    assert sleeps.delays == [2.0]
    assert len(tokens.token_requests) == 2


async def test_credentials_without_a_username_use_the_refresh_token_grant(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    registry.add_manifest(b"{}", tag="v1")
    await make_client(
        session, registry, sleeps, Credentials(None, tokens.refresh_token)
    ).get_manifest("v1")
    (token_request,) = tokens.token_requests
    assert token_request.method == "POST"
    assert token_request.form is not None
    assert token_request.form["grant_type"] == "refresh_token"
    assert token_request.form["service"] == "fake-registry"
    assert scopes_asked(token_request) == [PULL]
    assert "Authorization" not in token_request.headers


# -- redirects ---------------------------------------------------------------------------------


async def test_credentials_go_to_the_realm_and_registry_but_never_to_a_redirect_host(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry, tokens = await bearer_setup(start)
    storage = await start(FakeStorage(host="127.0.0.3"))
    data = blob_bytes(300_000)
    registry.add_blob(data)
    storage.blobs[str(digest_of(data))] = data
    registry.on("blob", Redirect(f"{storage.url}/blob/{digest_of(data)}?X-Sig=abc%2Fdef"))
    creds = creds_of(registry)
    writer = MemoryWriter()
    await make_client(session, registry, sleeps, creds).fetch_blob(
        digest_of(data), len(data), writer
    )
    assert writer.digest == digest_of(data)
    assert tokens.token_requests[0].headers["Authorization"].startswith("Basic ")
    assert registry.seen("blob")[-1].headers["Authorization"] == "Bearer tok-1"
    (at_storage,) = storage.requests
    assert "Authorization" not in at_storage.headers
    assert at_storage.query["X-Sig"] == "abc/def"  # the presigned query arrives intact


async def test_a_redirect_to_another_port_of_the_same_address_drops_basic_credentials(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry(auth="basic"))
    storage = await start(FakeStorage(host="127.0.0.1"))
    data = blob_bytes(1000)
    registry.add_blob(data)
    storage.blobs[str(digest_of(data))] = data
    registry.on("blob", Redirect(f"{storage.url}/blob/{digest_of(data)}", status=302))
    await make_client(session, registry, sleeps, creds_of(registry)).fetch_blob(
        digest_of(data), len(data), MemoryWriter()
    )
    assert registry.seen("blob")[-1].headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in storage.requests[0].headers


async def test_a_same_origin_redirect_keeps_credentials_and_range(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry(auth="basic"))
    data = blob_bytes(100_000)
    registry.add_blob(data)
    registry.on("blob", Redirect(f"/elsewhere/{digest_of(data)}"))
    writer = MemoryWriter(prefill=data[:10])
    await make_client(session, registry, sleeps, creds_of(registry)).fetch_blob(
        digest_of(data), len(data), writer
    )
    (other,) = registry.seen("other")
    assert other.headers["Authorization"].startswith("Basic ")
    assert other.headers["Range"] == "bytes=10-"
    assert writer.digest == digest_of(data)


async def test_a_401_from_a_redirect_host_never_starts_an_auth_exchange(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry(auth="basic"))
    # Another host that answers the redirected GET with its own bearer challenge: following
    # it would hand our credentials to a realm of its choosing.
    evil = FakeRegistry(host="127.0.0.2", auth="bearer")
    evil_tokens = FakeTokenService(evil, host="127.0.0.3")
    await start(evil_tokens)
    await start(evil)
    data = blob_bytes(1000)
    registry.add_blob(data)
    evil.add_blob(data)
    registry.on("blob", Redirect(f"{evil.url}/v2/{REPO}/blobs/{digest_of(data)}"))
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps, creds_of(registry)).fetch_blob(
            digest_of(data), len(data), MemoryWriter()
        )
    assert info.value.code == "UpstreamUnauthorized"
    assert "127.0.0.2" in info.value.message
    assert evil_tokens.requests == []
    assert [r.headers.get("Authorization") for r in evil.requests] == [None]


async def test_too_many_redirects(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps
) -> None:
    registry = await start(FakeRegistry())
    data = blob_bytes(10)
    registry.add_blob(data)
    registry.on("blob", Redirect(f"/elsewhere/{digest_of(data)}"))
    registry.on("other", *(Redirect(f"/elsewhere/{digest_of(data)}") for _ in range(10)))
    with pytest.raises(ImportFailure) as info:
        await make_client(session, registry, sleeps).fetch_blob(digest_of(data), 10, MemoryWriter())
    assert info.value.code == "UpstreamError"
    assert "redirects" in info.value.message
    assert len(registry.seen("other")) == 5


# -- connection failures and TLS ----------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_retried_then_upstream_unreachable(
    session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    port = closed_port()
    endpoint = resolve_endpoint(
        "gone.test", {"gone.test": UpstreamHost(endpoint=f"http://127.0.0.1:{port}", insecure=True)}
    )
    client = UpstreamClient(
        session,
        endpoint,
        REPO,
        Credentials("alice", "pw-never-shown"),
        retry=RetryPolicy(attempts=3, base_delay=0.1, jitter=0.0, sleep=sleeps),
        max_manifest_bytes=100,
    )
    with pytest.raises(ImportFailure) as info:
        await client.get_manifest("v1")
    failure = info.value
    assert failure.code == "UpstreamUnreachable"
    assert failure.obj == "gone.test"
    assert failure.retryable
    assert failure.step is Step.PLAN
    assert "gone.test" in failure.message and "connect" in failure.message.lower()
    assert sleeps.delays == [0.1, 0.2]
    assert_no_secret(failure, "pw-never-shown")
    with pytest.raises(ImportFailure) as info:
        await client.fetch_blob(digest_of(b"x"), 1, MemoryWriter())
    assert (info.value.code, info.value.step) == ("UpstreamUnreachable", Step.COPY)


async def test_an_unknown_host_name_is_upstream_unreachable_at_once(
    session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    endpoint = Endpoint("no-such-host.invalid", "http://no-such-host.invalid")
    client = UpstreamClient(
        session, endpoint, REPO, None, retry=RetryPolicy(sleep=sleeps), max_manifest_bytes=100
    )
    with pytest.raises(ImportFailure) as info:
        await client.get_manifest("v1")
    assert info.value.code == "UpstreamUnreachable"
    assert "no-such-host.invalid" in info.value.message
    assert not info.value.retryable
    assert sleeps.delays == []


async def test_tls_trust_follows_the_endpoint_settings(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps, tmp_path: Path
) -> None:
    cert, key = write_self_signed(tmp_path, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    registry = await start(FakeRegistry(), ssl=context)
    registry.add_manifest(b"{}", tag="v1")
    assert registry.url.startswith("https://")

    def client_for(settings: UpstreamHost) -> UpstreamClient:
        return make_client(
            session, registry, sleeps, endpoint=resolve_endpoint(HOST, {HOST: settings})
        )

    with pytest.raises(ImportFailure) as info:
        await client_for(UpstreamHost(endpoint=registry.url)).get_manifest("v1")
    assert info.value.code == "UpstreamUnreachable"
    assert "TLS" in info.value.message
    assert sleeps.delays == []
    assert (
        await client_for(UpstreamHost(endpoint=registry.url, ca_file=cert)).get_manifest("v1")
    ).content == b"{}"
    assert (
        await client_for(UpstreamHost(endpoint=registry.url, insecure=True)).get_manifest("v1")
    ).content == b"{}"


async def test_credentials_never_go_to_a_plain_http_realm_of_a_secure_endpoint(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps, tmp_path: Path
) -> None:
    cert, key = write_self_signed(tmp_path, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    registry = FakeRegistry(auth="bearer")
    tokens = FakeTokenService(registry)
    await start(tokens)
    await start(registry, ssl=context)
    registry.add_manifest(b"{}", tag="v1")
    endpoint = resolve_endpoint(HOST, {HOST: UpstreamHost(endpoint=registry.url, ca_file=cert)})
    with pytest.raises(ImportFailure) as info:
        await make_client(
            session, registry, sleeps, creds_of(registry), endpoint=endpoint
        ).get_manifest("v1")
    assert info.value.code == "UpstreamUnauthorized"
    assert "plain-HTTP" in info.value.message
    assert tokens.token_requests == []
    # Anonymous pulls may still use it: nothing secret is sent.
    assert (
        await make_client(session, registry, sleeps, endpoint=endpoint).get_manifest("v1")
    ).content == b"{}"


async def test_nothing_secret_is_logged_across_a_full_exchange(
    session: aiohttp.ClientSession, start: Start, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry, _tokens = await bearer_setup(start)
    storage = await start(FakeStorage(host="127.0.0.3"))
    data = blob_bytes(300_000)
    registry.add_blob(data)
    storage.blobs[str(digest_of(data))] = data
    registry.on(
        "blob", Status(503), Redirect(f"{storage.url}/blob/{digest_of(data)}?sig=SECRETSIG")
    )
    await make_client(session, registry, sleeps, creds_of(registry)).fetch_blob(
        digest_of(data), len(data), MemoryWriter()
    )
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("transship"))
    assert "retrying blob" in ours and "redirect" in ours
    for secret in (registry.password, "tok-1", "SECRETSIG"):
        assert secret not in ours
