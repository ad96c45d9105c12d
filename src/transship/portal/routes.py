"""The portal's routes, mounted at /portal by the composition root (`api/app.py`), and the
redirect of `/` for browsers. Not part of the OpenAPI document: these are pages, not API.

docs/portal.md lists the same table for people.
"""

from __future__ import annotations

from aiohttp import web

from transship.api.routes import Handler, Route, route
from transship.portal import access, content, imports, registries, signin, static_files

REGISTRY = "/portal/registries/{sub}/{rg}/{name}"
# A repository name spans segments; a manifest's routes come before the repository page's
# (aiohttp matches in order), and a reference is one segment.
MANIFEST = REGISTRY + "/repositories/{repo:.+}/manifests/{reference:[^/]+}"


def prefers_html(request: web.Request) -> bool:
    """Whether the request's Accept header ranks text/html above JSON and anything else
    (a browser's navigation), by quality then order."""
    best: tuple[float, int] | None = None
    html: tuple[float, int] | None = None
    for position, item in enumerate(request.headers.get("Accept", "").split(",")):
        kind, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        rank = (quality, -position)
        if kind.lower() in ("text/html", "application/xhtml+xml"):
            html = rank if html is None or rank > html else html
        elif kind and (best is None or rank > best):
            best = rank
    return html is not None and html[0] > 0 and (best is None or html >= best)


async def root(request: web.Request) -> web.StreamResponse:
    """`GET /`: a browser is sent to the portal; anything else gets what it got before
    the portal existed (404)."""
    if prefers_html(request):
        raise web.HTTPFound("/portal/")
    raise web.HTTPNotFound()


async def portal_bare(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/portal/")


def _routes() -> tuple[Route, ...]:
    entries: list[tuple[str, str, Handler]] = [
        ("GET", "/", root),
        ("GET", "/portal", portal_bare),
        ("GET", "/portal/static/{name}", static_files.static_file),
        ("GET", "/portal/sign-in", signin.sign_in_form),
        ("POST", "/portal/sign-in", signin.sign_in),
        ("POST", "/portal/sign-out", signin.sign_out),
        ("GET", "/portal/", registries.registries_page),
        ("POST", "/portal/registries", registries.registry_create),
        ("GET", REGISTRY, registries.registry_page),
        ("POST", REGISTRY + "/settings", registries.registry_settings),
        ("GET", REGISTRY + "/delete", registries.registry_delete_confirm),
        ("POST", REGISTRY + "/delete", registries.registry_delete),
        ("GET", REGISTRY + "/repositories", content.repositories_page),
        ("GET", MANIFEST + "/delete", content.manifest_delete_confirm),
        ("POST", MANIFEST + "/delete", content.manifest_delete),
        ("GET", MANIFEST, content.manifest_page),
        ("GET", REGISTRY + "/repositories/{repo:.+}", content.repository_page),
        ("GET", REGISTRY + "/imports", imports.imports_page),
        ("POST", REGISTRY + "/imports", imports.import_start),
        ("GET", REGISTRY + "/imports/{operation}", imports.import_page),
        ("GET", REGISTRY + "/imports/{operation}/events", imports.import_events),
        ("POST", REGISTRY + "/imports/{operation}/cancel", imports.import_cancel),
        ("GET", REGISTRY + "/access", access.access_page),
        ("POST", REGISTRY + "/access/role-assignments", access.assign_role),
        ("GET", REGISTRY + "/access/role-assignments/{item}/delete", access.unassign_confirm),
        ("POST", REGISTRY + "/access/role-assignments/{item}/delete", access.unassign),
        ("POST", REGISTRY + "/access/scope-maps", access.create_scope_map),
        ("GET", REGISTRY + "/access/scope-maps/{item}/delete", access.scope_map_delete_confirm),
        ("POST", REGISTRY + "/access/scope-maps/{item}/delete", access.scope_map_delete),
        ("POST", REGISTRY + "/access/tokens", access.create_token),
        ("GET", REGISTRY + "/access/tokens/{item}/delete", access.token_delete_confirm),
        ("POST", REGISTRY + "/access/tokens/{item}/delete", access.token_delete),
    ]
    return tuple(route(method, path, handler) for method, path, handler in entries)


PORTAL_ROUTES: tuple[Route, ...] = _routes()
