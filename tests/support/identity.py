"""Identity helpers for API tests: tokens from the token endpoint, principals, role
assignments, tenants, registry tokens and access settings, all through the public HTTP API."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

PROVIDER = "providers/Microsoft.ContainerRegistry"
AUTHZ = "providers/Microsoft.Authorization"
API_VERSION = "2025-04-01"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


@dataclass(frozen=True)
class Credential:
    """A service principal's sign-in: tenant, client id, secret (and object id when known)."""

    tenant_id: str
    client_id: str
    secret: str
    object_id: str = ""
    subscription_id: str = ""

    @property
    def basic(self) -> str:
        return basic(self.client_id, self.secret)


def owner_credential(data_dir: Path) -> Credential:
    """The owner service principal the first start wrote to the data directory."""
    data = json.loads((data_dir / "owner-credential.json").read_text())
    return Credential(
        data["tenantId"],
        data["clientId"],
        data["clientSecret"],
        subscription_id=data["subscriptionId"],
    )


class IdentityClient:
    """Calls the service's identity and management APIs as one principal."""

    def __init__(self, http: aiohttp.ClientSession, url: str, credential: Credential) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self.credential = credential
        self._token: str | None = None

    # -- raw -------------------------------------------------------------------------------
    async def token(self, scope: str | None = None, tenant: str | None = None) -> tuple[int, Any]:
        """POST the client-credentials grant; (status, body)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.credential.client_id,
            "client_secret": self.credential.secret,
            "scope": scope or f"{self.url}//.default",
        }
        async with self.http.post(
            f"{self.url}/{tenant or self.credential.tenant_id}/oauth2/v2.0/token", data=form
        ) as r:
            return r.status, await r.json(content_type=None)

    async def bearer(self) -> str:
        if self._token is None:
            status, body = await self.token()
            assert status == 200, body
            self._token = "Bearer " + body["access_token"]
        return self._token

    async def call(
        self, method: str, path: str, body: Any = None, *, authorization: str | None = None
    ) -> tuple[int, Any]:
        separator = "&" if "?" in path else "?"
        headers = {"Authorization": authorization or await self.bearer()}
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        async with self.http.request(
            method,
            f"{self.url}{path}{separator}api-version={API_VERSION}",
            headers=headers,
            allow_redirects=False,
            **kwargs,
        ) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = await self.call(method, path, body)
        assert status in (200, 201, 202), (method, path, status, payload)
        return payload

    # -- directory -------------------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        return dict(await self.ok("GET", "/transship/v1/info"))

    async def create_service_principal(self, name: str) -> Credential:
        body = await self.ok("POST", "/transship/v1/servicePrincipals", {"displayName": name})
        return Credential(body["tenantId"], body["appId"], body["password"], body["objectId"])

    async def create_user(self, name: str, password: str) -> str:
        body = await self.ok(
            "POST", "/transship/v1/users", {"userName": name, "password": password}
        )
        return str(body["objectId"])

    async def create_tenant(self, tenant_id: str, name: str = "Other tenant") -> Credential:
        body = await self.ok("PUT", f"/transship/v1/tenants/{tenant_id}", {"displayName": name})
        owner = body["owner"]
        return Credential(
            body["tenantId"],
            owner["appId"],
            owner["password"],
            owner["objectId"],
            body["subscriptionId"],
        )

    async def create_subscription(
        self, subscription_id: str, name: str = "Second subscription"
    ) -> str:
        body = await self.ok(
            "PUT", f"/transship/v1/subscriptions/{subscription_id}", {"displayName": name}
        )
        return str(body["subscriptionId"])

    async def create_group(self, subscription_id: str, name: str) -> None:
        await self.ok(
            "PUT", f"/subscriptions/{subscription_id}/resourcegroups/{name}", {"location": "local"}
        )

    # -- registries ------------------------------------------------------------------------
    @staticmethod
    def registry_id(subscription_id: str, group: str, name: str) -> str:
        return (
            f"/subscriptions/{subscription_id}/resourceGroups/{group}/{PROVIDER}/registries/{name}"
        )

    async def create_registry(
        self,
        subscription_id: str,
        group: str,
        name: str,
        **properties: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "location": "local",
            "sku": {"name": "Premium"},
            "properties": dict(properties),
        }
        return dict(await self.ok("PUT", self.registry_id(subscription_id, group, name), body))

    async def update_registry(self, registry_id: str, **properties: Any) -> dict[str, Any]:
        return dict(await self.ok("PATCH", registry_id, {"properties": properties}))

    async def admin_passwords(self, registry_id: str) -> tuple[str, str]:
        body = await self.ok("POST", registry_id + "/listCredentials")
        return body["username"], body["passwords"][0]["value"]

    async def create_token(self, registry_id: str, name: str, actions: list[str]) -> str:
        """A scope map `<name>-map` with `actions`, a token bound to it; returns password1."""
        await self.ok(
            "PUT", f"{registry_id}/scopeMaps/{name}-map", {"properties": {"actions": actions}}
        )
        await self.ok(
            "PUT",
            f"{registry_id}/tokens/{name}",
            {"properties": {"scopeMapId": f"{registry_id}/scopeMaps/{name}-map"}},
        )
        body = await self.ok(
            "POST",
            f"{registry_id}/generateCredentials",
            {"tokenId": f"{registry_id}/tokens/{name}", "name": "password1"},
        )
        return str(body["passwords"][0]["value"])

    # -- roles -----------------------------------------------------------------------------
    async def assign(self, scope: str, principal_id: str, role: str) -> dict[str, Any]:
        """Assign a role (by name) at `scope` ("" for the service root)."""
        status, defs = await self.call(
            "GET", f"{scope}/{AUTHZ}/roleDefinitions?$filter=roleName%20eq%20'{role}'"
        )
        assert status == 200 and len(defs["value"]) == 1, defs
        body = {
            "properties": {"roleDefinitionId": defs["value"][0]["id"], "principalId": principal_id}
        }
        return dict(await self.ok("PUT", f"{scope}/{AUTHZ}/roleAssignments/{uuid.uuid4()}", body))

    async def create_role(
        self, scope: str, name: str, actions: list[str], data_actions: list[str] | None = None
    ) -> str:
        role_id = str(uuid.uuid4())
        body = {
            "properties": {
                "roleName": name,
                "description": name,
                "permissions": [{"actions": actions, "dataActions": data_actions or []}],
                "assignableScopes": [scope],
            }
        }
        await self.ok("PUT", f"{scope}/{AUTHZ}/roleDefinitions/{role_id}", body)
        return role_id


async def registry_token(
    http: aiohttp.ClientSession,
    url: str,
    authorization: str,
    scopes: list[str],
    host: str | None = None,
) -> tuple[int, Any]:
    """`GET /oauth2/token` as Docker clients do; (status, body)."""
    query = [("service", host or "x")] + [("scope", s) for s in scopes]
    headers = {"Authorization": authorization}
    if host is not None:
        headers["Host"] = host
    async with http.get(f"{url}/oauth2/token", params=query, headers=headers) as r:
        return r.status, await r.json(content_type=None)
