"""The ACR data plane listings under /acr/v1 (what `az acr repository …` uses)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from transship import errors as e
from transship.api.v2 import SERVICES, page_params, repository_name
from transship.errors import OciError

_CHANGEABLE = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}
_ROUTE = re.compile(r"(?P<name>.+)/(?P<what>_tags|_manifests)")


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _paginate(items: list[dict[str, Any]], key: str, request: web.Request, path: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One page of already ordered items: those after the item whose `key` is `last`."""
    n, last = page_params(request)
    if last is not None:
        keys = [str(item[key]) for item in items]
        if last in keys:
            items = items[keys.index(last) + 1 :]
        else:  # a key that vanished since the previous page: fall back to its sort position
            items = [item for item in items if str(item[key]) > last]
    limit = n if n is not None else 100
    page = items[:limit]
    headers: dict[str, str] = {}
    if len(items) > limit and page:
        query = {"last": str(page[-1][key]), "n": str(limit)}
        if "orderby" in request.query:
            query["orderby"] = request.query["orderby"]
        headers["Link"] = f'<{path}?{urlencode(query)}>; rel="next"'
    return page, headers


def _order(items: list[dict[str, Any]], request: web.Request, key: str) -> list[dict[str, Any]]:
    order = request.query.get("orderby", "")
    if order == "timedesc":
        return sorted(items, key=lambda item: item["lastUpdateTime"], reverse=True)
    if order == "timeasc":
        return sorted(items, key=lambda item: item["lastUpdateTime"])
    return sorted(items, key=lambda item: str(item[key]))


async def catalog(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    registry = await services.resolver.for_host(request.host)
    n, last = page_params(request)
    limit = n if n is not None else 100
    page = await services.manifests.catalog(registry, last, limit)
    headers = {}
    if page.more and page.items:
        headers["Link"] = f'</acr/v1/_catalog?{urlencode({"last": page.items[-1], "n": str(limit)})}>; rel="next"'
    return web.json_response({"repositories": page.items}, headers=headers)


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    registry = await services.resolver.for_host(request.host)
    tail = request.match_info["tail"]
    found = _ROUTE.fullmatch(tail)
    if request.method == "DELETE" and found is None:
        deleted = await services.listings.delete_repository(registry, repository_name(tail))
        return web.json_response({"manifestsDeleted": deleted.manifests, "tagsDeleted": deleted.tags}, status=202)
    if found is None or request.method != "GET":
        raise OciError(e.OciErrorCode("NOT_FOUND", 404), f"no such endpoint: {request.method} {request.path}")
    repository = repository_name(found["name"])
    header = {"registry": registry.login_server or request.host, "imageName": repository}
    if found["what"] == "_tags":
        tags = [
            {
                "name": tag.name,
                "digest": tag.digest,
                "createdTime": _iso(tag.created_at),
                "lastUpdateTime": _iso(tag.updated_at),
                "signed": False,
                "changeableAttributes": _CHANGEABLE,
            }
            for tag in await services.listings.tags(registry, repository)
        ]
        page, link = _paginate(_order(tags, request, "name"), "name", request, request.path)
        return web.json_response({**header, "tags": page}, headers=link)
    manifests = []
    for item in await services.listings.manifests(registry, repository):
        entry: dict[str, Any] = {
            "digest": item.digest,
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
        manifests.append(entry)
    page, link = _paginate(_order(manifests, request, "digest"), "digest", request, request.path)
    return web.json_response({**header, "manifests": page}, headers=link)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/acr/v1/_catalog", catalog)
    app.router.add_route("*", r"/acr/v1/{tail:[\s\S]+}", dispatch)
