"""The OCI distribution v1.1 API under /v2."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote, urlencode

from aiohttp import hdrs, web

from transship.api import envelopes as e
from transship.api.blob_responses import StreamedBlobAnswer, serve_blob
from transship.api.envelopes import OciError
from transship.api.errors import DISTRIBUTION_VERSION_HEADER, range_header, upload_location
from transship.api.events import event_request
from transship.api.query_numbers import nonnegative
from transship.api.services import Services
from transship.errors import NotFound
from transship.metadata.records import RegistryRecord
from transship.oci import mediatypes as mt
from transship.oci.digest import Digest, DigestError
from transship.oci.reference import InvalidReference, validate_repository
from transship.registry.manifests import Page

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
PAGINATION_NUMBER_INVALID = e.OciErrorCode("PAGINATION_NUMBER_INVALID", 400)
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")

Handler = Callable[[web.Request, RegistryRecord, dict[str, str]], Awaitable[web.StreamResponse]]


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _headers(**extra: str) -> dict[str, str]:
    return {**DISTRIBUTION_VERSION_HEADER, **extra}


def repository_name(name: str) -> str:
    try:
        return validate_repository(name)
    except InvalidReference as exc:
        raise OciError(e.NAME_INVALID, str(exc), {"name": name}) from None


def _digest(text: str | None, what: str = "digest") -> Digest:
    if not text:
        raise OciError(e.DIGEST_INVALID, f"the {what} parameter is required")
    try:
        return Digest.parse(text)
    except DigestError as exc:
        raise OciError(e.DIGEST_INVALID, str(exc), {what: text}) from None


def _body(request: web.Request) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_any():
            yield chunk

    return chunks()


def _content_length(request: web.Request) -> int | None:
    return request.content_length if hdrs.CONTENT_LENGTH in request.headers else None


def page_params(request: web.Request) -> tuple[int | None, str | None]:
    n_text = request.query.get("n")
    n: int | None = None
    if n_text is not None:
        # Any n past the page maximum is the page maximum (ManifestService clamps it).
        n = nonnegative(n_text, ceiling=2**31 - 1)
        if n is None:
            raise OciError(
                PAGINATION_NUMBER_INVALID,
                f"n must be a non-negative integer, not {n_text!r}",
                {"n": n_text},
            )
    last = request.query.get("last")
    if last is not None and ("\x00" in last or not last.isprintable()):
        raise OciError(
            PAGINATION_NUMBER_INVALID, "last must be printable text", {"last": repr(last)}
        )
    return n, last


def _link(path: str, page: Page, n: int | None) -> dict[str, str]:
    if not page.more or not page.items:
        return {}
    query = {"last": page.items[-1]} if n is None else {"n": str(n), "last": page.items[-1]}
    return {"Link": f'<{path}?{urlencode(query)}>; rel="next"'}


# -- base and catalog ------------------------------------------------------------------------
async def base(request: web.Request) -> web.Response:
    return web.json_response({}, headers=_headers())


async def catalog(request: web.Request) -> web.Response:
    services = _services(request)
    registry = await services.resolver.for_host(request.host)
    n, last = page_params(request)
    page = await services.manifests.catalog(registry, last, n)
    return web.json_response(
        {"repositories": page.items}, headers=_headers(**_link("/v2/_catalog", page, n))
    )


# -- blobs -----------------------------------------------------------------------------------
async def blob_get(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    services = _services(request)
    digest = _digest(match["digest"])
    try:
        location = await services.blobs.stat(registry, match["name"], digest)
    except NotFound as missing:
        answer = None if request.method == "HEAD" else StreamedBlobAnswer(request, digest)
        try:
            found = await services.pull_through.blob(
                registry, match["name"], digest, missing, answer
            )
        except BaseException:
            if answer is not None:
                answer.abort()
            raise
        if found is None:
            assert answer is not None and answer.response is not None
            await answer.response.write_eof()
            return answer.response
        location = found
    if request.method == "HEAD":
        headers = {
            hdrs.CONTENT_TYPE: "application/octet-stream",
            "Docker-Content-Digest": str(location.digest),
            hdrs.ETAG: f'"{location.digest}"',
            hdrs.ACCEPT_RANGES: "bytes",
        }
        return await _head(request, headers, location.size)
    return await serve_blob(
        request,
        services.store,
        location,
        redirect_seconds=services.settings.storage_redirect_seconds,
    )


async def _head(request: web.Request, headers: dict[str, str], length: int) -> web.StreamResponse:
    """A HEAD answer that states the length of the body a GET would send."""
    response = web.StreamResponse(headers=_headers(**headers))
    response.content_length = length
    await response.prepare(request)
    await response.write_eof()
    return response


async def blob_delete(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    await _services(request).blobs.delete(registry, match["name"], _digest(match["digest"]))
    return web.Response(status=202, headers=_headers())


def _blob_created(repository: str, digest: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers=_headers(
            **{
                hdrs.LOCATION: f"/v2/{repository}/blobs/{digest}",
                "Docker-Content-Digest": str(digest),
            }
        ),
    )


def _upload_accepted(
    repository: str, upload_id: str, offset: int, status: int = 202
) -> web.Response:
    return web.Response(
        status=status,
        headers=_headers(
            **{
                hdrs.LOCATION: upload_location(repository, upload_id),
                hdrs.RANGE: range_header(offset),
                "Docker-Upload-UUID": upload_id,
            }
        ),
    )


async def upload_start(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    services = _services(request)
    repository = match["name"]
    query = request.query
    if "mount" in query:
        digest = _digest(query["mount"], "mount")
        source = query.get("from")
        if source is not None:
            source = repository_name(source)
        if await services.blobs.mount(registry, repository, digest, source):
            return _blob_created(repository, digest)
    elif "digest" in query:
        digest = _digest(query["digest"])
        await services.blobs.upload_whole(
            registry, repository, digest, _body(request), _content_length(request)
        )
        return _blob_created(repository, digest)
    algorithm = query.get("digest-algorithm", "sha256")
    status = await services.blobs.start_upload(registry, repository, algorithm)
    return _upload_accepted(repository, status.id, 0)


def _content_range(request: web.Request) -> tuple[int | None, int | None]:
    text = request.headers.get(hdrs.CONTENT_RANGE)
    if text is None:
        return None, None
    found = _CONTENT_RANGE.fullmatch(text.strip())
    if not found:
        raise OciError(e.RANGE_INVALID, f"invalid Content-Range {text!r}: expected <start>-<end>")
    start, end = int(found.group(1)), int(found.group(2))
    if end < start:
        raise OciError(e.RANGE_INVALID, f"invalid Content-Range {text!r}: end before start")
    length = end - start + 1
    declared = _content_length(request)
    if declared is not None and declared != length:
        raise OciError(
            e.RANGE_INVALID,
            f"Content-Range {text!r} covers {length} bytes but Content-Length is {declared}",
        )
    return start, length


async def upload_patch(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    start, length = _content_range(request)
    if length is None:
        length = _content_length(request)
    status = await _services(request).blobs.append(
        registry, match["name"], match["upload"], _body(request), start, length
    )
    return _upload_accepted(match["name"], status.id, status.offset)


async def upload_put(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    digest = _digest(request.query.get("digest"))
    start, length = _content_range(request)
    if length is None:
        length = _content_length(request)
    await _services(request).blobs.finish(
        registry, match["name"], match["upload"], digest, _body(request), start, length
    )
    return _blob_created(match["name"], digest)


async def upload_status(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    status = await _services(request).blobs.status(registry, match["name"], match["upload"])
    return _upload_accepted(match["name"], status.id, status.offset, status=204)


async def upload_cancel(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    await _services(request).blobs.cancel(registry, match["name"], match["upload"])
    return web.Response(status=204, headers=_headers())


# -- manifests -------------------------------------------------------------------------------
async def manifest_get(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    record = await _services(request).pull_through.get_manifest(
        registry, match["name"], match["reference"]
    )
    headers = {
        hdrs.CONTENT_TYPE: record.media_type,
        "Docker-Content-Digest": str(record.digest),
        hdrs.ETAG: f'"{record.digest}"',
    }
    if request.method == "HEAD":
        return await _head(request, headers, len(record.content))
    return web.Response(body=record.content, headers=_headers(**headers))


async def _read_limited(request: web.Request, limit: int) -> bytes:
    declared = _content_length(request)
    if declared is not None and declared > limit:
        raise OciError(e.MANIFEST_TOO_LARGE, f"manifest is {declared} bytes; the limit is {limit}")
    parts: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > limit:
            raise OciError(
                e.MANIFEST_TOO_LARGE, f"manifest is larger than the limit of {limit} bytes"
            )
        parts.append(chunk)
    return b"".join(parts)


async def manifest_put(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    services = _services(request)
    repository = match["name"]
    content = await _read_limited(request, services.manifests.max_manifest_bytes)
    pushed = await services.manifests.put(
        registry,
        repository,
        match["reference"],
        content,
        request.headers.get(hdrs.CONTENT_TYPE),
        tuple(request.query.getall("tag", [])),
        event_request(request),
    )
    response = web.Response(
        status=201,
        headers=_headers(
            **{
                hdrs.LOCATION: f"/v2/{repository}/manifests/{pushed.digest}",
                "Docker-Content-Digest": str(pushed.digest),
            }
        ),
    )
    if pushed.subject is not None:
        response.headers["OCI-Subject"] = str(pushed.subject)
    for tag in pushed.tags:
        response.headers.add("OCI-Tag", tag)
    return response


async def manifest_delete(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    await _services(request).manifests.delete(
        registry, match["name"], match["reference"], event_request(request)
    )
    return web.Response(status=202, headers=_headers())


# -- discovery -------------------------------------------------------------------------------
async def tags_list(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    n, last = page_params(request)
    repository = match["name"]
    page = await _services(request).manifests.tags(registry, repository, last, n)
    link = _link(f"/v2/{quote(repository)}/tags/list", page, n)
    return web.json_response({"name": repository, "tags": page.items}, headers=_headers(**link))


async def referrers(
    request: web.Request, registry: RegistryRecord, match: dict[str, str]
) -> web.StreamResponse:
    artifact_type = request.query.get("artifactType")
    body = await _services(request).manifests.referrers(
        registry, match["name"], match["digest"], artifact_type
    )
    headers = _headers(**{hdrs.CONTENT_TYPE: mt.OCI_INDEX})
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    return web.Response(body=body, headers=headers)


# Repository names contain slashes, so the path is matched here, most specific first.
_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"(?P<name>.+)/blobs/uploads/?"), {"POST": upload_start}),
    (
        re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)"),
        {"PATCH": upload_patch, "PUT": upload_put, "GET": upload_status, "DELETE": upload_cancel},
    ),
    (
        re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {"GET": blob_get, "HEAD": blob_get, "DELETE": blob_delete},
    ),
    (
        re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {"GET": manifest_get, "HEAD": manifest_get, "PUT": manifest_put, "DELETE": manifest_delete},
    ),
    (re.compile(r"(?P<name>.+)/tags/list"), {"GET": tags_list}),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": referrers}),
]


def repository_in(tail: str) -> str | None:
    """The repository a `/v2/<tail>` request addresses, read exactly as `dispatch` reads it
    (authorization must check the repository the handler will serve); None: no route."""
    for pattern, _ in _ROUTES:
        found = pattern.fullmatch(tail)
        if found is not None:
            return found["name"]
    return None


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.match_info["tail"]
    for pattern, methods in _ROUTES:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        handler = methods.get(request.method)
        if handler is None:
            raise OciError(
                e.UNSUPPORTED,
                f"{request.method} is not supported on {request.path}",
                status=405,
                headers={hdrs.ALLOW: ", ".join(methods)},
            )
        match = found.groupdict()
        match["name"] = repository_name(match["name"])
        registry = await _services(request).resolver.for_host(request.host)
        return await handler(request, registry, match)
    raise OciError(e.OciErrorCode("NOT_FOUND", 404), f"no such endpoint: {request.path}")
