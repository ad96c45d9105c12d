"""The shape of the route table (`route_table.ROUTES`): each route's method, aiohttp path
pattern and handler, and the operations it serves as the OpenAPI document describes them.

One table feeds both the router (`register`) and the document (`openapi.build_document`),
so a route cannot exist without its description nor a description without its route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# Security requirements: the management API's (the document's default), the data plane's,
# and none.
Security = tuple[Mapping[str, list[str]], ...]
MANAGEMENT_SECURITY: Security = ({"bearer": []}, {"servicePrincipal": []})
REGISTRY_SECURITY: Security = ({"registryBasic": []}, {"registryBearer": []})
ANONYMOUS: Security = ()
# The request and correlation ids every management API answer carries (header → the
# header component describing it).
ARM_HEADERS: Mapping[str, str] = {
    "x-ms-request-id": "RequestId",
    "x-ms-correlation-request-id": "CorrelationRequestId",
}


@dataclass(frozen=True, eq=False)
class Reply:
    """One documented answer: its description, its body's model (None: no body) and media
    type, and its headers (response header → the header component describing it). A body
    without a model is text (`media_type` other than JSON)."""

    description: str
    model: type[BaseModel] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str | None = None


@dataclass(frozen=True, eq=False)
class Operation:
    """What the document says of one method on one path.

    `parameters` name components (`#/components/parameters/…`); those `in: path` give, in
    order, the names of the route pattern's variables in the documented path. `path` and
    `method` are needed only where the route is not one documented path: a catch-all route
    serving several operations, or a variable spanning segments (role scopes); or GET's
    implicit HEAD. `responses` map a status to a Reply or to a shared response component's
    name. `security` None keeps the document's default (the management API's)."""

    operation_id: str
    summary: str
    tags: tuple[str, ...]
    responses: Mapping[int, Reply | str]
    parameters: tuple[str, ...] = ()
    request: type[BaseModel] | None = None
    request_required: bool = False
    request_media_type: str = JSON
    security: Security | None = None
    description: str | None = None
    path: str | None = None
    method: str | None = None


@dataclass(frozen=True, eq=False)
class Route:
    """One route of the router, in registration order. No operations: undocumented on
    purpose (the OCI distribution API and the Graph subset have specifications of their
    own; health, readiness and metrics are operational; `//…` is a client quirk)."""

    method: str
    path: str
    handler: Handler
    operations: tuple[Operation, ...] = ()


def route(method: str, path: str, handler: Handler, *operations: Operation) -> Route:
    return Route(method, path, handler, operations)


def arm(
    description: str,
    model: type[BaseModel] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """A management API answer, with the request id headers every one carries."""
    return Reply(description, model, {**ARM_HEADERS, **(headers or {})})


def register(app: web.Application, routes: tuple[Route, ...]) -> None:
    """Add every route to the router, in the table's order (aiohttp matches in order: the
    catch-all routes come after the routes they would shadow). A GET route also answers
    HEAD, as `add_get` does."""
    for entry in routes:
        if entry.method == "GET":
            app.router.add_get(entry.path, entry.handler)
        else:
            app.router.add_route(entry.method, entry.path, entry.handler)
