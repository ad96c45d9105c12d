"""`transship.api.dataplane_auth`: what each /v2 and /acr/v1 request needs (`need_of`), the
scope a challenge names, and the challenge itself; and that `need_of` reads the same
repository name as the routers that then serve the request."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from transship.api import acr, v2
from transship.api.dataplane_auth import Need, challenge, need_of
from transship.oci.reference import InvalidReference, validate_repository

DIGEST = "sha256:" + "a" * 64

# (method, path, expected need) for every route shape of the data plane.
ROUTES: list[tuple[str, str, Need | None]] = [
    # base and catalog
    ("GET", "/v2", Need("base")),
    ("GET", "/v2/", Need("base")),
    ("GET", "/v2/_catalog", Need("catalog")),
    ("GET", "/acr/v1/_catalog", Need("catalog")),
    # manifests
    ("GET", "/v2/r/manifests/latest", Need("repository", "r", "pull")),
    ("HEAD", "/v2/r/manifests/latest", Need("repository", "r", "pull")),
    ("GET", f"/v2/r/manifests/{DIGEST}", Need("repository", "r", "pull")),
    ("PUT", "/v2/r/manifests/v1", Need("repository", "r", "push")),
    ("DELETE", f"/v2/r/manifests/{DIGEST}", Need("repository", "r", "delete")),
    ("GET", "/v2/team/app/manifests/v1", Need("repository", "team/app", "pull")),
    ("PUT", "/v2/a/b/c/d/manifests/v1", Need("repository", "a/b/c/d", "push")),
    # blobs
    ("GET", f"/v2/r/blobs/{DIGEST}", Need("repository", "r", "pull")),
    ("HEAD", f"/v2/r/blobs/{DIGEST}", Need("repository", "r", "pull")),
    ("DELETE", f"/v2/r/blobs/{DIGEST}", Need("repository", "r", "delete")),
    # uploads: by method, except DELETE: cancelling one's own upload is part of pushing
    ("POST", "/v2/team/app/blobs/uploads/", Need("repository", "team/app", "push")),
    ("POST", "/v2/r/blobs/uploads", Need("repository", "r", "push")),
    ("PATCH", "/v2/r/blobs/uploads/0f1e", Need("repository", "r", "push")),
    ("PUT", f"/v2/r/blobs/uploads/0f1e?digest={DIGEST}", Need("repository", "r", "push")),
    ("GET", "/v2/r/blobs/uploads/0f1e", Need("repository", "r", "pull")),
    ("DELETE", "/v2/r/blobs/uploads/0f1e", Need("repository", "r", "push")),
    (
        "DELETE",
        "/v2/team/blobs/uploads/x/blobs/" + DIGEST,
        Need("repository", "team/blobs/uploads/x", "delete"),
    ),
    # tags and referrers
    ("GET", "/v2/team/app/tags/list", Need("repository", "team/app", "pull")),
    ("GET", f"/v2/r/referrers/{DIGEST}", Need("repository", "r", "pull")),
    # an unknown /v2 endpoint: any valid credentials (then 404)
    ("GET", "/v2/r", Need("base")),
    ("GET", "/v2/r/unknown/x", Need("base")),
    ("GET", "/v2/_catalogue", Need("base")),
    # /acr/v1: the repository as acr.dispatch reads it; shapes it has no route for need
    # only valid credentials (they answer 404, or 400 for a name that cannot exist)
    ("GET", "/acr/v1/team/app", Need("repository", "team/app", "metadata_read")),
    ("PATCH", "/acr/v1/r", Need("repository", "r", "metadata_write")),
    ("DELETE", "/acr/v1/team/app", Need("repository", "team/app", "delete")),
    ("GET", "/acr/v1/team/app/_tags", Need("repository", "team/app", "metadata_read")),
    ("HEAD", "/acr/v1/r/_tags", Need("repository", "r", "metadata_read")),
    ("PATCH", "/acr/v1/r/_tags", Need("repository", "r", "metadata_write")),
    ("GET", "/acr/v1/r/_tags/v1", Need("repository", "r", "metadata_read")),
    ("DELETE", "/acr/v1/r/_tags/v1", Need("repository", "r", "delete")),
    ("GET", "/acr/v1/r/_manifests", Need("repository", "r", "metadata_read")),
    # (a name that breaks the OCI grammar, `a/_manifests/b`, is 400 NAME_INVALID: see
    # test_dataplane_names.py)
    ("GET", f"/acr/v1/r/_manifests/{DIGEST}", Need("repository", "r", "metadata_read")),
    ("DELETE", f"/acr/v1/r/_manifests/{DIGEST}", Need("repository", "r", "delete")),
    ("GET", "/acr/v1/", Need("base")),
    # not the data plane
    ("POST", "/oauth2/token", None),
    ("POST", "/oauth2/exchange", None),
    ("GET", "/", None),
    ("GET", "/v2x/r/manifests/v1", None),
    ("GET", "/acr/v1", None),
    ("GET", "/subscriptions/s/resourceGroups/g", None),
    ("GET", "/transship/v1/info", None),
]


@pytest.mark.parametrize(("method", "path", "expected"), ROUTES)
def test_need_of(method: str, path: str, expected: Need | None) -> None:
    # need_of sees request.path, which has no query string.
    assert need_of(method, path.split("?")[0]) == expected


@pytest.mark.parametrize(
    ("need", "scope"),
    [
        (Need("base"), None),
        (Need("catalog"), "registry:catalog:*"),
        (Need("repository", "team/app", "pull"), "repository:team/app:pull"),
        (Need("repository", "r", "push"), "repository:r:pull,push"),
        (Need("repository", "r", "delete"), "repository:r:delete"),
        (Need("repository", "r", "metadata_read"), "repository:r:metadata_read"),
        (Need("repository", "r", "metadata_write"), "repository:r:metadata_write"),
    ],
)
def test_need_scope(need: Need, scope: str | None) -> None:
    assert need.scope() == scope


def test_challenge() -> None:
    request = make_mocked_request("GET", "/v2/r/tags/list", headers={"Host": "reg.example:5000"})
    assert challenge(request, "reg.example:5000", None) == (
        'Bearer realm="http://reg.example:5000/oauth2/token",service="reg.example:5000"'
    )
    assert challenge(request, "svc", Need("base")) == (
        'Bearer realm="http://reg.example:5000/oauth2/token",service="svc"'
    )
    assert challenge(request, "svc", Need("repository", "r", "push"), "insufficient_scope") == (
        'Bearer realm="http://reg.example:5000/oauth2/token",service="svc",'
        'scope="repository:r:pull,push",error="insufficient_scope"'
    )
    assert challenge(request, "svc", Need("catalog")).endswith(',scope="registry:catalog:*"')


# -- need_of and the routers agree on the repository -------------------------------------------


def _v2_router_name(method: str, path: str) -> str | None:
    """The repository the /v2 router (v2.dispatch) would serve `path` for."""
    tail = path.removeprefix("/v2/")
    for pattern, methods in v2._ROUTES:
        found = pattern.fullmatch(tail)
        if found is not None:
            return found["name"] if method in methods else None
    return None


def _valid(name: str) -> str | None:
    try:
        return validate_repository(name)
    except InvalidReference:
        return None  # the router answers 400 NAME_INVALID


def _acr_router_name(method: str, path: str) -> str | None:
    """The repository the /acr/v1 router (acr.dispatch) would serve `path` for (None: it
    serves none, answering 404 or 400)."""
    tail = path.removeprefix("/acr/v1/")
    item = acr._ITEM.fullmatch(tail)
    if item is not None:  # one tag or manifest: shown (GET) or deleted (DELETE)
        return _valid(item["name"]) if method in ("GET", "DELETE") else None
    found = acr._ROUTE.fullmatch(tail)
    if found is None:
        # Any other GET shows, and DELETE deletes, the repository named by the whole tail.
        return _valid(tail) if method in ("GET", "DELETE") else None
    return _valid(found["name"]) if method == "GET" else None


_AGREEING = [
    (method, path.split("?")[0])
    for method, path, need in ROUTES
    if need is not None and need.kind == "repository"
]


@pytest.mark.parametrize(("method", "path"), _AGREEING)
def test_need_of_names_the_repository_the_router_serves(method: str, path: str) -> None:
    need = need_of(method, path)
    assert need is not None
    served = (
        _v2_router_name(method, path) if path.startswith("/v2/") else _acr_router_name(method, path)
    )
    if served is not None:  # (None: the router answers 404/405 without touching a repository)
        assert need.name == served


# Repository names may hold a component spelled like a route word (`manifests`, `blobs`,
# `tags`, `referrers` are valid OCI name components). need_of matches the name non-greedily,
# the /v2 router greedily, so they disagree: the check is made on one repository and the
# request served on another. Verified end to end: a registry token whose scope map allows
# only `repositories/team/content/{read,write}` pushes blobs and a manifest into the
# repository `team/manifests/evil` (POST /v2/team/manifests/evil/blobs/uploads/ -> 201,
# PUT /v2/team/manifests/evil/manifests/v1 -> 201; the catalog then lists it).
_AMBIGUOUS = [
    ("PUT", "/v2/team/manifests/evil/manifests/v1", "team/manifests/evil"),
    ("GET", "/v2/team/manifests/evil/manifests/v1", "team/manifests/evil"),
    ("POST", "/v2/team/manifests/evil/blobs/uploads/", "team/manifests/evil"),
    ("PATCH", "/v2/team/blobs/x/blobs/uploads/0f1e", "team/blobs/x"),
    ("GET", f"/v2/team/blobs/x/blobs/{DIGEST}", "team/blobs/x"),
    ("DELETE", f"/v2/team/tags/x/manifests/{DIGEST}", "team/tags/x"),
    ("GET", "/v2/team/referrers/x/tags/list", "team/referrers/x"),
    ("GET", "/v2/a/manifests/b/tags/list", "a/manifests/b"),
]


@pytest.mark.parametrize(("method", "path", "served"), _AMBIGUOUS)
def test_the_router_serves_the_longest_name(method: str, path: str, served: str) -> None:
    assert _v2_router_name(method, path) == served


@pytest.mark.parametrize(("method", "path", "served"), _AMBIGUOUS)
def test_need_of_agrees_with_the_router_on_names_holding_route_words(
    method: str, path: str, served: str
) -> None:
    need = need_of(method, path)
    assert need is not None and need.kind == "repository"
    assert need.name == served
