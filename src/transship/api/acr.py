"""The ACR data plane listings under /acr/v1 (what `az acr repository …` uses)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from transship import errors as e
from transship.api.services import Services
from transship.api.v2 import SERVICES, page_params, repository_name
from transship.errors import OciError
from transship.metadata.records import RegistryRecord, TagRecord
from transship.oci.digest import Digest, DigestError
from transship.registry.listings import ListingOrder, ManifestListing

_CHANGEABLE = {
    "deleteEnabled": True,
    "writeEnabled": True,
    "readEnabled": True,
    "listEnabled": True,
}
_ROUTE = re.compile(r"(?P<name>.+)/(?P<what>_tags|_manifests)")
_ITEM = re.compile(r"(?P<name>.+)/(?P<what>_tags|_manifests)/(?P<reference>[^/]+)")
TAG_UNKNOWN = e.OciErrorCode("TAG_UNKNOWN", 404)


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _order(request: web.Request) -> ListingOrder:
    order = request.query.get("orderby", "")
    if order == "timeasc":
        return "timeasc"
    return "timedesc" if order == "timedesc" else "key"


def _link(request: web.Request, last: str, n: int | None) -> dict[str, str]:
    """The Link header to the page after the item whose key is `last`."""
    query = {"last": last, "n": str(n if n is not None else 100)}
    if "orderby" in request.query:
        query["orderby"] = request.query["orderby"]
    return {"Link": f'<{request.path}?{urlencode(query)}>; rel="next"'}


def repository_in(tail: str, method: str) -> tuple[str, str | None] | None:
    """(repository, "_tags" | "_manifests" | None) of an `/acr/v1/<tail>` request, read
    exactly as `dispatch` reads it; None: no route."""
    found = _ITEM.fullmatch(tail) or _ROUTE.fullmatch(tail)
    if found is not None:
        return found["name"], found["what"]
    return (tail, None) if tail and method in ("DELETE", "GET") else None


async def catalog(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    registry = await services.resolver.for_host(request.host)
    n, last = page_params(request)
    limit = n if n is not None else 100
    page = await services.manifests.catalog(registry, last, limit)
    headers = {}
    if page.more and page.items:
        headers["Link"] = (
            f'</acr/v1/_catalog?{urlencode({"last": page.items[-1], "n": str(limit)})}>; rel="next"'
        )
    return web.json_response({"repositories": page.items}, headers=headers)


def _tag_json(tag: TagRecord) -> dict[str, Any]:
    return {
        "name": tag.name,
        "digest": str(tag.digest),
        "createdTime": _iso(tag.created_at),
        "lastUpdateTime": _iso(tag.updated_at),
        "signed": False,
        "changeableAttributes": _CHANGEABLE,
    }


def _manifest_json(item: ManifestListing) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "digest": str(item.digest),
        "imageSize": item.image_size,
        "createdTime": _iso(item.created),
        "lastUpdateTime": _iso(item.created),
        "mediaType": item.media_type,
        "tags": list(item.tags),
        "changeableAttributes": _CHANGEABLE,
    }
    if item.architecture:
        entry["architecture"] = item.architecture
    if item.os:
        entry["os"] = item.os
    return entry


async def _repository_attributes(
    services: Services, registry: RegistryRecord, repository: str, header: dict[str, Any]
) -> web.Response:
    """`GET /acr/v1/{repo}` (`az acr repository show --repository`)."""
    summary = await services.listings.summary(registry, repository)
    return web.json_response(
        {
            **header,
            "createdTime": _iso(summary.created) if summary.created else None,
            "lastUpdateTime": _iso(summary.last_update) if summary.last_update else None,
            "manifestCount": summary.manifest_count,
            "tagCount": summary.tag_count,
            "changeableAttributes": _CHANGEABLE,
        }
    )


async def _item(
    request: web.Request, registry: RegistryRecord, found: re.Match[str], header: dict[str, Any]
) -> web.StreamResponse:
    """One tag (`/_tags/{tag}`) or manifest (`/_manifests/{digest}`): GET its attributes
    (`az acr repository show --image`, and what `delete --image` resolves a tag with), or
    DELETE it (`az acr repository untag`; a manifest with its tags)."""
    services = request.app[SERVICES]
    repository, reference = header["imageName"], found["reference"]
    if request.method == "DELETE":
        if (
            found["what"] == "_tags"
            and await services.listings.tag(registry, repository, reference) is None
        ):
            raise OciError(TAG_UNKNOWN, f"tag {reference} is not in repository {repository}")
        await services.manifests.delete(registry, repository, reference)
        return web.Response(status=202)
    if request.method != "GET":
        raise OciError(e.UNSUPPORTED, f"{request.method} is not supported on {request.path}")
    if found["what"] == "_tags":
        tag = await services.listings.tag(registry, repository, reference)
        if tag is None:
            raise OciError(TAG_UNKNOWN, f"tag {reference} is not in repository {repository}")
        return web.json_response({**header, "tag": _tag_json(tag)})
    try:
        digest: Digest | None = Digest.parse(reference)
    except DigestError:
        digest = None  # no manifest has that name
    listing = (
        None if digest is None else await services.listings.manifest(registry, repository, digest)
    )
    if listing is None:
        raise OciError(
            e.MANIFEST_UNKNOWN, f"manifest {reference} is not in repository {repository}"
        )
    return web.json_response({**header, "manifest": _manifest_json(listing)})


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    registry = await services.resolver.for_host(request.host)
    tail = request.match_info["tail"]
    item = _ITEM.fullmatch(tail)
    if item is not None:
        header = {
            "registry": registry.login_server or request.host,
            "imageName": repository_name(item["name"]),
        }
        return await _item(request, registry, item, header)
    found = _ROUTE.fullmatch(tail)
    if request.method == "GET" and found is None:
        header = {
            "registry": registry.login_server or request.host,
            "imageName": repository_name(tail),
        }
        return await _repository_attributes(services, registry, header["imageName"], header)
    if request.method == "DELETE" and found is None:
        deleted = await services.listings.delete_repository(registry, repository_name(tail))
        return web.json_response(
            {"manifestsDeleted": [str(d) for d in deleted.manifests], "tagsDeleted": deleted.tags},
            status=202,
        )
    if found is None or request.method != "GET":
        raise OciError(
            e.OciErrorCode("NOT_FOUND", 404), f"no such endpoint: {request.method} {request.path}"
        )
    repository = repository_name(found["name"])
    header = {"registry": registry.login_server or request.host, "imageName": repository}
    n, last = page_params(request)
    if found["what"] == "_tags":
        tags = await services.listings.tags(registry, repository, _order(request), last, n)
        link = _link(request, tags.items[-1].name, n) if tags.more and tags.items else {}
        return web.json_response(
            {**header, "tags": [_tag_json(t) for t in tags.items]}, headers=link
        )
    manifests = await services.listings.manifests(registry, repository, _order(request), last, n)
    link = (
        _link(request, str(manifests.items[-1].digest), n)
        if manifests.more and manifests.items
        else {}
    )
    return web.json_response(
        {**header, "manifests": [_manifest_json(m) for m in manifests.items]}, headers=link
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/acr/v1/_catalog", catalog)
    app.router.add_route("*", r"/acr/v1/{tail:[\s\S]+}", dispatch)
