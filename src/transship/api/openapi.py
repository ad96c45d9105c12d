"""The OpenAPI 3.1 document, generated from the route table and the wire models, and served
unauthenticated at `GET /openapi.json`.

Paths and operations come from the routes (`route_table.ROUTES`), request and response
schemas from the pydantic models that validate and serialise the bodies (by alias,
serialisation mode for answers), with every nested model hoisted to
`#/components/schemas`. `tests/unit/api/test_openapi.py` holds the document to every route,
and `tests/integration/test_schemathesis.py` holds the server to the document.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from transship import __version__
from transship.api import openapi_components as parts
from transship.api.routes import JSON, MANAGEMENT_SECURITY, Operation, Reply, Route

OPENAPI_PATH = "/openapi.json"
# The table the served document describes; the document itself is built on first request.
DOCUMENTED_ROUTES: web.AppKey[tuple[Route, ...]] = web.AppKey("openapi_routes", tuple)
_REF = "#/components/schemas/{model}"
# `{name}` or `{name:regex}` in an aiohttp pattern (the regex may hold `{m,n}`).
_VARIABLE = re.compile(r"\{[^{}:]+(?::(?:[^{}]|\{[^{}]*\})*)?\}")


class DocumentError(ValueError):
    """The route table cannot be described: a clash of names, a path that does not match its
    parameters, or a reference to a component that does not exist."""


_COMPONENTS: dict[str, Mapping[str, object]] = {
    "parameters": parts.PARAMETERS,
    "headers": parts.HEADERS,
    "responses": parts.RESPONSES,
}


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    """A reference to a component; raises DocumentError when no such component exists."""
    if kind in _COMPONENTS and name not in _COMPONENTS[kind]:
        raise DocumentError(f"no {kind} component named {name}")
    return {"$ref": f"#/components/{kind}/{name}"}


class _Schemas:
    """The components' schemas, collected model by model: request models as they validate,
    answer models as they serialise (a model is described once, in the mode it is first met
    in; none is both)."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}
        self._owners: dict[str, type[BaseModel]] = {}

    def add(
        self, model: type[BaseModel], mode: Literal["validation", "serialization"]
    ) -> dict[str, str]:
        """The reference to `model`'s schema, adding it (and the models it holds)."""
        name = model.__name__
        owner = self._owners.get(name)
        if owner is not None and owner is not model:
            raise DocumentError(f"two models named {name}: {owner} and {model}")
        if owner is None:
            schema = model.model_json_schema(by_alias=True, ref_template=_REF, mode=mode)
            for nested, nested_schema in schema.pop("$defs", {}).items():
                self._put(nested, nested_schema)
            self._put(name, schema)
            self._owners[name] = model
        return _ref(name)

    def _put(self, name: str, schema: dict[str, Any]) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise DocumentError(f"two different schemas named {name}")


def _reply(reply: Reply, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        out["headers"] = {name: _ref(c, "headers") for name, c in reply.headers.items()}
    if reply.model is not None:
        out["content"] = {
            reply.media_type or JSON: {"schema": schemas.add(reply.model, "serialization")}
        }
    elif reply.media_type is not None:
        out["content"] = {reply.media_type: {"schema": {"type": "string"}}}
    return out


def documented_path(route: Route, operation: Operation) -> str:
    """The operation's path: its own, or the route's pattern with each variable named by the
    operation's path parameters, in order. Raises DocumentError when they do not match."""
    if operation.path is not None:
        return operation.path
    for p in operation.parameters:
        _ref(p, "parameters")
    names = [
        parts.PARAMETERS[p]["name"]
        for p in operation.parameters
        if parts.PARAMETERS[p]["in"] == "path"
    ]
    variables = _VARIABLE.findall(route.path)
    if len(variables) != len(names):
        raise DocumentError(
            f"{operation.operation_id}: {route.path} has {len(variables)} variables, "
            f"the operation names {len(names)}"
        )
    pieces = iter(names)
    return _VARIABLE.sub(lambda _: "{" + next(pieces) + "}", route.path)


def _operation(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": list(operation.tags),
        "parameters": [_ref(name, "parameters") for name in operation.parameters],
        "responses": {
            str(status): _ref(reply, "responses")
            if isinstance(reply, str)
            else _reply(reply, schemas)
            for status, reply in sorted(operation.responses.items())
        },
    }
    if operation.description is not None:
        out["description"] = operation.description
    if operation.request is not None:
        media: dict[str, Any] = {"schema": schemas.add(operation.request, "validation")}
        if operation.request in parts.EXAMPLES:
            media["examples"] = parts.EXAMPLES[operation.request]
        out["requestBody"] = {
            "required": operation.request_required,
            "content": {operation.request_media_type: media},
        }
    if operation.security is not None:
        out["security"] = [dict(requirement) for requirement in operation.security]
    return out


def build_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` (a fresh dict each call). Raises DocumentError
    for a table it cannot describe (two operations on one path and method, two operations
    with one id, two models of one name, a path that does not match its parameters, a
    parameter, header or shared answer that is not a component)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    ids: set[str] = set()
    for entry in routes:
        for operation in entry.operations:
            path = documented_path(entry, operation)
            method = (operation.method or entry.method).lower()
            if method in paths.get(path, {}):
                raise DocumentError(f"{method.upper()} {path} is documented twice")
            if operation.operation_id in ids:
                raise DocumentError(f"operationId {operation.operation_id} is used twice")
            ids.add(operation.operation_id)
            paths.setdefault(path, {})[method] = _operation(operation, schemas)
    responses = {name: _reply(reply, schemas) for name, reply in parts.RESPONSES.items()}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": parts.TITLE, "version": __version__, "description": parts.DESCRIPTION},
        "tags": parts.TAGS,
        "security": [dict(requirement) for requirement in MANAGEMENT_SECURITY],
        "paths": paths,
        "components": {
            "securitySchemes": parts.SECURITY_SCHEMES,
            "schemas": dict(sorted(schemas.schemas.items())),
            "parameters": parts.PARAMETERS,
            "headers": parts.HEADERS,
            "responses": responses,
        },
    }
    return copy.deepcopy(document)


@functools.cache
def document_bytes(routes: tuple[Route, ...]) -> bytes:
    """The document as served (built once per table)."""
    return json.dumps(build_document(routes)).encode()


async def openapi_json(request: web.Request) -> web.Response:
    # Building it takes ~100 ms of CPU, too long for the event loop; cached after the first.
    body = await asyncio.to_thread(document_bytes, request.app[DOCUMENTED_ROUTES])
    return web.Response(body=body, content_type=JSON)
