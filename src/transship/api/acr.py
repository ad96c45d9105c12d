"""The ACR data plane listings under /acr/v1 (what `az acr repository …` uses)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import MISSING, ValidationError

from transship.api import envelopes as e
from transship.api.answers import json_answer
from transship.api.envelopes import OciError
from transship.api.events import event_request
from transship.api.services import Services
from transship.api.v2 import SERVICES, page_params, repository_name
from transship.errors import Invalid, TooLarge
from transship.metadata.records import Attributes, RegistryRecord, TagRecord
from transship.oci.digest import Digest, DigestError
from transship.registry.listings import AttributeChanges, ListingOrder, ManifestListing
from transship.wire import acr as answers

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
    return (tail, None) if tail and method in ("DELETE", "GET", "PATCH") else None


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
    return json_answer(answers.Repositories(repositories=page.items), headers=headers)


def _changeable(attributes: Attributes) -> answers.ChangeableAttributes:
    return answers.ChangeableAttributes(
        delete_enabled=attributes.delete_enabled,
        write_enabled=attributes.write_enabled,
        read_enabled=attributes.read_enabled,
        list_enabled=attributes.list_enabled,
    )


async def _changes(request: web.Request) -> AttributeChanges:
    """The PATCH body: changeable attributes (JSON booleans). Raises Invalid naming the
    field at fault, TooLarge past the configured body limit."""
    limit = request.app[SERVICES].settings.max_request_body_bytes
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes")
    try:
        document = json.loads(bytes(data)) if data.strip() else {}
    except (ValueError, RecursionError):
        raise Invalid(None, "the request body is not valid JSON") from None
    try:
        body = answers.ChangeableAttributesUpdate.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise Invalid(field, f"{field}: {first['msg']}", detail={"field": field}) from None
    return AttributeChanges(
        delete_enabled=body.delete_enabled,
        write_enabled=body.write_enabled,
        read_enabled=body.read_enabled,
        list_enabled=body.list_enabled,
    )


def _tag_json(tag: TagRecord) -> answers.TagAttributes:
    return answers.TagAttributes(
        name=tag.name,
        digest=str(tag.digest),
        created_time=_iso(tag.created_at),
        last_update_time=_iso(tag.updated_at),
        changeable_attributes=_changeable(tag.attributes),
    )


def _manifest_json(item: ManifestListing) -> answers.ManifestAttributes:
    return answers.ManifestAttributes(
        digest=str(item.digest),
        image_size=item.image_size,
        created_time=_iso(item.created),
        last_update_time=_iso(item.created),
        media_type=item.media_type,
        tags=list(item.tags),
        architecture=item.architecture if item.architecture else MISSING,
        os=item.os if item.os else MISSING,
        changeable_attributes=_changeable(item.attributes),
    )


async def _repository_attributes(
    services: Services, registry: RegistryRecord, repository: str, header: dict[str, Any]
) -> web.Response:
    """`GET /acr/v1/{repo}` (`az acr repository show --repository`), also the answer of
    its PATCH."""
    summary = await services.listings.summary(registry, repository)
    return json_answer(
        answers.RepositoryAttributes(
            registry=header["registry"],
            image_name=header["imageName"],
            created_time=_iso(summary.created) if summary.created else None,
            last_update_time=_iso(summary.last_update) if summary.last_update else None,
            manifest_count=summary.manifest_count,
            tag_count=summary.tag_count,
            changeable_attributes=_changeable(summary.attributes),
        )
    )


async def _item(
    request: web.Request, registry: RegistryRecord, found: re.Match[str], header: dict[str, Any]
) -> web.StreamResponse:
    """One tag (`/_tags/{tag}`) or manifest (`/_manifests/{digest}`): GET its attributes
    (`az acr repository show --image`, and what `delete --image` resolves a tag with),
    PATCH its changeable attributes (`az acr repository update --image`, `az acr manifest
    update-metadata`) and answer them as GET does, or DELETE it (`az acr repository untag`;
    a manifest with its tags)."""
    services = request.app[SERVICES]
    repository, reference = header["imageName"], found["reference"]
    if request.method == "PATCH":
        changes = await _changes(request)
        if found["what"] == "_tags":
            await services.listings.update_attributes(
                registry, repository, "tag", reference, changes
            )
        else:
            try:
                key = Digest.parse(reference)
            except DigestError as exc:
                raise Invalid("digest", str(exc), detail={"reference": reference}) from None
            await services.listings.update_attributes(
                registry, repository, "manifest", key, changes
            )
    if request.method == "DELETE":
        if (
            found["what"] == "_tags"
            and await services.listings.tag(registry, repository, reference) is None
        ):
            raise OciError(TAG_UNKNOWN, f"tag {reference} is not in repository {repository}")
        await services.manifests.delete(registry, repository, reference, event_request(request))
        return web.Response(status=202)
    if request.method not in ("GET", "PATCH"):
        raise OciError(e.UNSUPPORTED, f"{request.method} is not supported on {request.path}")
    if found["what"] == "_tags":
        tag = await services.listings.tag(registry, repository, reference)
        if tag is None:
            raise OciError(TAG_UNKNOWN, f"tag {reference} is not in repository {repository}")
        return json_answer(
            answers.TagItem(
                registry=header["registry"], image_name=header["imageName"], tag=_tag_json(tag)
            )
        )
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
    return json_answer(
        answers.ManifestItem(
            registry=header["registry"],
            image_name=header["imageName"],
            manifest=_manifest_json(listing),
        )
    )


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
    if request.method == "PATCH" and found is None:
        repository = repository_name(tail)
        changes = await _changes(request)
        await services.listings.update_attributes(registry, repository, "repository", None, changes)
    if request.method in ("GET", "PATCH") and found is None:
        header = {
            "registry": registry.login_server or request.host,
            "imageName": repository_name(tail),
        }
        return await _repository_attributes(services, registry, header["imageName"], header)
    if request.method == "DELETE" and found is None:
        deleted = await services.listings.delete_repository(
            registry, repository_name(tail), event_request(request)
        )
        return json_answer(
            answers.DeletedRepository(
                manifests_deleted=[str(d) for d in deleted.manifests], tags_deleted=deleted.tags
            ),
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
        return json_answer(
            answers.TagList(
                registry=header["registry"],
                image_name=repository,
                tags=[_tag_json(t) for t in tags.items],
            ),
            headers=link,
        )
    manifests = await services.listings.manifests(registry, repository, _order(request), last, n)
    link = (
        _link(request, str(manifests.items[-1].digest), n)
        if manifests.more and manifests.items
        else {}
    )
    return json_answer(
        answers.ManifestList(
            registry=header["registry"],
            image_name=repository,
            manifests=[_manifest_json(m) for m in manifests.items],
        ),
        headers=link,
    )
