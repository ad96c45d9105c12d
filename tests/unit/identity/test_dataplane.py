"""`transship.identity.dataplane`: Docker token scopes, grants, and DataPlaneAuth's access,
refresh and exchange tokens over a real directory on a SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.fernet import Fernet

from transship.identity.access import AccessControl
from transship.identity.dataplane import (
    ACCESS_TOKEN_LIFETIME,
    ANONYMOUS,
    EVERY_ACTION,
    PULL_ONLY,
    REFRESH_TOKEN_USERNAME,
    DataPlaneAuth,
    Grant,
    RequestedScope,
    Unauthenticated,
    parse_scopes,
)
from transship.identity.directory import Directory
from transship.identity.entra import ACR_AUDIENCE, EntraTokens, TokenRequest
from transship.identity.model import Principal
from transship.identity.rbac import ACR_PUSH, READER
from transship.identity.registry_access import RegistryAccess
from transship.identity.scopemaps import ScopeAction, parse_actions
from transship.identity.secrets import SecretBox, SecretHasher
from transship.identity.tokens import SigningKeys, TokenService
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.registry.registries import registry_id_of

# -- parse_scopes ------------------------------------------------------------------------------


def test_parse_scopes_reads_each_value_and_each_space_separated_item() -> None:
    assert parse_scopes(
        ["repository:a/b:pull,push", "registry:catalog:* repository:c:delete", ""]
    ) == [
        RequestedScope("repository", "a/b", ("pull", "push")),
        RequestedScope("registry", "catalog", ("*",)),
        RequestedScope("repository", "c", ("delete",)),
    ]
    assert parse_scopes([]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:r:pull", RequestedScope("repository", "r", ("pull",))),
        ("repository:r:", RequestedScope("repository", "r", ())),
        ("repository:r:pull,,push,", RequestedScope("repository", "r", ("pull", "push"))),
        ("repository:r:*", RequestedScope("repository", "r", ("*",))),
        ("repository:r:metadata_read", RequestedScope("repository", "r", ("metadata_read",))),
        # A name holding a colon (a host with a port): the actions follow the last colon.
        (
            "repository:host:5000/team/app:pull",
            RequestedScope("repository", "host:5000/team/app", ("pull",)),
        ),
        ("repository(plugin):p:pull", RequestedScope("repository(plugin)", "p", ("pull",))),
    ],
)
def test_parse_scope(text: str, expected: RequestedScope) -> None:
    assert parse_scopes([text]) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "repository",
        "repository:r",
        "repository::pull",
        "repo:r:pull",
        "REPOSITORY:r:pull",
        "repository:r:PULL",
        "repository:r:pull;push",
        "repository:r:pull push-extra",  # the second item is malformed, the first kept
        "user:someone:pull",
    ],
)
def test_malformed_scopes_are_ignored(text: str) -> None:
    parsed = parse_scopes([text])
    assert all(str(scope) in text for scope in parsed)
    if " " not in text:
        assert parsed == []


def test_requested_scope_str_round_trips() -> None:
    for text in ("repository:a/b:pull,push", "registry:catalog:*", "repository:r:"):
        (scope,) = parse_scopes([text])
        assert str(scope) == text


# -- Grant -------------------------------------------------------------------------------------


def test_grant_actions_are_the_union_of_its_parts() -> None:
    grant = Grant(
        "someone",
        everywhere=frozenset({"pull"}),
        scoped=parse_actions(
            ["repositories/team/*/content/write", "repositories/solo/content/delete"]
        ),
        explicit={"team/app": frozenset({"metadata_write"}), "other": frozenset({"push"})},
    )
    assert grant.actions_for("team/app") == {"pull", "push", "metadata_write"}
    assert grant.actions_for("team") == {"pull"}  # `team/*` is below `team` only
    assert grant.actions_for("solo") == {"pull", "delete"}
    assert grant.actions_for("other") == {"pull", "push"}
    assert grant.actions_for("Other") == {"pull"}  # names are compared as given
    assert grant.allows("team/app", "push") and not grant.allows("team", "push")
    assert grant.authenticated and not grant.catalog


def test_scope_map_content_read_implies_metadata_read() -> None:
    grant = Grant("token", scoped=(ScopeAction("*", "content/read"),))
    assert grant.actions_for("anything") == {"pull", "metadata_read"}


def test_anonymous_and_empty_grants() -> None:
    assert not ANONYMOUS.authenticated
    assert ANONYMOUS.actions_for("r") == frozenset()
    assert not ANONYMOUS.catalog
    assert Grant("nobody").actions_for("r") == frozenset()
    assert {"pull", "metadata_read"} == PULL_ONLY
    assert {"pull", "push", "delete", "metadata_read", "metadata_write"} == EVERY_ACTION


# -- DataPlaneAuth -----------------------------------------------------------------------------

PASSWORD = "a user password"


@dataclass
class World:
    auth: DataPlaneAuth
    tokens: TokenService
    entra: EntraTokens
    directory: Directory
    access: AccessControl
    registry_access: RegistryAccess
    registry: RegistryRecord
    other_registry: RegistryRecord
    foreign_registry: RegistryRecord  # of tenant B
    tenant: str
    other_tenant: str
    app: Principal
    secret: str
    foreign_app: Principal
    foreign_secret: str
    meta: MetadataStore


@pytest.fixture
async def world(tmp_path: Path, hasher: SecretHasher) -> AsyncIterator[World]:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        meta = MetadataStore(database)
        box = SecretBox(Fernet.generate_key())
        keys = SigningKeys(meta, box)
        await keys.load()
        tokens = TokenService(keys)
        directory = Directory(meta, hasher=hasher)
        access = AccessControl(meta)
        registry_access = RegistryAccess(meta, box, hasher=hasher)
        entra = EntraTokens(directory, tokens)
        tenant, subscription, _ = await directory.create_tenant("A")
        other, other_subscription, _ = await directory.create_tenant("B")
        app = await directory.create_service_principal(tenant.id, "app")
        foreign = await directory.create_service_principal(other.id, "foreign")
        await directory.create_user(tenant.id, "dana", PASSWORD)
        async with meta.writing() as q:
            registry = await q.create_registry("one", "one.example", subscription.id, "default")
            second = await q.create_registry("two", "two.example", subscription.id, "default")
            foreign_registry = await q.create_registry(
                "three", "three.example", other_subscription.id, "default"
            )
        assert app.secret is not None and foreign.secret is not None
        yield World(
            # Rights are checked again at every use (no revalidation window) in these tests.
            DataPlaneAuth(directory, access, registry_access, entra, tokens, revalidate_seconds=0),
            tokens,
            entra,
            directory,
            access,
            registry_access,
            registry,
            second,
            foreign_registry,
            tenant.id,
            other.id,
            app.principal,
            app.secret.value,
            foreign.principal,
            foreign.secret.value,
            meta,
        )
    finally:
        await database.close()


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_service_name_is_the_login_server_else_the_host() -> None:
    record = RegistryRecord(1, "r", "r.example", None, None, False, datetime.now(UTC))
    assert DataPlaneAuth.service_name(record, "ignored:5000") == "r.example"
    upper = RegistryRecord(1, "r", "R.Example:5000", None, None, False, datetime.now(UTC))
    assert DataPlaneAuth.service_name(upper, "ignored") == "r.example:5000"
    bare = RegistryRecord(1, "r", None, None, None, True, datetime.now(UTC))
    assert DataPlaneAuth.service_name(bare, "host:5000") == "host:5000"


async def test_access_token_holds_only_what_is_asked_and_allowed(world: World) -> None:
    grant = Grant(
        "someone",
        everywhere=frozenset({"pull", "metadata_read"}),
        explicit={"b": frozenset({"push"})},
    )
    scopes = parse_scopes(
        [
            "repository:a:pull,push,delete",
            "repository:b:*",
            "repository:c:delete",  # nothing allowed: left out
            "registry:catalog:*",  # the grant has no catalog
            "repository(plugin):p:pull",
            "registry:other:*",
        ]
    )
    answer = world.auth.access_token(world.registry, "host", grant, scopes)
    assert answer["token"] == answer["access_token"]
    assert answer["expires_in"] == ACCESS_TOKEN_LIFETIME.total_seconds()
    claims = claims_of(answer["access_token"])
    assert claims["aud"] == "one.example" and claims["iss"] == "https://one.example"
    assert claims["sub"] == "someone" and claims["grant_type"] == "access_token"
    assert claims["access"] == [
        {"type": "repository", "name": "a", "actions": ["pull"]},
        {"type": "repository", "name": "b", "actions": ["metadata_read", "pull", "push"]},
    ]
    with_catalog = Grant("someone", catalog=True)
    answer = world.auth.access_token(world.registry, "host", with_catalog, scopes)
    assert claims_of(answer["access_token"])["access"] == [
        {"type": "registry", "name": "catalog", "actions": ["*"]}
    ]
    # No scope at all: a token with no access (the Docker token spec answers either way).
    empty = world.auth.access_token(world.registry, "host", grant, [])
    assert claims_of(empty["access_token"])["access"] == []


async def test_bearer_reads_back_an_access_token_of_this_registry_only(world: World) -> None:
    await world.access.assign(None, registry_id_of(world.registry), world.app, ACR_PUSH)
    grant = await world.auth.principal_grant(world.registry, world.app)
    assert grant.catalog and {"pull", "push"} <= grant.everywhere
    scopes = parse_scopes(["repository:a:pull,push", "registry:catalog:*"])
    token = world.auth.access_token(world.registry, "host", grant, scopes)["access_token"]
    back = await world.auth.bearer(world.registry, "host", token)
    assert back.subject == grant.subject and back.catalog and back.authenticated
    assert back.actions_for("a") == {"pull", "push"}
    assert back.actions_for("b") == frozenset()  # only what the token names
    assert back.everywhere == frozenset()
    with pytest.raises(Unauthenticated, match="audience"):
        await world.auth.bearer(world.other_registry, "host", token)
    refresh = world.auth.refresh_token(world.registry, "host", world.app)
    with pytest.raises(Unauthenticated, match="not an access token"):
        await world.auth.bearer(world.registry, "host", refresh)
    with pytest.raises(Unauthenticated):
        await world.auth.bearer(world.registry, "host", "not-a-token")


async def test_refresh_tokens(world: World) -> None:
    refresh = world.auth.refresh_token(world.registry, "host", world.app)
    claims = claims_of(refresh)
    assert claims["grant_type"] == "refresh_token"
    assert (claims["sub"], claims["tid"], claims["aud"]) == (
        world.app.object_id,
        world.tenant,
        "one.example",
    )
    assert await world.auth.refresh_principal(world.registry, refresh) == world.app
    with pytest.raises(Unauthenticated, match="audience"):
        await world.auth.refresh_principal(world.other_registry, refresh)
    access = world.auth.access_token(world.registry, "h", Grant("x"), [])["access_token"]
    with pytest.raises(Unauthenticated, match="not a refresh token"):
        await world.auth.refresh_principal(world.registry, access)
    # Signed by us but naming another tenant than the principal's.
    forged = world.tokens.keys.sign({**claims, "tid": world.other_tenant})
    with pytest.raises(Unauthenticated, match="no longer exists"):
        await world.auth.refresh_principal(world.registry, forged)
    await world.directory.delete_principal(world.app)
    with pytest.raises(Unauthenticated, match="no longer exists"):
        await world.auth.refresh_principal(world.registry, refresh)


async def test_principal_grant_follows_roles_and_tenant(world: World) -> None:
    assert (await world.auth.principal_grant(world.registry, world.app)).actions_for("r") == set()
    await world.access.assign(None, registry_id_of(world.registry), world.app, ACR_PUSH)
    grant = await world.auth.principal_grant(world.registry, world.app)
    assert grant.actions_for("any/repo") == {"pull", "push", "metadata_read", "metadata_write"}
    assert grant.catalog
    assert grant.subject == world.app.display
    # Nothing on a registry the assignment does not cover ...
    assert (await world.auth.principal_grant(world.other_registry, world.app)).actions_for(
        "r"
    ) == frozenset()
    # ... and nothing for a principal of another tenant, whatever it holds.
    await world.access.assign(
        None, registry_id_of(world.foreign_registry), world.foreign_app, READER
    )
    assert (await world.auth.principal_grant(world.registry, world.foreign_app)).actions_for(
        "r"
    ) == frozenset()
    assert (await world.auth.principal_grant(world.foreign_registry, world.foreign_app)).allows(
        "r", "pull"
    )


async def test_basic_credentials(world: World) -> None:
    await world.access.assign(None, registry_id_of(world.registry), world.app, READER)
    by_secret = await world.auth.basic(world.registry, world.app.app_id or "", world.secret)
    assert by_secret.actions_for("r") == {"pull", "metadata_read"}
    with pytest.raises(Unauthenticated):
        await world.auth.basic(world.registry, world.app.app_id or "", world.secret + "x")
    refresh = world.auth.refresh_token(world.registry, "host", world.app)
    by_refresh = await world.auth.basic(world.registry, REFRESH_TOKEN_USERNAME, refresh)
    assert by_refresh.actions_for("r") == {"pull", "metadata_read"}
    with pytest.raises(Unauthenticated):
        await world.auth.basic(world.other_registry, REFRESH_TOKEN_USERNAME, refresh)
    # A user signs in with name and password at a registry of its tenant only.
    user = await world.auth.basic(world.registry, "dana", PASSWORD)
    assert user.authenticated and user.actions_for("r") == frozenset()
    with pytest.raises(Unauthenticated):
        await world.auth.basic(world.foreign_registry, "dana", PASSWORD)
    with pytest.raises(Unauthenticated):
        await world.auth.basic(world.registry, "dana", PASSWORD + "x")
    # A service principal of another tenant authenticates, and gets nothing.
    foreign = await world.auth.basic(
        world.registry, world.foreign_app.app_id or "", world.foreign_secret
    )
    assert foreign.authenticated and foreign.actions_for("r") == frozenset()


async def test_anonymous_grant_follows_the_registry_setting(world: World) -> None:
    assert await world.auth.anonymous(world.registry) == ANONYMOUS
    await world.registry_access.update(world.registry, anonymous_pull=True)
    opened = await world.auth.anonymous(world.registry)
    assert not opened.authenticated and opened.actions_for("r") == PULL_ONLY


async def test_exchange(world: World) -> None:
    async def entra_token(client_id: str, secret: str, tenant: str, scope: str) -> str:
        request = TokenRequest(tenant, "client_credentials", client_id, secret, "", "", scope)
        return str((await world.entra.issue("https://svc", request))["access_token"])

    acr = await entra_token(
        world.app.app_id or "", world.secret, world.tenant, ACR_AUDIENCE + "/.default"
    )
    arm = await entra_token(
        world.app.app_id or "", world.secret, world.tenant, "https://svc//.default"
    )
    foreign = await entra_token(
        world.foreign_app.app_id or "",
        world.foreign_secret,
        world.other_tenant,
        ACR_AUDIENCE + "/.default",
    )
    origins = {"https://svc", "https://svc/"}
    for token, tenant in (
        (acr, world.tenant),
        (acr, None),
        (acr, ""),
        (acr, world.tenant.upper()),
        (arm, None),
    ):
        refresh = await world.auth.exchange(world.registry, "h", origins, token, tenant)
        assert await world.auth.refresh_principal(world.registry, refresh) == world.app
    with pytest.raises(Unauthenticated, match="audience"):
        await world.auth.exchange(world.registry, "h", {"https://elsewhere"}, arm, None)
    with pytest.raises(Unauthenticated, match="another tenant than the one named"):
        await world.auth.exchange(world.registry, "h", origins, acr, world.other_tenant)
    with pytest.raises(Unauthenticated, match="does not own"):
        await world.auth.exchange(world.registry, "h", origins, foreign, None)
    with pytest.raises(Unauthenticated):
        await world.auth.exchange(world.registry, "h", origins, foreign, world.tenant)
    assert await world.auth.exchange(world.foreign_registry, "h", origins, foreign, None)
    with pytest.raises(Unauthenticated):
        await world.auth.exchange(world.registry, "h", origins, "garbage", None)


async def test_access_tokens_are_bound_to_the_registry_not_its_name(world: World) -> None:
    """A token of a deleted registry never works on a later registry of the same name and
    login server (whatever row id it gets)."""
    async with world.meta.writing() as q:
        first = await q.create_registry("again", "again.example", None, None)
    token = world.auth.access_token(
        first, "h", Grant("x", holder="anonymous", everywhere=frozenset({"pull"})), []
    )["access_token"]
    assert claims_of(token)["rid"] == first.uid
    await world.auth.bearer(first, "h", token)  # control: accepted while the registry lives
    async with world.meta.writing() as q:
        await q.delete_registry(first.id)
        second = await q.create_registry("again", "again.example", None, None)
    assert second.uid != first.uid
    with pytest.raises(Unauthenticated, match="another registry"):
        await world.auth.bearer(second, "h", token)
    refresh = world.auth.refresh_token(first, "h", world.app)
    with pytest.raises(Unauthenticated, match="another registry"):
        await world.auth.refresh_principal(second, refresh)


async def test_bearer_checks_the_issuer(world: World) -> None:
    grant = Grant("x", holder="anonymous")
    claims = claims_of(world.auth.access_token(world.registry, "h", grant, [])["access_token"])
    assert claims["iss"] == "https://one.example"
    forged = world.tokens.keys.sign({**claims, "iss": "https://elsewhere.example"})
    with pytest.raises(Unauthenticated, match="issuer"):
        await world.auth.bearer(world.registry, "h", forged)
    trailing = world.tokens.keys.sign({**claims, "aud": "one.example/"})
    with pytest.raises(Unauthenticated, match="audience"):
        await world.auth.bearer(world.registry, "h", trailing)


async def test_access_tokens_lose_what_their_holder_lost(world: World) -> None:
    """Rights are those of the holder at use: a removed role, a deleted principal, a deleted
    or disabled registry token, a disabled admin user take effect on tokens already issued."""
    assignment = await world.access.assign(
        None, registry_id_of(world.registry), world.app, ACR_PUSH
    )
    scopes = parse_scopes(["repository:a:pull,push"])
    grant = await world.auth.principal_grant(world.registry, world.app)
    token = world.auth.access_token(world.registry, "h", grant, scopes)["access_token"]
    assert (await world.auth.bearer(world.registry, "h", token)).actions_for("a") == {
        "pull",
        "push",
    }
    await world.access.unassign(assignment.id)
    assert (await world.auth.bearer(world.registry, "h", token)).actions_for("a") == frozenset()
    await world.directory.delete_principal(world.app)
    with pytest.raises(Unauthenticated, match="no longer exists"):
        await world.auth.bearer(world.registry, "h", token)

    await world.registry_access.save_scope_map(
        world.registry,
        "pushers",
        "",
        ["repositories/a/content/read", "repositories/a/content/write"],
    )
    await world.registry_access.save_token(world.registry, "robot", "pushers", True)
    credential = await world.registry_access.current_credential(
        world.registry, "RegistryToken", "robot"
    )
    assert credential is not None
    robot = world.auth.credential_grant(credential)
    token = world.auth.access_token(world.registry, "h", robot, scopes)["access_token"]
    assert (await world.auth.bearer(world.registry, "h", token)).allows("a", "push")
    await world.registry_access.save_token(world.registry, "robot", "pushers", False)
    with pytest.raises(Unauthenticated, match="disabled or deleted"):
        await world.auth.bearer(world.registry, "h", token)

    await world.registry_access.update(world.registry, admin_user_enabled=True)
    admin = await world.registry_access.current_credential(world.registry, "AdminUser", "one")
    assert admin is not None
    token = world.auth.access_token(
        world.registry, "h", world.auth.credential_grant(admin), scopes
    )["access_token"]
    assert (await world.auth.bearer(world.registry, "h", token)).allows("a", "push")
    await world.registry_access.update(world.registry, admin_user_enabled=False)
    with pytest.raises(Unauthenticated, match="disabled or deleted"):
        await world.auth.bearer(world.registry, "h", token)


async def test_tokens_without_a_holder_are_refused(world: World) -> None:
    token = world.auth.access_token(world.registry, "h", Grant("x"), [])["access_token"]
    with pytest.raises(Unauthenticated, match="holder"):
        await world.auth.bearer(world.registry, "h", token)
