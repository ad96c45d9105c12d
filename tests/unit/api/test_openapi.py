"""The OpenAPI document of the management API and the ACR data plane: valid OpenAPI 3.1,
served without credentials at /openapi.json, naming every route of those surfaces (checked
against the application's router), and with request schemas that are the pydantic models'
and accept exactly what those models accept."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs  # schemathesis' JSON Schema validator
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, ValidationError

from tests.support.app import make_settings, running_registry
from transship.api.app import create_app
from transship.api.openapi import OPENAPI_PATH, DocumentError, build_document
from transship.api.route_table import ROUTES
from transship.api.routes import JSON, Operation, Reply, Route, route
from transship.wire import arm as wire_arm
from transship.wire.acr import ChangeableAttributesUpdate
from transship.wire.batch import ImportImagesParameters
from transship.wire.bodies import (
    CheckNameBody,
    CredentialResetBody,
    GenerateCredentialsBody,
    ImportImageParameters,
    RegenerateCredentialBody,
    RegistryBody,
    ResourceGroupBody,
    RoleAssignmentBody,
    RoleDefinitionBody,
    ScopeMapBody,
    ScopeMapPatchBody,
    ServicePrincipalBody,
    SubscriptionBody,
    TenantBody,
    TokenBody,
    TokenPatchBody,
    UserBody,
)
from transship.wire.cache import (
    CacheRuleCreateBody,
    CacheRuleUpdateBody,
    CredentialSetCreateBody,
    CredentialSetUpdateBody,
    SecretBody,
)
from transship.wire.sync import SyncRuleBody
from transship.wire.webhooks import WebhookCreateBody, WebhookUpdateBody

DOCUMENT = build_document(ROUTES)
# The JSON request bodies' models, by component name.
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    op.request.__name__: op.request
    for route in ROUTES
    for op in route.operations
    if op.request is not None and op.request_media_type == JSON
}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Surfaces the document leaves out on purpose: the OCI distribution API and the Microsoft
# Graph subset (each has its own specification) and the operations endpoints.
# /v2 (the OCI spec is its document), the Graph subset, operations endpoints, and the
# redirect of `//…` paths (a client quirk, not an operation).
# The portal's pages (and `/`, which sends browsers there) are not API.
UNDOCUMENTED = re.compile(
    r"^/v2(/|$)|^/v1\.0/|^/(healthz|readyz|metrics)$|^/\{slashes\}$|^/$|^/portal(/|$)"
)
# Values for path parameters when turning a documented path into a request path.
SAMPLES = {"repository": "team/app", "feature": "tasks"}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in DOCUMENT["paths"].items()
        for method in METHODS
        if method in item
    ]


def component(ref: str) -> Any:
    assert ref.startswith("#/components/"), ref
    node: Any = DOCUMENT
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    errors = [error.message for error in OpenAPIV31SpecValidator(DOCUMENT).iter_errors()]
    assert errors == []


def test_the_management_api_takes_a_bearer_token_or_a_service_principal() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert (schemes["bearer"]["type"], schemes["bearer"]["scheme"]) == ("http", "bearer")
    assert (schemes["servicePrincipal"]["type"], schemes["servicePrincipal"]["scheme"]) == (
        "http",
        "basic",
    )
    assert DOCUMENT["security"] == [{"bearer": []}, {"servicePrincipal": []}]
    # Management operations keep the document's default.
    management = [
        (path, method)
        for path, method, op in operations()
        if path.startswith(("/subscriptions", "/tenants", "/providers", "/transship/v1"))
        and "security" in op
    ]
    assert management == []


def test_the_data_plane_takes_registry_credentials() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert (schemes["registryBasic"]["type"], schemes["registryBasic"]["scheme"]) == (
        "http",
        "basic",
    )
    assert (schemes["registryBearer"]["type"], schemes["registryBearer"]["scheme"]) == (
        "http",
        "bearer",
    )
    for path, _, op in operations():
        if path.startswith("/acr/v1"):
            assert {"registryBasic": []} in op["security"] and {"registryBearer": []} in op[
                "security"
            ], path


def test_exactly_these_operations_need_no_credentials() -> None:
    anonymous = {
        (path, method)
        for path, method, op in operations()
        if op.get("security", DOCUMENT["security"]) == []
        or {} in op.get("security", DOCUMENT["security"])
    }
    expected = {
        (path, method)
        for path, method, _ in operations()
        if path in (OPENAPI_PATH, "/metadata/endpoints", "/oauth2/token", "/oauth2/exchange")
        # OIDC discovery, the signing keys and the Entra token endpoints
        or path.startswith("/{tenant}/")
        # listings, when the registry allows anonymous pull
        or (path.startswith("/acr/v1/{repository}") and method == "get")
    }
    assert anonymous == expected


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))


def _request_path(template: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: SAMPLES.get(m[1], f"x{m[1]}1"), template)


async def test_every_route_of_the_management_api_and_acr_is_documented(tmp_path: Path) -> None:
    # Building the application and resolving every operation are CPU work: keep the loop free.
    app = await asyncio.to_thread(create_app, make_settings(tmp_path / "data", None))
    documented: set[web.AbstractRoute] = set()
    for path, method, _ in operations():
        # Building a mocked request costs ~1.5 ms (unittest.mock): yield between them, or
        # the loop is held past the stall guard's bound for the whole document.
        await asyncio.sleep(0)
        request = make_mocked_request(method.upper(), _request_path(path), app=app)
        match = await app.router.resolve(request)
        assert match.http_exception is None, (
            f"{method.upper()} {path} reaches no route: {match.http_exception}"
        )
        route = match.route
        assert route.method in (method.upper(), "*"), (path, method, route)
        assert not UNDOCUMENTED.match(route.resource.canonical if route.resource else ""), (
            path,
            route,
        )
        documented.add(route)
    missing = []
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if UNDOCUMENTED.match(canonical) or route in documented:
            continue
        # aiohttp adds a HEAD route beside each GET: the GET's documentation covers it.
        if route.method == "HEAD" and any(
            r.method == "GET" and r.resource is route.resource for r in documented
        ):
            continue
        missing.append(f"{route.method} {canonical}")
    assert missing == [], f"routes missing from the OpenAPI document: {missing}"


async def test_the_document_is_served_without_credentials(tmp_path: Path) -> None:
    async with (
        running_registry(make_settings(tmp_path / "data", None)) as reg,
        reg.request("GET", OPENAPI_PATH) as r,
    ):
        assert r.status == 200
        assert r.content_type == "application/json"
        served = await r.json()
    assert served == json.loads(json.dumps(DOCUMENT))


# -- request schemas are the pydantic models' -------------------------------------------------
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("patch", "/acr/v1/{repository}"): ChangeableAttributesUpdate,
    ("patch", "_tags/{tag}"): ChangeableAttributesUpdate,
    ("patch", "_manifests/{digest}"): ChangeableAttributesUpdate,
    ("post", "importImage"): ImportImageParameters,
    ("post", "importImages"): ImportImagesParameters,
    ("post", "checkNameAvailability"): CheckNameBody,
    ("put", "registryName}"): RegistryBody,
    ("patch", "registryName}"): RegistryBody,
    ("post", "regenerateCredential"): RegenerateCredentialBody,
    ("put", "scopeMapName}"): ScopeMapBody,
    ("put", "tokenName}"): TokenBody,
    ("patch", "scopeMapName}"): ScopeMapPatchBody,
    ("patch", "tokenName}"): TokenPatchBody,
    ("post", "generateCredentials"): GenerateCredentialsBody,
    ("put", "resourceGroupName}"): ResourceGroupBody,
    ("put", "tenants/{tenantId}"): TenantBody,
    ("put", "v1/subscriptions/{subscriptionId}"): SubscriptionBody,
    ("post", "servicePrincipals"): ServicePrincipalBody,
    ("post", "users"): UserBody,
    ("post", "credentials/reset"): CredentialResetBody,
    ("put", "roleDefinitionId}"): RoleDefinitionBody,
    ("put", "roleAssignmentName}"): RoleAssignmentBody,
    ("put", "webhookName}"): WebhookCreateBody,
    ("patch", "webhookName}"): WebhookUpdateBody,
    ("put", "cacheRuleName}"): CacheRuleCreateBody,
    ("patch", "cacheRuleName}"): CacheRuleUpdateBody,
    ("put", "credentialSetName}"): CredentialSetCreateBody,
    ("patch", "credentialSetName}"): CredentialSetUpdateBody,
    ("put", "v1/secrets"): SecretBody,
    ("put", "ruleName}"): SyncRuleBody,
    ("patch", "ruleName}"): SyncRuleBody,
}
# Token endpoints take forms (every value text), not JSON: schemas of their own.
FORMS = {
    "/{tenant}/oauth2/v2.0/token": "TokenRequest",
    "/{tenant}/oauth2/token": "TokenRequest",
    "/oauth2/token": "RegistryTokenRequest",
    "/oauth2/exchange": "RegistryExchangeRequest",
}


def test_request_bodies_reference_the_pydantic_models() -> None:
    found: dict[str, type[BaseModel]] = {}
    for path, method, op in operations():
        if "requestBody" not in op:
            continue
        content = op["requestBody"]["content"]
        if path in FORMS:
            assert list(content) == ["application/x-www-form-urlencoded"], path
            assert content["application/x-www-form-urlencoded"]["schema"]["$ref"].endswith(
                "/" + FORMS[path]
            )
            continue
        assert list(content) == ["application/json"], path
        ref = content["application/json"]["schema"]["$ref"]
        name = ref.rsplit("/", 1)[1]
        models = [m for (verb, end), m in BODIES.items() if verb == method and path.endswith(end)]
        assert len(models) == 1, (method, path, models)
        (model,) = models
        assert name == model.__name__
        found[name] = model
    assert found == REQUEST_MODELS


@pytest.mark.parametrize("model", list(REQUEST_MODELS.values()), ids=list(REQUEST_MODELS))
def test_request_schemas_are_the_models_json_schemas(model: type[BaseModel]) -> None:
    expected = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    schemas = DOCUMENT["components"]["schemas"]
    for name, nested in expected.pop("$defs", {}).items():
        assert schemas[name] == nested, name
    assert schemas[model.__name__] == expected


@functools.cache
def _validator(model: type[BaseModel]) -> jsonschema_rs.Validator:
    """The document's schema of `model` as a JSON Schema 2020-12 validator (OpenAPI 3.1's
    dialect); its `#/components/...` references resolve within the document's components.
    Formats are assertions, as they are to schemathesis' generators."""
    schema = {
        "$ref": f"#/components/schemas/{model.__name__}",
        "components": DOCUMENT["components"],
    }
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def _valid_by_model(model: type[BaseModel], value: Any) -> bool:
    try:
        model.model_validate(value)
    except ValidationError:
        return False
    return True


def _json_values() -> st.SearchStrategy[Any]:
    leaves = (
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each `weight` times as likely (st.one_of drops duplicates)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


def _shaped_like(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values near a model's schema: objects with its property names (the required ones
    usually there), each with a value of a right or a wrong shape, sometimes a stranger key;
    or any JSON value at all."""
    props: dict[str, st.SearchStrategy[Any]] = {}
    for name, prop in schema.get("properties", {}).items():
        options: list[st.SearchStrategy[Any]] = []
        for branch in prop.get("anyOf", [prop]):
            ref = branch.get("$ref")
            if ref is not None and depth < 2:
                options.append(_shaped_like(component(ref), depth + 1))
            elif "enum" in branch:
                options.append(st.sampled_from(branch["enum"]))
            elif branch.get("type") == "string":
                options.append(
                    st.text(min_size=branch.get("minLength", 0), max_size=3) | st.just("")
                )
            elif branch.get("type") == "array":
                options.append(st.lists(st.text(max_size=3), max_size=2))
            elif branch.get("type") == "object":
                options.append(
                    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)
                )
            elif branch.get("type") == "null":
                options.append(st.none())
        right = st.one_of(*options) if options else _json_values()
        props[name] = _weighted((3, right), (1, _json_values()))
    required = {name: props[name] for name in schema.get("required", [])}
    optional = {name: value for name, value in props.items() if name not in required}
    complete = st.fixed_dictionaries(required, optional=optional)
    partial = st.fixed_dictionaries({}, optional=props)
    stranger = st.fixed_dictionaries({}, optional={"unknownField": _json_values()})
    objects = st.builds(lambda a, b: {**b, **a}, _weighted((3, complete), (1, partial)), stranger)
    return _weighted((4, objects), (1, _json_values()))


SHAPED = {
    model: _shaped_like(component(f"#/components/schemas/{name}"))
    for name, model in REQUEST_MODELS.items()
}


@pytest.mark.parametrize("model", list(REQUEST_MODELS.values()), ids=list(REQUEST_MODELS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_schema_accepts_exactly_what_the_model_accepts(
    model: type[BaseModel], data: st.DataObject
) -> None:
    value = data.draw(SHAPED[model])
    assert _validator(model).is_valid(value) == _valid_by_model(model, value), value


# -- the generator refuses a table it cannot describe -----------------------------------------
async def _nothing(request: web.Request) -> web.Response:
    return web.Response()


def _get(operation_id: str, parameters: tuple[str, ...] = ()) -> Operation:
    return Operation(operation_id, "x", ("Service",), {204: Reply("ok")}, parameters)


def test_a_path_is_named_by_its_operations_path_parameters() -> None:
    table = (route("GET", "/subscriptions/{sub}/x", _nothing, _get("X_Get", ("SubscriptionId",))),)
    assert list(build_document(table)["paths"]) == ["/subscriptions/{subscriptionId}/x"]
    tenant = (route("GET", r"/{tenant:[0-9A-Za-z-]{1,64}}/y", _nothing, _get("Y", ("Tenant",))),)
    assert list(build_document(tenant)["paths"]) == ["/{tenant}/y"]


@pytest.mark.parametrize(
    "table",
    [
        # a variable the operation does not name
        (route("GET", "/subscriptions/{sub}/x", _nothing, _get("X_Get")),),
        # one operationId twice
        (
            route("GET", "/a", _nothing, _get("Same")),
            route("GET", "/b", _nothing, _get("Same")),
        ),
        # a parameter, a header or a shared answer that is not a component
        (route("GET", "/a", _nothing, _get("A", ("NoSuchParameter",))),),
        (
            route(
                "GET",
                "/a",
                _nothing,
                Operation("A", "x", ("Service",), {204: Reply("ok", headers={"X": "NoSuch"})}),
            ),
        ),
        (route("GET", "/a", _nothing, Operation("A", "x", ("Service",), {404: "NoSuch"})),),
        # one path and method twice
        (
            route("GET", "/a", _nothing, _get("A1")),
            route("GET", "/a", _nothing, _get("A2")),
        ),
    ],
)
def test_the_generator_refuses_a_table_it_cannot_describe(table: tuple[Route, ...]) -> None:
    with pytest.raises(DocumentError):
        build_document(table)


def test_two_models_of_one_name_are_refused() -> None:
    class ServiceInfo(BaseModel):  # not transship.wire.arm.ServiceInfo
        other: int

    table = (
        route(
            "GET",
            "/a",
            _nothing,
            Operation("A", "x", ("Service",), {200: Reply("ok", ServiceInfo)}),
        ),
        route(
            "GET",
            "/b",
            _nothing,
            Operation("B", "x", ("Service",), {200: Reply("ok", wire_arm.ServiceInfo)}),
        ),
    )
    with pytest.raises(DocumentError):
        build_document(table)
