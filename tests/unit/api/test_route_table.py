"""The route table feeds the router (every route, in the table's order) and describes every
operation: each answer model reads the real answers of a running application back to the
same JSON (no field lost, no null dropped, none invented)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tests.support.app import make_settings, running_registry
from tests.support.imports import Management
from transship.api.app import create_app
from transship.api.openapi_components import RESPONSES
from transship.api.route_table import ROUTES
from transship.api.routes import Operation, Reply
from transship.portal.routes import PORTAL_ROUTES
from transship.wire.graph import GraphObjectList
from transship.wire.service import Readiness

# Routes without operations: the OCI distribution API and the Graph subset (specifications
# of their own), the operations endpoints, and the `//…` redirect.
UNDOCUMENTED = re.compile(
    r"^/v2(/|$)|^/v1\.0/|^/(healthz|readyz|metrics)$|^/\{slashes:|^/$|^/portal(/|$)"
)
OPERATIONS: dict[str, Operation] = {
    op.operation_id: op for route in ROUTES for op in route.operations
}


def _canonical(pattern: str) -> str:
    """aiohttp's canonical form of a pattern: each variable without its regex."""
    return re.sub(r"\{([^{}:]+):(?:[^{}]|\{[^{}]*\})*\}", r"{\1}", pattern)


def test_the_router_registers_every_route_of_the_table_in_its_order(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "data", None))
    registered = [
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        # add_get's implicit HEAD beside each GET
        and route.method != "HEAD"
    ]
    # The API's table, then the portal's pages (registered after it, outside the document).
    expected = [(route.method, _canonical(route.path)) for route in (*ROUTES, *PORTAL_ROUTES)]
    assert registered == expected


def test_a_route_is_documented_unless_it_is_undocumented_on_purpose() -> None:
    for route in ROUTES:
        assert bool(route.operations) != bool(UNDOCUMENTED.match(route.path)), route.path
    # The portal's pages are no API: none is documented, all are under /portal (or `/`).
    for route in PORTAL_ROUTES:
        assert not route.operations and UNDOCUMENTED.match(route.path), route.path


def _model(operation_id: str, status: int) -> type[BaseModel]:
    reply = OPERATIONS[operation_id].responses[status]
    if isinstance(reply, str):
        reply = RESPONSES[reply]
    assert isinstance(reply, Reply) and reply.model is not None, (operation_id, status)
    return reply.model


def _reads_back(model: type[BaseModel], body: Any) -> None:
    """The model validates the body and serialises it to the same JSON."""
    parsed = model.model_validate(body)
    assert json.loads(parsed.model_dump_json()) == body


async def test_the_answer_models_read_real_answers_back_to_the_same_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_registry(make_settings(data, None)) as reg:
        admin = Management(reg, data)
        sub, group = admin.subscription_id, admin.resource_group
        # (operation, status, method, path, body)
        calls: list[tuple[str, int, str, str, Any]] = [
            ("Service_GetInfo", 200, "GET", "/transship/v1/info", None),
            (
                "Registries_Create",
                201,
                "PUT",
                f"{admin.base}/myregistry",
                {"location": "local", "properties": {"adminUserEnabled": True}},
            ),
            (
                "Registries_ListCredentials",
                200,
                "POST",
                f"{admin.base}/myregistry/listCredentials",
                None,
            ),
            (
                "Registries_List",
                200,
                "GET",
                f"/subscriptions/{sub}/providers/Microsoft.ContainerRegistry/registries",
                None,
            ),
            ("Registries_ListByResourceGroup", 200, "GET", admin.base, None),
            ("Registries_Get", 404, "GET", f"{admin.base}/nosuchregistry", None),
            ("ScopeMaps_List", 200, "GET", f"{admin.base}/myregistry/scopeMaps", None),
            (
                "Tokens_Create",
                201,
                "PUT",
                f"{admin.base}/myregistry/tokens/mytoken",
                {"properties": {"scopeMapId": "_repositories_pull"}},
            ),
            (
                "Registries_GenerateCredentials",
                200,
                "POST",
                f"{admin.base}/myregistry/generateCredentials",
                {"tokenId": "mytoken", "name": "password1"},
            ),
            ("Tokens_List", 200, "GET", f"{admin.base}/myregistry/tokens", None),
            (
                "Registries_ImportImage",
                400,
                "POST",
                f"{admin.base}/myregistry/importImage",
                {"source": {}},
            ),
            ("Tenants_List", 200, "GET", "/tenants", None),
            ("Subscriptions_List", 200, "GET", "/subscriptions", None),
            (
                "ResourceGroups_Get",
                200,
                "GET",
                f"/subscriptions/{sub}/resourceGroups/{group}",
                None,
            ),
            ("Resources_List", 200, "GET", f"/subscriptions/{sub}/resources", None),
            ("ServicePrincipals_List", 200, "GET", "/transship/v1/servicePrincipals", None),
            (
                "ServicePrincipals_Create",
                201,
                "POST",
                "/transship/v1/servicePrincipals",
                {"displayName": "ci"},
            ),
            (
                "Users_Create",
                201,
                "POST",
                "/transship/v1/users",
                {"userName": "someone", "password": "a-password-long-enough"},
            ),
            ("Users_List", 200, "GET", "/transship/v1/users", None),
            (
                "RoleDefinitions_List",
                200,
                "GET",
                "/providers/Microsoft.Authorization/roleDefinitions",
                None,
            ),
            (
                "RoleAssignments_List",
                200,
                "GET",
                "/providers/Microsoft.Authorization/roleAssignments",
                None,
            ),
            ("Cloud_GetMetadata", 200, "GET", "/metadata/endpoints", None),
        ]
        for operation_id, status, method, path, body in calls:
            got, answer, _ = await admin.call(method, path, body)
            assert got == status, (operation_id, got, answer)
            _reads_back(_model(operation_id, status), answer)
        # A service principal read back names its secrets (never their values).
        _, principals, _ = await admin.call("GET", "/transship/v1/servicePrincipals")
        one = principals["value"][0]["objectId"]
        got, answer, _ = await admin.call("GET", f"/transship/v1/servicePrincipals/{one}")
        assert got == 200 and "passwordCredentials" in answer
        _reads_back(_model("ServicePrincipals_Get", 200), answer)
        # Undocumented surfaces (Graph has its own specification; readiness is operational)
        # answer with models too.
        got, answer, _ = await admin.call("GET", "/v1.0/servicePrincipals")
        assert got == 200 and answer["value"]
        _reads_back(GraphObjectList, answer)
        async with reg.request("GET", "/readyz") as r:
            readiness = await r.json()
            assert r.status == 200 and readiness["loops"], readiness
            _reads_back(Readiness, readiness)
        tenant = admin.reg.services.identity.tenant_id if admin.reg else ""
        for operation_id, path in (
            ("Identity_OpenIdConfiguration", f"/{tenant}/v2.0/.well-known/openid-configuration"),
            ("Identity_Keys", f"/{tenant}/discovery/v2.0/keys"),
            ("OpenApi_Get", "/openapi.json"),
        ):
            async with reg.request("GET", path) as r:
                assert r.status == 200, path
                _reads_back(_model(operation_id, 200), await r.json())
