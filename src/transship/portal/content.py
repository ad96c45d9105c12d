"""Repositories, tags and manifests: paged listings (search, sort by name, date or size),
a manifest taken apart, and deleting a tag or a manifest. Reading needs `pull/read` on
the registry (what AcrPull, Reader, Contributor and Owner hold); deleting needs
`artifacts/delete` (AcrDelete, Contributor, Owner), as the data plane grants them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from transship.api.arm import registry_in_scope
from transship.api.auth import CALLER
from transship.api.events import event_request
from transship.errors import NotFound
from transship.identity.rbac import Actions
from transship.metadata.browse import BrowseSort
from transship.metadata.records import RegistryRecord
from transship.oci.digest import Digest, DigestError
from transship.portal.registries import login_server_of, registry_link
from transship.portal.web import page, page_response, see_other
from transship.registry.registries import registry_id_of

SORTS: tuple[BrowseSort, ...] = ("name", "date", "size")


def _listing_query(request: web.Request) -> tuple[str, BrowseSort, int]:
    """(search fragment, sort, page number) of a listing page's query; bad values fall back
    to the defaults (a listing is never an error)."""
    fragment = request.query.get("q", "").strip()[:128]
    sort = request.query.get("sort", "name")
    page_text = request.query.get("page", "1")
    number = int(page_text) if page_text.isascii() and page_text.isdigit() else 1
    chosen: BrowseSort = "name"
    for known in SORTS:
        if sort == known:
            chosen = known
    return fragment, chosen, max(1, min(number, 1_000_000))


def _pager(base: str, fragment: str, sort: str, number: int, pages: int) -> dict[str, Any]:
    def link(n: int) -> str:
        return base + "?" + urlencode({"q": fragment, "sort": sort, "page": n})

    return {
        "page": number,
        "pages": pages,
        "previous": link(number - 1) if number > 1 else None,
        "next": link(number + 1) if number < pages else None,
        "sort_links": {s: base + "?" + urlencode({"q": fragment, "sort": s}) for s in SORTS},
    }


def repository_link(record: RegistryRecord, repository: str) -> str:
    return f"{registry_link(record)}/repositories/{quote(repository, safe='/')}"


def manifest_link(record: RegistryRecord, repository: str, reference: str) -> str:
    return f"{repository_link(record, repository)}/manifests/{quote(reference, safe=':')}"


def _registry_context(record: RegistryRecord) -> dict[str, Any]:
    return {"registry": record, "link": registry_link(record)}


@page
async def repositories_page(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.PULL)
    fragment, sort, number = _listing_query(request)
    found = await services.browse.repositories(record, fragment, sort, number)
    base = registry_link(record) + "/repositories"
    return page_response(
        request,
        "repositories.html",
        f"Repositories of {record.name}",
        rows=[(row, repository_link(record, row.name)) for row in found.items],
        total=found.total,
        q=fragment,
        sort=sort,
        pager=_pager(base, fragment, sort, found.page, found.pages),
        base=base,
        **_registry_context(record),
    )


def pull_commands(login_server: str, repository: str, reference: str) -> list[tuple[str, str]]:
    """(tool, command) pairs that pull `repository` at a tag or digest."""
    at = f"@{reference}" if reference.startswith("sha256:") else f":{reference}"
    image = f"{login_server}/{repository}{at}"
    target = repository.rsplit("/", 1)[-1] + "-" + reference.replace(":", "-")[:20]
    return [
        ("docker", f"docker pull {image}"),
        ("podman", f"podman pull {image}"),
        ("skopeo", f"skopeo copy docker://{image} oci:{target}"),
    ]


@page
async def repository_page(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.PULL)
    repository = request.match_info["repo"]
    fragment, sort, number = _listing_query(request)
    found = await services.browse.tags(record, repository, fragment, sort, number)
    base = repository_link(record, repository)
    login = login_server_of(request, record)
    return page_response(
        request,
        "repository.html",
        f"Repository {repository}",
        repository=repository,
        tags=[
            {
                "view": view,
                "link": manifest_link(record, repository, view.row.name),
                "commands": pull_commands(login, repository, view.row.name),
            }
            for view in found.items
        ],
        total=found.total,
        q=fragment,
        sort=sort,
        pager=_pager(base, fragment, sort, found.page, found.pages),
        base=base,
        notice=f"Deleted {request.query['deleted']}." if request.query.get("deleted") else None,
        **_registry_context(record),
    )


@page
async def manifest_page(request: web.Request) -> web.StreamResponse:
    services, record = await registry_in_scope(request, Actions.PULL)
    repository, reference = request.match_info["repo"], request.match_info["reference"]
    view = await services.browse.manifest(record, repository, reference)
    may_delete = await services.access.allowed(
        request[CALLER], Actions.ARTIFACTS_DELETE, registry_id_of(record)
    )
    login = login_server_of(request, record)
    return page_response(
        request,
        "manifest.html",
        f"{repository}:{reference}"
        if not reference.startswith("sha256:")
        else f"{repository}@{reference[:19]}…",
        repository=repository,
        reference=reference,
        view=view,
        repository_link=repository_link(record, repository),
        child_link=lambda digest: manifest_link(record, repository, str(digest)),
        delete_link=manifest_link(record, repository, reference) + "/delete"
        if may_delete
        else None,
        commands=pull_commands(login, repository, reference),
        **_registry_context(record),
    )


async def _deletion(request: web.Request) -> tuple[Any, RegistryRecord, str, str, bool]:
    services, record = await registry_in_scope(request, Actions.ARTIFACTS_DELETE)
    repository, reference = request.match_info["repo"], request.match_info["reference"]
    by_digest = reference.startswith("sha256:")
    if by_digest:
        try:
            Digest.parse(reference)
        except DigestError as exc:
            raise NotFound("manifest", reference, str(exc)) from None
    elif await services.listings.tag(record, repository, reference) is None:
        raise NotFound("tag", reference, f"tag {reference} is not in repository {repository}")
    return services, record, repository, reference, by_digest


@page
async def manifest_delete_confirm(request: web.Request) -> web.StreamResponse:
    services, record, repository, reference, by_digest = await _deletion(request)
    if by_digest:
        view = await services.browse.manifest(record, repository, reference)
        details = [
            f"manifest {view.digest} ({view.media_type})",
            "every tag pointing at it",
            "its layers, when nothing else uses them (at the next garbage collection)",
        ]
        what = f"manifest {reference} of {repository}"
    else:
        details = [f"the tag {reference} only; the manifest it points at stays (by digest)"]
        what = f"tag {repository}:{reference}"
    return page_response(
        request,
        "confirm.html",
        f"Delete {what}?",
        what=what,
        details=details,
        action=manifest_link(record, repository, reference) + "/delete",
        cancel=manifest_link(record, repository, reference),
        form_id="confirm-delete",
        button="Delete",
    )


@page
async def manifest_delete(request: web.Request) -> web.StreamResponse:
    services, record, repository, reference, _ = await _deletion(request)
    await services.manifests.delete(record, repository, reference, event_request(request))
    raise see_other(repository_link(record, repository) + "?" + urlencode({"deleted": reference}))
