"""Data-plane authentication per the Docker token specification: who a request's credentials
are, what they may do on which repository, and the refresh and access tokens of
`/oauth2/exchange` and `/oauth2/token`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from transship.identity.access import AccessControl
from transship.identity.directory import Directory
from transship.identity.entra import ACR_AUDIENCE, EntraTokens
from transship.identity.model import SERVICE_PRINCIPAL, USER, Principal
from transship.identity.registry_access import RegistryAccess, RegistryCredential
from transship.identity.scopemaps import (
    DOCKER_ACTIONS,
    ScopeAction,
    catalog_allowed,
    granted_docker_actions,
)
from transship.identity.tokens import TokenInvalid, TokenService
from transship.metadata.changes import ChangeHub, Topic
from transship.metadata.records import RegistryRecord
from transship.registry.registries import canonical_host, registry_id_of

REFRESH_TOKEN_LIFETIME = timedelta(hours=3)
ACCESS_TOKEN_LIFETIME = timedelta(minutes=75)
# An access token's rights are checked against its holder's current ones at least this
# often: deleting a principal, a role assignment, a registry token or the admin user revokes
# its tokens within seconds, not at their expiry. With a change hub, any process's change
# drops the remembered grants at once and this is only the backstop.
GRANT_REVALIDATE_SECONDS = 5.0
# The user name `docker login` is given with an ACR refresh token as password.
REFRESH_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
EVERY_ACTION = frozenset(DOCKER_ACTIONS)
_BEARER_CACHE_SIZE = 4096
# What a remembered grant depends on.
_GRANT_TOPICS = (Topic.ROLES, Topic.CREDENTIALS, Topic.REGISTRIES)
PULL_ONLY = frozenset({"pull", "metadata_read"})
_SCOPE = re.compile(
    r"(?P<type>repository|registry|repository\(plugin\)):(?P<name>.+):(?P<actions>[a-z_*,]*)"
)


class Unauthenticated(Exception):
    """Credentials were given but are not valid; the message says why without echoing them."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one caller may do on one registry: `everywhere` on every repository, plus the
    actions of a scope map and of an access token's explicit list."""

    subject: str
    everywhere: frozenset[str] = frozenset()
    scoped: tuple[ScopeAction, ...] = ()
    explicit: Mapping[str, frozenset[str]] = field(default_factory=dict)
    catalog: bool = False
    authenticated: bool = True
    # Who holds it, as access tokens record it to check their rights again at use:
    # "principal:<object id>", "AdminUser:<name>", "RegistryToken:<name>" or "anonymous".
    holder: str = ""

    def actions_for(self, repository: str) -> frozenset[str]:
        actions = self.everywhere
        if self.scoped:
            actions = actions | granted_docker_actions(self.scoped, repository)
        explicit = self.explicit.get(repository)
        return actions | explicit if explicit else actions

    def allows(self, repository: str, action: str) -> bool:
        return action in self.actions_for(repository)


ANONYMOUS = Grant("anonymous", authenticated=False, holder="anonymous")


@dataclass(frozen=True, slots=True)
class RequestedScope:
    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: Iterable[str]) -> list[RequestedScope]:
    """The scopes of a token request (each value may hold several, space-separated);
    malformed ones are ignored, as Docker's token servers do."""
    out = []
    for value in values:
        for item in value.split():
            found = _SCOPE.fullmatch(item)
            if found is not None:
                actions = tuple(a for a in found["actions"].split(",") if a)
                out.append(RequestedScope(found["type"], found["name"], actions))
    return out


class DataPlaneAuth:
    def __init__(
        self,
        directory: Directory,
        access: AccessControl,
        registry_access: RegistryAccess,
        entra: EntraTokens,
        tokens: TokenService,
        *,
        revalidate_seconds: float = GRANT_REVALIDATE_SECONDS,
        changes: ChangeHub | None = None,
    ) -> None:
        """`changes`: the process's change hub; remembered grants are dropped whenever
        roles, credentials or registries change (None: they last `revalidate_seconds`)."""
        self._directory = directory
        self._revalidate_seconds = revalidate_seconds
        self._access = access
        self._registry_access = registry_access
        self._entra = entra
        self._tokens = tokens
        self._bearer_grants: dict[tuple[str, str], tuple[Grant, float]] = {}
        self._changes = changes if changes is not None else ChangeHub()
        for topic in _GRANT_TOPICS:
            self._changes.subscribe(topic, self._bearer_grants.clear)

    @staticmethod
    def service_name(registry: RegistryRecord, host: str) -> str:
        """The `service` of challenges and the audience of tokens: the login server, in
        canonical form."""
        name = registry.login_server or host
        return canonical_host(name) or name

    @classmethod
    def issuer(cls, registry: RegistryRecord, host: str) -> str:
        return f"https://{cls.service_name(registry, host)}"

    async def _verify(
        self, registry: RegistryRecord, host: str, token: str, grant_type: str
    ) -> dict[str, Any]:
        """The claims of a token this registry issued (audience and issuer its login server,
        bound to this very registry by its uid, so not to a registry deleted since, nor to
        another of the same name) of the `grant_type` asked for. Raises Unauthenticated."""
        service = self.service_name(registry, host)
        try:
            claims = await self._tokens.verify(
                token, audiences={service}, issuers={self.issuer(registry, host)}
            )
        except TokenInvalid as exc:
            raise Unauthenticated(str(exc)) from None
        if claims.get("grant_type") != grant_type:
            article = "an" if grant_type[0] in "aeiou" else "a"
            raise Unauthenticated(f"the token is not {article} {grant_type.replace('_', ' ')}")
        if not registry.uid or claims.get("rid") != registry.uid:
            raise Unauthenticated("the token was issued for another registry")
        return claims

    async def registry_tenant(self, registry: RegistryRecord) -> str | None:
        if registry.subscription_id is None:
            return None
        return await self.subscription_tenant(registry.subscription_id)

    async def subscription_tenant(self, subscription_id: str) -> str | None:
        """The tenant owning the subscription; None when there is no such subscription."""
        subscription = await self._directory.subscription(subscription_id)
        return None if subscription is None else subscription.tenant_id

    # -- grants ------------------------------------------------------------------------------
    async def anonymous(self, registry: RegistryRecord) -> Grant:
        settings = await self._registry_access.settings(registry)
        if settings.anonymous_pull:
            return Grant("anonymous", everywhere=PULL_ONLY, authenticated=False, holder="anonymous")
        return ANONYMOUS

    async def principal_grant(self, registry: RegistryRecord, principal: Principal) -> Grant:
        """What a directory principal's roles give on the registry. A principal of another
        tenant gets nothing."""
        holder = f"principal:{principal.object_id}"
        if principal.tenant_id != await self.registry_tenant(registry):
            return Grant(principal.display, holder=holder)
        actions = await self._access.registry_actions(principal, registry_id_of(registry))
        return Grant(
            principal.display,
            everywhere=actions,
            catalog="metadata_read" in actions,
            holder=holder,
        )

    async def current_grant(self, registry: RegistryRecord, holder: str) -> Grant:
        """What the holder an access token names may do now. Raises Unauthenticated when
        the holder is gone (a deleted principal or token, a disabled admin user)."""
        kind, _, name = holder.partition(":")
        if kind == "anonymous":
            return await self.anonymous(registry)
        if kind == "principal":
            principal = await self._directory.principal(name)
            if principal is None:
                raise Unauthenticated("the token's principal no longer exists")
            return await self.principal_grant(registry, principal)
        if kind in ("AdminUser", "RegistryToken"):
            credential = await self._registry_access.current_credential(registry, kind, name)
            if credential is None:
                raise Unauthenticated(f"the token's {kind} '{name}' is disabled or deleted")
            return self.credential_grant(credential)
        raise Unauthenticated("the token does not name its holder")

    @staticmethod
    def credential_grant(credential: RegistryCredential) -> Grant:
        return Grant(
            f"{credential.kind} '{credential.name}'",
            scoped=credential.actions,
            catalog=catalog_allowed(credential.actions),
            holder=f"{credential.kind}:{credential.name}",
        )

    async def basic(
        self, registry: RegistryRecord, username: str, password: str, *, address: str | None = None
    ) -> Grant:
        """Check user name and password against, in turn: the admin user and registry
        tokens, an ACR refresh token, a service principal (client id and secret) and a user
        of the registry's tenant. `address` is the caller's (None: unknown). Raises
        Unauthenticated, and RetryLater (TooManyFailures, CredentialChecksBusy) without
        checking the password when the caller or the name failed too often lately."""
        credential = await self._registry_access.authenticate(
            registry, username, password, address=address
        )
        if credential is not None:
            return self.credential_grant(credential)
        if username == REFRESH_TOKEN_USERNAME:
            return await self.principal_grant(
                registry, await self.refresh_principal(registry, password)
            )
        principal = await self._directory.authenticate_client(username, password, address=address)
        if principal is None:
            tenant = await self.registry_tenant(registry)
            principal = (
                None
                if tenant is None
                else await self._directory.authenticate_user(
                    tenant, username, password, address=address
                )
            )
        if principal is None:
            raise Unauthenticated(f"invalid user name or password for registry '{registry.name}'")
        return await self.principal_grant(registry, principal)

    async def bearer(self, registry: RegistryRecord, host: str, token: str) -> Grant:
        """The grant of an access token this registry issued: the actions it lists that its
        holder still has. Raises Unauthenticated.

        A client sends the same token on every request of a pull, so grants are remembered
        per token and registry, for at most `revalidate_seconds` (and never past the token's
        expiry)."""
        key = (token, registry.uid)
        hit = self._bearer_grants.get(key)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        claims = await self._verify(registry, host, token, "access_token")
        holder = str(claims.get("who", ""))
        version = self._changes.version(*_GRANT_TOPICS)
        current = await self.current_grant(registry, holder)
        explicit: dict[str, frozenset[str]] = {}
        catalog = False
        for entry in claims.get("access", []):
            if entry.get("type") == "registry" and entry.get("name") == "catalog":
                catalog = current.catalog
            elif entry.get("type") == "repository":
                name = str(entry.get("name"))
                listed = frozenset(str(a) for a in entry.get("actions", []))
                explicit[name] = listed & current.actions_for(name)
        grant = Grant(
            str(claims.get("sub", "token")), explicit=explicit, catalog=catalog, holder=holder
        )
        if not self._changes.unchanged(version, *_GRANT_TOPICS):
            return grant  # checked against rows read before a change committed: not kept
        if len(self._bearer_grants) >= _BEARER_CACHE_SIZE:
            self._bearer_grants.clear()
        until = min(float(claims["exp"]), time.time() + self._revalidate_seconds)
        self._bearer_grants[key] = (grant, until)
        return grant

    # -- tokens ------------------------------------------------------------------------------
    def access_token(
        self, registry: RegistryRecord, host: str, grant: Grant, scopes: list[RequestedScope]
    ) -> dict[str, Any]:
        """An access token holding, of the requested actions, those the grant allows
        (possibly none: the Docker token spec answers with a token either way)."""
        access = []
        for scope in scopes:
            if scope.type == "registry" and scope.name == "catalog":
                if grant.catalog:
                    access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
                continue
            if scope.type != "repository":
                continue
            allowed = grant.actions_for(scope.name)
            wanted = allowed if "*" in scope.actions else frozenset(scope.actions)
            given = sorted(wanted & allowed)
            if given:
                access.append({"type": "repository", "name": scope.name, "actions": given})
        claims = {
            "iss": self.issuer(registry, host),
            "aud": self.service_name(registry, host),
            "rid": registry.uid,
            "sub": grant.subject,
            "who": grant.holder,
            "grant_type": "access_token",
            "access": access,
        }
        token, seconds = self._tokens.issue(claims, ACCESS_TOKEN_LIFETIME)
        return {"access_token": token, "token": token, "expires_in": seconds}

    async def exchange(
        self,
        registry: RegistryRecord,
        host: str,
        origin_audiences: set[str],
        entra_token: str,
        tenant: str | None,
    ) -> str:
        """A refresh token for the principal of an Entra access token. Raises Unauthenticated
        for an invalid token, one of another tenant than the registry's, or one whose
        `tenant` parameter disagrees."""
        try:
            principal = await self._entra.verify(entra_token, {ACR_AUDIENCE, *origin_audiences})
        except TokenInvalid as exc:
            raise Unauthenticated(str(exc)) from None
        if tenant and tenant.lower() != principal.tenant_id:
            raise Unauthenticated("the token was issued by another tenant than the one named")
        if principal.tenant_id != await self.registry_tenant(registry):
            raise Unauthenticated(f"the token's tenant does not own registry '{registry.name}'")
        return self.refresh_token(registry, host, principal)

    def refresh_token(self, registry: RegistryRecord, host: str, principal: Principal) -> str:
        claims = {
            "iss": self.issuer(registry, host),
            "aud": self.service_name(registry, host),
            "rid": registry.uid,
            "sub": principal.object_id,
            "tid": principal.tenant_id,
            "grant_type": "refresh_token",
        }
        return self._tokens.issue(claims, REFRESH_TOKEN_LIFETIME)[0]

    async def refresh_principal(
        self, registry: RegistryRecord, token: str, host: str | None = None
    ) -> Principal:
        """The principal of a refresh token this registry issued. Raises Unauthenticated."""
        claims = await self._verify(registry, host or "", token, "refresh_token")
        principal = await self._directory.principal(str(claims.get("sub", "")))
        if (
            principal is None
            or principal.tenant_id != claims.get("tid")
            or principal.kind not in (SERVICE_PRINCIPAL, USER)
        ):
            raise Unauthenticated("the refresh token's principal no longer exists")
        return principal
