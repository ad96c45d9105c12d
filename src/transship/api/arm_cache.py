"""ARM resources `registries/cacheRules` and `registries/credentialSets`: the artifact
cache's rules and the upstream credentials they use (`az acr cache …`,
`az acr credential-set …`).

Every change is done when it is answered: PUT answers 201 (created) or 200 with
`provisioningState: Succeeded`, which Azure clients' pollers take as the end of the
long-running operation; DELETE answers 202 when it deleted (clients accept only 202 and
204 there) and 204 when there was nothing to delete.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from transship.api.arm import arm_json, json_body, registry_in_scope
from transship.api.arm_models import parse_body
from transship.api.auth import caller
from transship.cache.service import CREDENTIAL_NAME, CredentialSetView, CredentialSpec
from transship.errors import Invalid
from transship.identity.rbac import Actions
from transship.metadata.cache_rules import CacheRuleRecord
from transship.metadata.records import RegistryRecord
from transship.registry.registries import registry_id_of
from transship.wire import cache as wire

_CREDENTIAL_SETS = "/credentialsets/"


def _at(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def credential_set_id(registry: RegistryRecord, name: str) -> str:
    return f"{registry_id_of(registry)}/credentialSets/{name}"


def _rule_json(registry: RegistryRecord, rule: CacheRuleRecord) -> wire.CacheRule:
    return wire.CacheRule(
        id=f"{registry_id_of(registry)}/cacheRules/{rule.name}",
        name=rule.name,
        properties=wire.CacheRuleProperties(
            source_repository=rule.source_repository,
            target_repository=rule.target_repository,
            credential_set_resource_id=None
            if rule.credential_set is None
            else credential_set_id(registry, rule.credential_set),
            creation_date=_at(rule.created_at),
            provisioning_state="Succeeded",
        ),
        system_data=wire.SystemData(created_at=_at(rule.created_at), created_by_type="User"),
    )


def _set_json(
    registry: RegistryRecord, view: CredentialSetView, tenant_id: str
) -> wire.CredentialSet:
    record, health = view.record, view.health
    health_json = (
        wire.CredentialHealth(status=health.status)
        if health.error_code is None or health.error_message is None
        else wire.CredentialHealth(
            status=health.status,
            error_code=health.error_code,
            error_message=health.error_message,
        )
    )
    return wire.CredentialSet(
        id=credential_set_id(registry, record.name),
        name=record.name,
        identity=wire.Identity(
            type="SystemAssigned", principal_id=record.principal_id, tenant_id=tenant_id
        ),
        properties=wire.CredentialSetProperties(
            login_server=record.login_server,
            auth_credentials=[
                wire.AuthCredential(
                    name=CREDENTIAL_NAME,
                    username_secret_identifier=record.username_secret_id,
                    password_secret_identifier=record.password_secret_id,
                    credential_health=health_json,
                )
            ],
            creation_date=_at(record.created_at),
            provisioning_state="Succeeded",
        ),
        system_data=wire.SystemData(created_at=_at(record.created_at), created_by_type="User"),
    )


def _credential_set_name(registry: RegistryRecord, resource_id: str | None) -> str | None:
    """The name of the credential set `resource_id` names, which must be one of this
    registry's. Raises Invalid("credentialSetResourceId")."""
    if resource_id is None or resource_id == "":
        return None
    own = registry_id_of(registry).lower() + _CREDENTIAL_SETS
    text = resource_id.strip().rstrip("/")
    name = text[len(own) :]
    if not text.lower().startswith(own) or not name or "/" in name:
        raise Invalid(
            "credentialSetResourceId",
            f"credentialSetResourceId {resource_id!r} is not the id of a credential set of "
            f"registry {registry.name} ({registry_id_of(registry)}/credentialSets/<name>)",
            subject="cache rule",
        )
    return name


def _no_user_identity(identity: wire.IdentityBody | None) -> None:
    # Transship has no managed identities: a rule pulls with its credential set or anonymously.
    if identity is not None and (identity.type or "none").lower() != "none":
        raise Invalid(
            "identity",
            "identity: user-assigned identities are not supported by Transship; give the "
            "cache rule a credential set instead",
            subject="cache rule",
        )


def _system_identity_only(identity: wire.IdentityBody | None) -> None:
    if identity is None or identity.type is None:
        return
    if identity.type.lower() != "systemassigned" or identity.user_assigned_identities:
        raise Invalid(
            "identity.type",
            f"identity.type {identity.type!r}: a credential set has its system-assigned "
            "identity only",
            subject="credential set",
        )


def _credential(items: list[wire.AuthCredentialBody]) -> wire.AuthCredentialBody:
    only = items[0]
    if only.name is not None and only.name != CREDENTIAL_NAME:
        raise Invalid(
            "authCredentials.name",
            f"authCredentials.name {only.name!r}: the only credential is {CREDENTIAL_NAME!r}",
            subject="credential set",
        )
    return only


# -- cache rules -------------------------------------------------------------------------------
async def cache_rules_list(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.CACHE_RULES_READ)
    found = await services.cache_rules.rules(registry)
    return arm_json(wire.CacheRuleList(value=[_rule_json(registry, r) for r in found]))


async def cache_rule_get(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.CACHE_RULES_READ)
    found = await services.cache_rules.rule(registry, request.match_info["rule"])
    return arm_json(_rule_json(registry, found))


async def cache_rule_put(request: web.Request) -> web.Response:
    """Create a rule; on an existing one, set its credential set (its repositories stay)."""
    services, registry = await registry_in_scope(request, Actions.CACHE_RULES_WRITE)
    body = parse_body(wire.CacheRuleCreateBody, await json_body(request))
    _no_user_identity(body.identity)
    props = body.properties
    saved, created = await services.cache_rules.create_rule(
        registry,
        request.match_info["rule"],
        props.source_repository,
        props.target_repository,
        _credential_set_name(registry, props.credential_set_resource_id),
    )
    return arm_json(_rule_json(registry, saved), status=201 if created else 200)


async def cache_rule_patch(request: web.Request) -> web.Response:
    """Set (an id) or remove (null) the rule's credential set; absent: unchanged."""
    services, registry = await registry_in_scope(request, Actions.CACHE_RULES_WRITE)
    body = parse_body(wire.CacheRuleUpdateBody, await json_body(request, required=True))
    _no_user_identity(body.identity)
    name = request.match_info["rule"]
    props = body.properties
    if props is None or "credential_set_resource_id" not in props.model_fields_set:
        return arm_json(_rule_json(registry, await services.cache_rules.rule(registry, name)))
    saved = await services.cache_rules.update_rule(
        registry, name, _credential_set_name(registry, props.credential_set_resource_id)
    )
    return arm_json(_rule_json(registry, saved))


async def cache_rule_delete(request: web.Request) -> web.Response:
    """What the rule cached stays, as ordinary repositories."""
    services, registry = await registry_in_scope(request, Actions.CACHE_RULES_DELETE)
    deleted = await services.cache_rules.delete_rule(registry, request.match_info["rule"])
    return web.Response(status=202 if deleted else 204)


# -- credential sets ---------------------------------------------------------------------------
async def credential_sets_list(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.CREDENTIAL_SETS_READ)
    tenant = (await caller(request, services)).tenant_id
    found = await services.cache_rules.credential_sets(registry)
    return arm_json(wire.CredentialSetList(value=[_set_json(registry, v, tenant) for v in found]))


async def credential_set_get(request: web.Request) -> web.Response:
    services, registry = await registry_in_scope(request, Actions.CREDENTIAL_SETS_READ)
    tenant = (await caller(request, services)).tenant_id
    found = await services.cache_rules.credential_set(registry, request.match_info["set"])
    return arm_json(_set_json(registry, found, tenant))


async def credential_set_put(request: web.Request) -> web.Response:
    """Create a credential set, or replace its login server and secret identifiers."""
    services, registry = await registry_in_scope(request, Actions.CREDENTIAL_SETS_WRITE)
    body = parse_body(wire.CredentialSetCreateBody, await json_body(request))
    _system_identity_only(body.identity)
    props = body.properties
    credential = _credential(props.auth_credentials)
    if credential.username_secret_identifier is None:
        raise Invalid(
            "authCredentials.usernameSecretIdentifier",
            "authCredentials.usernameSecretIdentifier is required",
            subject="credential set",
        )
    if credential.password_secret_identifier is None:
        raise Invalid(
            "authCredentials.passwordSecretIdentifier",
            "authCredentials.passwordSecretIdentifier is required",
            subject="credential set",
        )
    tenant = (await caller(request, services)).tenant_id
    saved, created = await services.cache_rules.create_credential_set(
        registry,
        request.match_info["set"],
        CredentialSpec(
            props.login_server,
            credential.username_secret_identifier,
            credential.password_secret_identifier,
        ),
    )
    return arm_json(_set_json(registry, saved, tenant), status=201 if created else 200)


async def credential_set_patch(request: web.Request) -> web.Response:
    """Change the secret identifiers given; the rest stays."""
    services, registry = await registry_in_scope(request, Actions.CREDENTIAL_SETS_WRITE)
    body = parse_body(wire.CredentialSetUpdateBody, await json_body(request, required=True))
    _system_identity_only(body.identity)
    tenant = (await caller(request, services)).tenant_id
    name = request.match_info["set"]
    props = body.properties
    if props is None or props.auth_credentials is None:
        found = await services.cache_rules.credential_set(registry, name)
        return arm_json(_set_json(registry, found, tenant))
    credential = _credential(props.auth_credentials)
    saved = await services.cache_rules.update_credential_set(
        registry,
        name,
        username_secret_id=credential.username_secret_identifier,
        password_secret_id=credential.password_secret_identifier,
    )
    return arm_json(_set_json(registry, saved, tenant))


async def credential_set_delete(request: web.Request) -> web.Response:
    """Refused (409) while a cache rule uses the credential set."""
    services, registry = await registry_in_scope(request, Actions.CREDENTIAL_SETS_DELETE)
    deleted = await services.cache_rules.delete_credential_set(registry, request.match_info["set"])
    return web.Response(status=202 if deleted else 204)
