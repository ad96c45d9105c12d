"""The upstream registry client: an `ImageSource` over the OCI distribution API.

One `UpstreamClient` reads one repository from one endpoint (see `endpoints.py`) through a
shared `aiohttp.ClientSession`. It behaves as a real registry client does:

- **Auth.** Requests go out without credentials until the upstream challenges. On 401 it
  reads `WWW-Authenticate`: `Basic` → the credentials (sent up front from then on);
  `Bearer realm,service,scope` → a token from the realm (`GET realm?service=…&scope=…`, with
  HTTP Basic credentials if there are any, anonymous otherwise; `Credentials` with no
  username use the OAuth2 `refresh_token` grant instead), cached per scope until it expires
  and sent up front from then on. A challenge naming a scope not asked for yet gets a new
  token; a fresh token refused again is `UpstreamUnauthorized`. Credentials go over plain
  HTTP only to an endpoint configured `insecure`.
- **Redirects** are followed by hand (at most 5). `Authorization` is sent only to the
  endpoint's own origin (scheme, host, port): never to a storage host a blob GET is
  redirected to, and 401s from other origins never start an auth exchange.
- **Streaming.** Blobs go to the `BlobWriter` in 1 MiB chunks, never more than the expected
  size. Dropped connections, read timeouts (`read_timeout` per socket read) and truncated
  bodies resume from `writer.offset` with `Range`; 408/429/500/502/503/504 back off
  (honouring `Retry-After`) and try again. The retry budget counts consecutive attempts
  that made no progress, so a long download over a flaky link keeps going while it advances.

Every failure is an `ImportFailure` naming the host, the object, the step and the upstream
status. Neither credentials nor tokens ever appear in messages or logs, and URLs are logged
without their query (presigned storage URLs carry signatures there).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from transship.imports.auth_memory import LearntAuth, Origin, UpstreamAuthMemory
from transship.imports.budgets import BudgetGate
from transship.imports.challenge import (
    DEFAULT_TOKEN_LIFETIME,
    Challenge,
    TokenCache,
    TokenKey,
    parse_challenges,
)
from transship.imports.egress import EgressDenied, EgressPolicy, egress_failure
from transship.imports.endpoints import Endpoint
from transship.imports.errors import ImportFailure, Step
from transship.imports.ports import BlobWriter, Credentials, FetchedManifest, SourceReceiver
from transship.imports.retry import RetryPolicy
from transship.imports.socket_source import SocketSource
from transship.oci import mediatypes as mt
from transship.oci.digest import SUPPORTED_ALGORITHMS, Digest, DigestError
from transship.oci.manifest import Descriptor, ManifestError
from transship.oci.reference import InvalidReference, validate_repository, validate_tag
from transship.oci.referrers import next_link, parse_referrers_index

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
# Blob answers from this size on are read from the socket by the writer's thread (plain
# HTTP with a Content-Length); smaller ones keep their connection for the next request.
SOCKET_READ_MIN_BYTES = 1 << 20
MAX_REDIRECTS = 5
MAX_TOKEN_RESPONSE_BYTES = 1 << 20
# Auth exchanges for one request: a Basic retry, or a token per distinct scope set asked for.
_MAX_AUTH_ROUNDS = 4
# Pages of one referrers list followed before the upstream is judged to be looping.
_MAX_REFERRER_PAGES = 100
# Pages of one tag list followed before the upstream is judged to be looping.
_MAX_TAG_PAGES = 1000

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Types a 200 may carry when a registry does not know better; the JSON's mediaType wins then.
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})

# ImportFailure codes raised here.
UPSTREAM_UNAUTHORIZED = "UpstreamUnauthorized"
UPSTREAM_UNREACHABLE = "UpstreamUnreachable"
UPSTREAM_UNAVAILABLE = "UpstreamUnavailable"
UPSTREAM_ERROR = "UpstreamError"
MANIFEST_UNKNOWN = "ManifestUnknown"
MANIFEST_TOO_LARGE = "ManifestTooLarge"
BLOB_UNKNOWN = "BlobUnknown"
DIGEST_INVALID = "DIGEST_INVALID"
SIZE_INVALID = "SIZE_INVALID"
INVALID_REFERRERS = "InvalidReferrers"
INVALID_REFERENCE = "InvalidReference"
INVALID_TAG_LIST = "InvalidTagList"


def _origin(url: URL) -> Origin:
    return (url.scheme, (url.host or "").lower(), url.port)


def _loggable(url: URL) -> str:
    """A URL without query, fragment or user info, for logs and messages."""
    return str(url.with_query(None).with_fragment(None).with_user(None))


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


@dataclass(eq=False)
class _Transient(Exception):
    """A failure worth another try: a retryable status, or a transport error."""

    status: int | None = None
    retry_after: str | None = None
    detail: str = ""
    connect_failed: bool = False
    cause: BaseException | None = field(default=None, repr=False)
    # A 429 whose rate limit the budget records: waited out by the gate, not retried.
    rate_limited: bool = False

    def __str__(self) -> str:
        return self.detail


@dataclass
class _StreamState:
    """What the chunk iterator saw, kept outside the writer (which may wrap exceptions)."""

    received: int = 0
    error: BaseException | None = None


class _Overflow(Exception):
    pass


class UpstreamClient:
    """An `ImageSource` for `repository` on `endpoint`.

    `session` must be created with `auto_decompress=False` (blob and manifest bytes must
    arrive exactly as stored); the client never closes it. `credentials` are used only when
    the upstream challenges. `retry` bounds attempts per request. `max_manifest_bytes`
    caps manifest bodies. `read_timeout` bounds each socket read and each connect.
    `clock` (monotonic seconds) decides token expiry; tests inject it. `auth_memory`, when
    given, is shared with the process's other clients: this one starts from the challenge
    and tokens an earlier client of the same credentials got from this origin and repository
    (its first request then carries them), and leaves what it learns there.

    Safe to use from several tasks at once (the engine fetches blobs concurrently): token
    fetches for one scope are shared, not repeated (with `auth_memory`, across clients).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        repository: str,
        credentials: Credentials | None,
        *,
        retry: RetryPolicy,
        max_manifest_bytes: int,
        read_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        egress: EgressPolicy | None = None,
        budget: BudgetGate | None = None,
        auth_memory: UpstreamAuthMemory | None = None,
    ) -> None:
        if session.auto_decompress:
            raise ValueError(
                "UpstreamClient needs an aiohttp.ClientSession(auto_decompress=False): "
                "blobs must arrive byte for byte"
            )
        validate_repository(repository)
        if max_manifest_bytes <= 0:
            raise ValueError("max_manifest_bytes must be positive")
        if read_timeout <= 0:
            raise ValueError("read_timeout must be positive")
        self._session = session
        self._endpoint = endpoint
        self._base = endpoint.url
        self._origin = _origin(self._base)
        self._repository = repository
        self._credentials = credentials
        self._retry = retry
        self._max_manifest_bytes = max_manifest_bytes
        self._read_timeout = read_timeout
        self._clock = clock
        # Host names are checked again at resolution (PolicyResolver on the session's
        # connector); this catches IP literals, which aiohttp connects to without resolving.
        self._egress = egress
        # Manifest GETs spend the upstream's pull budget: each passes this gate first.
        self._budget = budget
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=read_timeout, sock_read=read_timeout
        )
        # Auth state learnt from challenges: by this client, or by an earlier one of the
        # same credentials sharing `auth_memory` (then the first request goes out with it).
        self._memory = auth_memory if auth_memory is not None else UpstreamAuthMemory()
        self._identity = self._memory.identity(credentials)
        learnt = self._memory.learnt(self._identity, self._origin, repository)
        self._basic = learnt is not None and learnt.basic
        self._bearer: Challenge | None = None if learnt is None else learnt.bearer
        self._scopes: tuple[str, ...] = (
            (self.default_scope,) if learnt is None or not learnt.scopes else learnt.scopes
        )
        self._tokens = self._memory.tokens(self._identity)

    # -- public ----------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def repository(self) -> str:
        return self._repository

    @property
    def default_scope(self) -> str:
        """`repository:<repo>:pull`: the scope asked for when a challenge names none."""
        return f"repository:{self._repository}:pull"

    async def get_manifest(self, reference: Digest | str) -> FetchedManifest:
        """GET the manifest by digest or tag, verified; see the module docstring."""
        wanted, obj = self._parse_reference(reference)
        url = self._url(f"manifests/{reference}")
        headers = {"Accept": mt.ACCEPT_ALL_MANIFESTS, "Accept-Encoding": "identity"}
        failures = 0
        limited_since: datetime | None = None
        while True:
            if self._budget is not None:
                await self._budget.admit(f"manifest {obj}", since=limited_since)
            try:
                content, media_type, header_digest = await self._get_manifest_once(
                    url, headers, obj
                )
            except _Transient as exc:
                if exc.rate_limited and self._budget is not None:
                    # The next admit waits the block out; one bound for all its rounds.
                    limited_since = limited_since or self._budget.now()
                    continue
                failures += 1
                await self._back_off(exc, failures, Step.PLAN, obj, f"manifest {obj}")
                continue
            return self._verified_manifest(content, media_type, header_digest, wanted, obj)

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        """Stream the blob into `writer`, resuming with Range; see the module docstring."""
        if size < 0:
            raise ValueError("size must not be negative")
        obj = str(digest)
        url = self._url(f"blobs/{digest}")
        failures = 0
        limited_since: datetime | None = None
        while True:
            before = writer.offset
            if before > size:
                raise self._size_invalid(obj, f"the writer holds {before} bytes, more than {size}")
            if before == size and size > 0:
                return
            try:
                await self._fetch_blob_once(url, obj, size, writer)
            except _Transient as exc:
                if exc.rate_limited and self._budget is not None:
                    limited_since = limited_since or self._budget.now()
                    await self._budget.wait_clear(f"blob {obj}", since=limited_since)
                    continue
                failures = 0 if writer.offset > before else failures
                failures += 1
                await self._back_off(exc, failures, Step.COPY, obj, f"blob {obj}")
                continue
            if writer.offset > size:
                raise self._size_invalid(obj, f"received {writer.offset} bytes, expected {size}")
            if writer.offset == size:
                return
            if writer.offset > before:
                # A short answer that ended cleanly (a partial range, or a close without
                # Content-Length): ask for the rest at once.
                failures = 0
                continue
            failures += 1
            await self._back_off(
                _Transient(detail="the upstream sent no bytes"),
                failures,
                Step.COPY,
                obj,
                f"blob {obj}",
            )

    async def head_manifest(self, reference: str) -> Digest | None:
        """The digest the upstream names for tag `reference` (one HEAD, which spends no
        pull on registries that count pulls), or None when the HEAD does not tell (an
        error, a retryable status, no usable Docker-Content-Digest): the GET then decides.
        Raises ImportFailure ManifestUnknown on 404, and what authentication raises."""
        _, obj = self._parse_reference(reference)
        url = self._url(f"manifests/{reference}")
        headers = {"Accept": mt.ACCEPT_ALL_MANIFESTS, "Accept-Encoding": "identity"}
        try:
            response = await self._open(url, headers, step=Step.PLAN, obj=obj, method="HEAD")
        except _Transient:
            return None
        try:
            await self._observe_rate_limit(response)
            if response.status == 404:
                raise ImportFailure(
                    MANIFEST_UNKNOWN,
                    f"manifest {obj} not found on {self._endpoint.host}",
                    step=Step.PLAN,
                    obj=obj,
                    upstream_status=404,
                )
            if response.status != 200:
                return None
            header = response.headers.get("Docker-Content-Digest", "").strip()
            if header.partition(":")[0] not in SUPPORTED_ALGORITHMS:
                return None  # absent, or a digest we could not check the bytes against
            try:
                return Digest.parse(header)
            except DigestError:
                return None
        finally:
            response.release()

    async def head_blob(self, digest: Digest) -> int | None:
        """The size of blob `digest` by one HEAD, or None when the upstream has no such blob
        (404) or the HEAD does not tell (an error, a retryable status, no Content-Length).
        Raises what authentication raises."""
        url = self._url(f"blobs/{digest}")
        try:
            response = await self._open(
                url, {"Accept-Encoding": "identity"}, step=Step.COPY, obj=str(digest), method="HEAD"
            )
        except _Transient:
            return None
        try:
            await self._observe_rate_limit(response)
            if response.status != 200:
                return None
            return response.content_length
        finally:
            response.release()

    async def list_tags(self, page_size: int | None = None) -> tuple[str, ...]:
        """Every tag of the repository, from the tags list API, following `Link`
        rel="next" pages on the endpoint's own origin (`page_size`: the `n` asked for per
        page; None lets the upstream choose). No pull is spent (a listing is no manifest
        GET). Raises ImportFailure: ManifestUnknown (HTTP 404: no such repository),
        InvalidTagList (not a tag list, a page on another host, too many pages),
        UpstreamUnauthorized, UpstreamError, UpstreamUnavailable."""
        obj = self._repository
        url = self._url("tags/list")
        if page_size is not None:
            url = url.with_query({"n": str(page_size)})
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        found: list[str] = []
        for _ in range(_MAX_TAG_PAGES):
            failures = 0
            limited_since: datetime | None = None
            while True:
                try:
                    content, link = await self._get_tags_once(url, headers, obj)
                except _Transient as exc:
                    if exc.rate_limited and self._budget is not None:
                        limited_since = limited_since or self._budget.now()
                        await self._budget.wait_clear(f"tags of {obj}", since=limited_since)
                        continue
                    failures += 1
                    await self._back_off(exc, failures, Step.PLAN, obj, f"tags of {obj}")
                    continue
                break
            found.extend(self._tag_page(content, obj))
            target = next_link(link)
            if target is None:
                return tuple(dict.fromkeys(found))
            following = url.join(URL(target, encoded=True))
            if _origin(following) != self._origin:
                raise ImportFailure(
                    INVALID_TAG_LIST,
                    f"{self._endpoint.host} pages the tags of {obj} to another host "
                    f"({following.host})",
                    step=Step.PLAN,
                    obj=obj,
                )
            url = following
        raise ImportFailure(
            INVALID_TAG_LIST,
            f"{self._endpoint.host} lists the tags of {obj} on more than {_MAX_TAG_PAGES} pages",
            step=Step.PLAN,
            obj=obj,
        )

    async def _get_tags_once(
        self, url: URL, headers: Mapping[str, str], obj: str
    ) -> tuple[bytes, str | None]:
        """One page of the tags list: (body, Link)."""
        response = await self._open(url, headers, step=Step.PLAN, obj=obj)
        try:
            await self._observe_rate_limit(response)
            if response.status == 404:
                raise ImportFailure(
                    MANIFEST_UNKNOWN,
                    f"repository {obj} not found on {self._endpoint.host}",
                    step=Step.PLAN,
                    obj=obj,
                    upstream_status=404,
                )
            if response.status != 200:
                self._raise_for_status(response, Step.PLAN, obj, f"the tags of {obj}")
            body = await self._read_bounded(response, obj, "tag list: ")
            return bytes(body), response.headers.get("Link")
        finally:
            response.release()

    def _tag_page(self, content: bytes, obj: str) -> list[str]:
        """The tags of one page; tags that are no valid tag name are skipped (they could
        not be imported)."""
        try:
            data = json.loads(content)
            tags = data.get("tags") or []
        except (ValueError, AttributeError):
            tags = None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ImportFailure(
                INVALID_TAG_LIST,
                f"{self._endpoint.host} answered the tags of {obj} with something other than "
                "a tag list",
                step=Step.PLAN,
                obj=obj,
            )
        valid: list[str] = []
        for tag in tags:
            try:
                validate_tag(tag)
            except InvalidReference:
                continue
            valid.append(tag)
        return valid

    async def _observe_rate_limit(self, response: aiohttp.ClientResponse) -> None:
        """Record the rate-limit headers of an answer from the endpoint itself (a storage
        host a blob is redirected to has budgets of its own); a 429 they explain becomes a
        rate-limited `_Transient`, which the budget gate waits out."""
        if self._budget is None or _origin(response.url) != self._origin:
            return
        blocked = await self._budget.observe(response.headers, response.status)
        if response.status == 429 and blocked is not None:
            raise _Transient(
                status=429,
                detail=f"{self._endpoint.host} answered HTTP 429 (rate limit) until {blocked}",
                rate_limited=True,
            )

    # -- manifests -------------------------------------------------------------------------

    def _parse_reference(self, reference: Digest | str) -> tuple[Digest | None, str]:
        if isinstance(reference, Digest):
            return reference, f"{self._repository}@{reference}"
        try:
            validate_tag(reference)
        except InvalidReference as exc:
            raise ImportFailure(
                INVALID_REFERENCE,
                f"invalid manifest reference {reference!r}: {exc}",
                step=Step.RESOLVE,
                obj=f"{self._repository}:{reference}",
            ) from None
        return None, f"{self._repository}:{reference}"

    async def _get_manifest_once(
        self, url: URL, headers: Mapping[str, str], obj: str
    ) -> tuple[bytes, str, str | None]:
        response = await self._open(url, headers, step=Step.PLAN, obj=obj)
        try:
            status = response.status
            await self._observe_rate_limit(response)
            if status == 404:
                raise ImportFailure(
                    MANIFEST_UNKNOWN,
                    f"manifest {obj} not found on {self._endpoint.host}",
                    step=Step.PLAN,
                    obj=obj,
                    upstream_status=404,
                )
            if status != 200:
                self._raise_for_status(response, Step.PLAN, obj, f"manifest {obj}")
            length = response.content_length
            body = await self._read_bounded(response, obj, "")
            if length is not None and len(body) != length:
                raise _Transient(detail=f"manifest body ended after {len(body)} of {length} bytes")
            return (
                bytes(body),
                response.headers.get("Content-Type", ""),
                response.headers.get("Docker-Content-Digest"),
            )
        finally:
            response.release()

    def _verified_manifest(
        self, content: bytes, content_type: str, header: str | None, wanted: Digest | None, obj: str
    ) -> FetchedManifest:
        if wanted is not None:
            actual = Digest.of(content, wanted.algorithm)
            if actual != wanted:
                raise ImportFailure(
                    DIGEST_INVALID,
                    f"manifest {obj} from {self._endpoint.host} hashes to {actual}",
                    step=Step.PLAN,
                    obj=obj,
                )
            digest = wanted
        else:
            digest = Digest.of(content)
            claimed = self._claimed_digest(header, obj)
            if claimed is not None and Digest.of(content, claimed.algorithm) != claimed:
                raise ImportFailure(
                    DIGEST_INVALID,
                    f"manifest {obj} from {self._endpoint.host} hashes to "
                    f"{Digest.of(content, claimed.algorithm)}, but Docker-Content-Digest "
                    f"says {claimed}",
                    step=Step.PLAN,
                    obj=obj,
                )
        return FetchedManifest(content, self._manifest_media_type(content, content_type), digest)

    def _claimed_digest(self, header: str | None, obj: str) -> Digest | None:
        if not header or not header.strip():
            return None
        text = header.strip()
        if text.partition(":")[0] not in SUPPORTED_ALGORITHMS:
            return None  # an algorithm we cannot compute: nothing to check against
        try:
            return Digest.parse(text)
        except DigestError:
            raise ImportFailure(
                DIGEST_INVALID,
                f"manifest {obj} from {self._endpoint.host} came with a malformed "
                f"Docker-Content-Digest {text[:100]!r}",
                step=Step.PLAN,
                obj=obj,
            ) from None

    @staticmethod
    def _manifest_media_type(content: bytes, content_type: str) -> str:
        media_type = _media_type(content_type)
        if media_type in _GENERIC_TYPES:
            try:
                declared = json.loads(content).get("mediaType")
            except (ValueError, AttributeError):
                declared = None
            if isinstance(declared, str) and declared:
                return declared
        return media_type

    async def _read_bounded(
        self, response: aiohttp.ClientResponse, obj: str, what: str
    ) -> bytearray:
        """The body of a manifest-sized answer (a manifest, a referrers list). Raises
        ImportFailure ManifestTooLarge (naming `what`, a prefix of the detail) beyond the
        manifest limit, announced or sent, and the transport's errors as `_transport_error`
        does."""
        length = response.content_length
        if length is not None and length > self._max_manifest_bytes:
            raise self._manifest_too_large(obj, f"{what}{length} bytes announced")
        body = bytearray()
        try:
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > self._max_manifest_bytes:
                    raise self._manifest_too_large(obj, f"{what}more bytes sent")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc, Step.PLAN) from None
        return body

    def _manifest_too_large(self, obj: str, detail: str) -> ImportFailure:
        return ImportFailure(
            MANIFEST_TOO_LARGE,
            f"manifest {obj} from {self._endpoint.host} is larger than "
            f"{self._max_manifest_bytes} bytes ({detail})",
            step=Step.PLAN,
            obj=obj,
        )

    # -- blobs -----------------------------------------------------------------------------

    async def _fetch_blob_once(self, url: URL, obj: str, size: int, writer: BlobWriter) -> None:
        """One GET from `writer.offset`. Returns when the body ended cleanly (the caller
        checks how far the writer got); raises `_Transient` for what another try may fix."""
        offset = writer.offset
        headers = {"Accept-Encoding": "identity"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
        response = await self._open(url, headers, step=Step.COPY, obj=obj)
        try:
            status = response.status
            await self._observe_rate_limit(response)
            if status == 404:
                raise ImportFailure(
                    BLOB_UNKNOWN,
                    f"blob {obj} not found in {self._repository} on {self._endpoint.host}",
                    step=Step.COPY,
                    obj=obj,
                    upstream_status=404,
                )
            if status == 416 and offset > 0:
                # The upstream refuses the range it should have: start again from zero.
                await writer.reset()
                raise _Transient(status=416, detail="range not satisfiable; restarting")
            if status == 200:
                if offset > 0:
                    log.info(
                        "upstream %s ignored Range for blob %s; restarting it",
                        self._endpoint.host,
                        obj,
                    )
                    await writer.reset()
                    offset = 0
                expected = size
            elif status == 206:
                expected = await self._check_content_range(response, obj, size, offset, writer)
            else:
                self._raise_for_status(response, Step.COPY, obj, f"blob {obj}")
            length = response.content_length
            if length is not None and length != expected:
                raise self._size_invalid(
                    obj,
                    f"the upstream announced {length} bytes from offset {offset}, "
                    f"expected {expected}",
                )
            if await self._received_from_socket(response, writer, expected, obj, size, offset):
                return
            state = _StreamState()
            chunks = self._chunks(response, expected, state)
            try:
                await writer.append(chunks)
            except Exception:
                if state.error is None:
                    raise  # the writer's own failure (digest, storage): not ours to retry
                self._raise_stream_error(state.error, obj, size, offset)
            finally:
                await chunks.aclose()
            if state.error is not None:  # a writer that swallowed our exception
                self._raise_stream_error(state.error, obj, size, offset)
        finally:
            response.release()

    async def _received_from_socket(
        self,
        response: aiohttp.ClientResponse,
        writer: BlobWriter,
        expected: int,
        obj: str,
        size: int,
        offset: int,
    ) -> bool:
        """Receive a large plain-HTTP body of known length in the writer's worker thread,
        straight from the connection's socket (see `socket_source`): True when done, False
        when this answer cannot be (TLS, no Content-Length, small, a writer or store that
        cannot). Raises as the chunked path does: `_Transient` for a cut or stalled
        connection (the caller resumes with Range), the writer's own failures as they are.
        The connection is closed afterwards, never reused."""
        if expected < SOCKET_READ_MIN_BYTES or response.content_length is None:
            return False
        if not isinstance(writer, SourceReceiver) or not writer.receives_from_source():
            return False
        connection = response.connection
        transport = None if connection is None else connection.transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            head = response.content.read_nowait()
        except aiohttp.ClientError as exc:
            self._raise_stream_error(exc, obj, size, offset)
        # In the same callback as the read above: nothing more reaches aiohttp's buffer.
        transport.pause_reading()
        source = SocketSource(sock.fileno(), head, self._read_timeout)
        try:
            await writer.receive(source, expected)
        except EOFError as exc:
            self._raise_stream_error(ConnectionResetError(str(exc)), obj, size, offset)
        except OSError as exc:
            self._raise_stream_error(exc, obj, size, offset)
        finally:
            source.close()
            response.close()
        return True

    async def _check_content_range(
        self,
        response: aiohttp.ClientResponse,
        obj: str,
        size: int,
        offset: int,
        writer: BlobWriter,
    ) -> int:
        """Validate a 206's Content-Range against the range asked for; return its length."""
        header = response.headers.get("Content-Range", "")
        unit, _, spec = header.strip().partition(" ")
        span, _, total = spec.partition("/")
        first, _, last = span.partition("-")
        if unit != "bytes" or not first.isdigit() or not last.isdigit():
            await writer.reset()
            raise _Transient(status=206, detail=f"unusable Content-Range {header[:80]!r}")
        if total.isdigit() and int(total) != size:
            raise self._size_invalid(obj, f"the upstream says the blob has {total} bytes")
        if int(first) != offset or int(last) < int(first) or int(last) >= size:
            await writer.reset()
            raise _Transient(
                status=206,
                detail=f"asked for bytes {offset}-, got {span}; restarting from zero",
            )
        return int(last) - int(first) + 1

    async def _chunks(
        self, response: aiohttp.ClientResponse, limit: int, state: _StreamState
    ) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                if state.received + len(chunk) > limit:
                    raise _Overflow()
                state.received += len(chunk)
                yield chunk
        except Exception as exc:
            state.error = exc
            raise

    def _raise_stream_error(self, exc: BaseException, obj: str, size: int, offset: int) -> NoReturn:
        if isinstance(exc, _Overflow):
            raise self._size_invalid(
                obj, f"the upstream sent more than {size} bytes (from offset {offset})"
            )
        if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
            raise self._transport_error(exc, Step.COPY) from None
        raise exc

    def _size_invalid(self, obj: str, detail: str) -> ImportFailure:
        return ImportFailure(
            SIZE_INVALID,
            f"blob {obj} from {self._endpoint.host}: {detail}",
            step=Step.COPY,
            obj=obj,
        )

    # -- referrers -------------------------------------------------------------------------

    async def list_referrers(
        self, subject: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...] | None:
        """The referrers of `subject` from the OCI 1.1 referrers API, every page (`Link`
        rel="next" on the endpoint's own origin), or None when the upstream answers 404 (it
        has no referrers API: docker-registry 2.x). `artifact_type` is passed on as the
        `artifactType` filter; an upstream may ignore it, so callers filter again.
        Raises ImportFailure: InvalidReferrers (not an index, too many pages, a page larger
        than the manifest limit), UpstreamUnauthorized, UpstreamError, UpstreamUnavailable."""
        obj = f"{self._repository}@{subject}"
        url = self._url(f"referrers/{subject}")
        if artifact_type is not None:
            url = url.with_query({"artifactType": artifact_type})
        headers = {"Accept": mt.OCI_INDEX, "Accept-Encoding": "identity"}
        found: list[Descriptor] = []
        for page in range(_MAX_REFERRER_PAGES):
            failures = 0
            limited_since: datetime | None = None
            while True:
                try:
                    answer = await self._get_referrers_once(url, headers, obj, first=page == 0)
                except _Transient as exc:
                    if exc.rate_limited and self._budget is not None:
                        # Not a pull (no budget is spent), but a 429 the budget explains
                        # is waited out as for blobs.
                        limited_since = limited_since or self._budget.now()
                        await self._budget.wait_clear(f"referrers of {obj}", since=limited_since)
                        continue
                    failures += 1
                    await self._back_off(exc, failures, Step.PLAN, obj, f"referrers of {obj}")
                    continue
                break
            if answer is None:
                return None
            content, content_type, link = answer
            try:
                found.extend(parse_referrers_index(content, content_type))
            except ManifestError as exc:
                raise ImportFailure(
                    INVALID_REFERRERS,
                    f"{self._endpoint.host} answered the referrers of {obj} with an invalid "
                    f"index: {exc}",
                    step=Step.PLAN,
                    obj=obj,
                ) from None
            target = next_link(link)
            if target is None:
                return tuple(found)
            following = url.join(URL(target, encoded=True))
            if _origin(following) != self._origin:
                raise ImportFailure(
                    INVALID_REFERRERS,
                    f"{self._endpoint.host} pages the referrers of {obj} to another host "
                    f"({following.host})",
                    step=Step.PLAN,
                    obj=obj,
                )
            url = following
        raise ImportFailure(
            INVALID_REFERRERS,
            f"{self._endpoint.host} lists the referrers of {obj} on more than "
            f"{_MAX_REFERRER_PAGES} pages",
            step=Step.PLAN,
            obj=obj,
        )

    async def _get_referrers_once(
        self, url: URL, headers: Mapping[str, str], obj: str, *, first: bool
    ) -> tuple[bytes, str, str | None] | None:
        """One page: (body, Content-Type, Link), or None for a 404 on the first page."""
        response = await self._open(url, headers, step=Step.PLAN, obj=obj)
        try:
            await self._observe_rate_limit(response)
            if response.status == 404 and first:
                return None
            if response.status != 200:
                self._raise_for_status(response, Step.PLAN, obj, f"the referrers of {obj}")
            body = await self._read_bounded(response, obj, "referrers list: ")
            return (
                bytes(body),
                response.headers.get("Content-Type", ""),
                response.headers.get("Link"),
            )
        finally:
            response.release()

    # -- requests: auth and redirects ------------------------------------------------------

    def _url(self, tail: str) -> URL:
        # Built encoded: the repository, tag and digest grammars need no escaping.
        base = self._endpoint.base_url
        return URL(f"{base}/v2/{self._repository}/{tail}", encoded=True)

    async def _open(
        self, url: URL, headers: Mapping[str, str], *, step: Step, obj: str, method: str = "GET"
    ) -> aiohttp.ClientResponse:
        """Send a GET (or `method`) with auth and redirects handled. Returns any response
        that is neither a redirect nor an endpoint 401 (the caller owns and closes it).
        Raises `_Transient` for transport failures and `ImportFailure` for auth failures."""
        asked: set[TokenKey] = set()
        sent_basic = False
        retry_with: TokenKey | None = None
        for _ in range(_MAX_AUTH_ROUNDS):
            # After a challenge, answer it exactly (other tasks may move the shared state).
            authorization, token_key = self._authorization(retry_with, sent_basic)
            response = await self._follow(url, headers, authorization, step=step, method=method)
            if response.status != 401 or _origin(response.url) != self._origin:
                return response
            challenges = parse_challenges(response.headers.getall("WWW-Authenticate", []))
            response.release()
            bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
            basic = next((c for c in challenges if c.scheme == "basic"), None)
            if bearer is not None:
                scopes = bearer.scopes or (self.default_scope,)
                key = TokenCache.key(bearer.realm or "", bearer.service, scopes)
                if key in asked:
                    raise self._unauthorized(
                        f"{self._endpoint.host} refused the token it issued for "
                        f"{' '.join(sorted(scopes))}",
                        status=401,
                    )
                asked.add(key)
                if token_key == key and authorization is not None:
                    # The cached token we sent up front was refused: ask for a fresh one.
                    self._tokens.drop(key, authorization.removeprefix("Bearer "))
                await self._ensure_token(bearer, scopes, key, step)
                self._bearer = bearer
                self._scopes = scopes
                self._basic = False
                self._learn()
                retry_with = key
            elif basic is not None:
                if self._credentials is None:
                    raise self._unauthorized(
                        f"{self._endpoint.host} requires credentials (HTTP Basic) and none "
                        "were given",
                        status=401,
                    )
                if sent_basic or (self._basic and authorization is not None):
                    raise self._unauthorized(
                        f"{self._endpoint.host} rejected the credentials (HTTP 401)", status=401
                    )
                self._basic = True
                self._bearer = None
                self._learn()
                sent_basic = True
                retry_with = None
            else:
                raise self._unauthorized(
                    f"{self._endpoint.host} answered 401 without a usable challenge", status=401
                )
        raise self._unauthorized(
            f"{self._endpoint.host} kept asking for authentication", status=401
        )

    def _learn(self) -> None:
        """Share what the last challenge taught with the next client of these credentials."""
        learnt = LearntAuth(self._bearer, self._scopes, self._basic)
        self._memory.learn(self._identity, self._origin, self._repository, learnt)

    def _authorization(
        self, token_key: TokenKey | None, basic: bool
    ) -> tuple[str | None, TokenKey | None]:
        """The Authorization to send: the token for `token_key` or Basic when a challenge in
        this request asked for it, else what earlier challenges taught (sent up front)."""
        if token_key is not None:
            token = self._tokens.get(token_key, self._clock())
            if token is not None:
                return f"Bearer {token}", token_key
        if basic and self._credentials is not None:
            return self._basic_header(), None
        return self._preemptive_authorization()

    def _preemptive_authorization(
        self,
    ) -> tuple[str | None, TokenKey | None]:
        if self._basic and self._credentials is not None:
            return self._basic_header(), None
        if self._bearer is not None and self._bearer.realm:
            key = TokenCache.key(self._bearer.realm, self._bearer.service, self._scopes)
            token = self._tokens.get(key, self._clock())
            if token is not None:
                return f"Bearer {token}", key
        return None, None

    def _basic_header(self) -> str:
        assert self._credentials is not None
        username = self._credentials.username or ""
        raw = f"{username}:{self._credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    async def _follow(
        self,
        url: URL,
        headers: Mapping[str, str],
        authorization: str | None,
        *,
        step: Step,
        method: str = "GET",
        data: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """One request, following redirects by hand. `authorization` goes only to the origin
        of `url`."""
        auth_origin = _origin(url)
        for hop in range(MAX_REDIRECTS + 1):
            if self._egress is not None:
                try:
                    self._egress.check_literal(url.host or "")
                except EgressDenied as exc:
                    raise egress_failure(exc, step) from None
            sent: CIMultiDict[str] = CIMultiDict(headers)
            if authorization is not None and _origin(url) == auth_origin:
                sent["Authorization"] = authorization
            try:
                response = await self._session.request(
                    method,
                    url,
                    headers=sent,
                    data=data,
                    allow_redirects=False,
                    ssl=self._endpoint.aiohttp_ssl,
                    timeout=self._timeout,
                )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise self._transport_error(exc, step, url) from None
            if response.status not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location")
            response.release()
            if not location:
                raise ImportFailure(
                    UPSTREAM_ERROR,
                    f"{url.host} answered {response.status} without a Location",
                    step=step,
                    upstream_status=response.status,
                )
            if hop == MAX_REDIRECTS:
                break
            try:
                target = url.join(URL(location, encoded=True))
            except (ValueError, TypeError):
                target = None
            if target is None or target.scheme not in ("http", "https") or not target.host:
                raise ImportFailure(
                    UPSTREAM_ERROR,
                    f"{url.host} redirected to an unusable location",
                    step=step,
                    upstream_status=response.status,
                )
            log.debug("following %s redirect to %s", response.status, _loggable(target))
            if response.status == 303:
                method, data = "GET", None
            url = target
        raise ImportFailure(
            UPSTREAM_ERROR,
            f"more than {MAX_REDIRECTS} redirects from {self._endpoint.host} (last to {url.host})",
            step=step,
        )

    # -- tokens ----------------------------------------------------------------------------

    async def _ensure_token(
        self,
        challenge: Challenge,
        scopes: tuple[str, ...],
        key: TokenKey,
        step: Step,
    ) -> None:
        # Shared with the other clients of these credentials: one fetch for all of them.
        lock = self._memory.token_lock(self._identity, key)
        async with lock:
            if self._tokens.get(key, self._clock()) is not None:
                return  # another task fetched it meanwhile
            token, expires_in = await self._request_token(challenge, scopes, step)
            self._tokens.put(key, token, expires_in, self._clock())

    async def _request_token(
        self, challenge: Challenge, scopes: tuple[str, ...], step: Step
    ) -> tuple[str, float]:
        realm_text = challenge.realm or ""
        try:
            realm = URL(realm_text)
        except (ValueError, TypeError):
            realm = URL()
        if realm.scheme not in ("http", "https") or not realm.host:
            raise self._unauthorized(
                f"{self._endpoint.host} named an unusable token realm", status=401
            )
        credentials = self._credentials
        if credentials is not None and realm.scheme == "http" and not self._insecure:
            raise self._unauthorized(
                f"{self._endpoint.host} named a plain-HTTP token realm ({realm.host}); "
                "credentials are sent over HTTP only to hosts configured insecure",
                status=401,
            )
        params: list[tuple[str, str]] = list(realm.query.items())
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        authorization: str | None = None
        data: dict[str, str] | None = None
        method = "GET"
        if credentials is not None and credentials.username is None:
            # An identity (refresh) token: the OAuth2 form of the token endpoint.
            method = "POST"
            data = {
                "grant_type": "refresh_token",
                "refresh_token": credentials.password,
                "client_id": "transship",
                "scope": " ".join(scopes),
            }
            if challenge.service:
                data["service"] = challenge.service
        else:
            if challenge.service:
                params.append(("service", challenge.service))
            params.extend(("scope", s) for s in scopes)
            if credentials is not None:
                authorization = self._basic_header()
        url = realm.with_query(params)
        response = await self._follow(
            url, headers, authorization, step=step, method=method, data=data
        )
        try:
            status = response.status
            if status in RETRYABLE_STATUSES:
                raise _Transient(
                    status=status,
                    retry_after=response.headers.get("Retry-After"),
                    detail=f"token service {realm.host} answered HTTP {status}",
                )
            if status != 200:
                who = "the credentials" if credentials is not None else "an anonymous token"
                raise self._unauthorized(
                    f"token service {realm.host} for {self._endpoint.host} refused {who} "
                    f"(HTTP {status})",
                    status=status,
                )
            try:
                raw = await response.content.read(MAX_TOKEN_RESPONSE_BYTES + 1)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._transport_error(exc, step, url) from None
            if len(raw) > MAX_TOKEN_RESPONSE_BYTES:
                raise self._unauthorized(
                    f"token service {realm.host} sent an oversized answer", status=status
                )
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            token = None
            if isinstance(payload, dict):
                token = payload.get("token") or payload.get("access_token")
            if not isinstance(token, str) or not token:
                raise self._unauthorized(
                    f"token service {realm.host} answered without a token", status=status
                )
            expires_in = payload.get("expires_in") if isinstance(payload, dict) else None
            lifetime = (
                float(expires_in)
                if isinstance(expires_in, int | float)
                and not isinstance(expires_in, bool)
                and expires_in > 0
                else DEFAULT_TOKEN_LIFETIME
            )
            return token, lifetime
        finally:
            response.release()

    @property
    def _insecure(self) -> bool:
        return self._base.scheme == "http" or self._endpoint.ssl is False

    # -- failures --------------------------------------------------------------------------

    def _unauthorized(self, message: str, *, status: int | None) -> ImportFailure:
        return ImportFailure(
            UPSTREAM_UNAUTHORIZED,
            message,
            step=Step.AUTHENTICATE,
            obj=self._endpoint.host,
            upstream_status=status,
        )

    def _transport_error(self, exc: BaseException, step: Step, url: URL | None = None) -> Exception:
        """An ImportFailure for errors retrying cannot fix, else a `_Transient`."""
        host = self._endpoint.host
        where = host if url is None or _origin(url) == self._origin else f"{url.host} (via {host})"
        denied = (
            getattr(exc, "os_error", None) if isinstance(exc, aiohttp.ClientConnectorError) else exc
        )
        if isinstance(denied, EgressDenied):
            return egress_failure(denied, step)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return ImportFailure(
                UPSTREAM_UNREACHABLE,
                f"cannot resolve {where}: {_describe(exc)}",
                step=step,
                obj=host,
            )
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return ImportFailure(
                UPSTREAM_UNREACHABLE,
                f"TLS with {where} failed: {_describe(exc)} (configure ca_file, or insecure, "
                "for this host)",
                step=step,
                obj=host,
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return _Transient(
                detail=f"cannot connect to {where}: {_describe(exc)}",
                connect_failed=True,
                cause=exc,
            )
        if isinstance(exc, TimeoutError):
            return _Transient(
                detail=f"no data from {where} for {self._read_timeout:g} s ({_describe(exc)})",
                cause=exc,
            )
        return _Transient(detail=f"connection to {where} failed: {_describe(exc)}", cause=exc)

    def _raise_for_status(
        self, response: aiohttp.ClientResponse, step: Step, obj: str, what: str
    ) -> NoReturn:
        status = response.status
        if status in RETRYABLE_STATUSES:
            raise _Transient(
                status=status,
                retry_after=response.headers.get("Retry-After"),
                detail=f"{response.url.host} answered HTTP {status}",
            )
        if status in (401, 403):
            via = (
                ""
                if _origin(response.url) == self._origin
                else f" (redirected to {response.url.host})"
            )
            raise ImportFailure(
                UPSTREAM_UNAUTHORIZED,
                f"{self._endpoint.host}{via} denied access to {what} (HTTP {status})",
                step=Step.AUTHENTICATE,
                obj=obj,
                upstream_status=status,
            )
        raise ImportFailure(
            UPSTREAM_ERROR,
            f"{self._endpoint.host} answered HTTP {status} for {what}",
            step=step,
            obj=obj,
            upstream_status=status,
        )

    async def _back_off(
        self, exc: _Transient, failures: int, step: Step, obj: str, what: str
    ) -> None:
        """Sleep before the next attempt, or raise when the budget is spent."""
        if self._retry.gives_up_after(failures):
            last = f"HTTP {exc.status}" if exc.status is not None else exc.detail
            if exc.connect_failed:
                raise ImportFailure(
                    UPSTREAM_UNREACHABLE,
                    f"{what}: {exc.detail} (gave up after {failures} attempts)",
                    step=step,
                    obj=self._endpoint.host,
                    retryable=True,
                ) from exc.cause
            raise ImportFailure(
                UPSTREAM_UNAVAILABLE,
                f"{what} from {self._endpoint.host}: gave up after {failures} attempts; "
                f"last: {last}",
                step=step,
                obj=obj,
                upstream_status=exc.status,
                retryable=True,
            ) from None
        delay = await self._retry.pause(failures, exc.retry_after)
        log.info(
            "retrying %s from %s in %.2f s (attempt %d failed: %s)",
            what,
            self._endpoint.host,
            delay,
            failures,
            f"HTTP {exc.status}" if exc.status is not None else exc.detail,
        )
