"""`transship cache …` and `transship credential-set …`: the artifact cache's rules and the
upstream credentials they use, as `az acr cache` and `az acr credential-set` manage them
(the same flags), over the ARM API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from transship.cli.client import ManagementApi, seg, unchecked
from transship.cli.common import (
    CONTEXT,
    api,
    confirm,
    resource_group_option,
    service_command,
    yes_option,
)
from transship.cli.output import JSON, emit, emit_json, output_option, short_time
from transship.wire.cache import (
    AuthCredentialBody,
    CacheRule,
    CacheRuleCreateBody,
    CacheRuleCreateProperties,
    CredentialSet,
    CredentialSetCreateBody,
    CredentialSetCreateProperties,
    CredentialSetUpdateBody,
    CredentialSetUpdateProperties,
    IdentityBody,
)

F = TypeVar("F", bound=Callable[..., Any])

RULE_COLUMNS = ("NAME", "SOURCE", "TARGET", "CREDENTIAL SET", "CREATED")
SET_COLUMNS = ("NAME", "LOGIN SERVER", "USERNAME SECRET", "PASSWORD SECRET", "HEALTH")
CREDENTIAL_NAME = "Credential1"

registry_option = click.option(
    "--registry", "-r", required=True, metavar="REGISTRY", help="Name of the registry."
)


def _name_option(what: str) -> Callable[[F], F]:
    return click.option(
        "--name",
        "-n",
        required=True,
        metavar="NAME",
        help=f"Name of the {what}: 5-50 letters, digits and '-'.",
    )


def rules_url(management: ManagementApi, registry: str, resource_group: str | None) -> str:
    return f"{management.registry_id(registry, resource_group)}/cacheRules"


def sets_url(management: ManagementApi, registry: str, resource_group: str | None) -> str:
    return f"{management.registry_id(registry, resource_group)}/credentialSets"


def name_of(resource_id: str | None) -> str:
    return "" if not resource_id else resource_id.rstrip("/").rsplit("/", 1)[-1]


def rule_row(rule: CacheRule) -> Sequence[Any]:
    props = rule.properties
    return (
        rule.name,
        props.source_repository,
        props.target_repository,
        name_of(props.credential_set_resource_id),
        short_time(props.creation_date),
    )


def set_row(found: CredentialSet) -> Sequence[Any]:
    props = found.properties
    credential = props.auth_credentials[0] if props.auth_credentials else None
    if credential is None:
        return (found.name, props.login_server, "", "", "")
    health = credential.credential_health
    message = getattr(health, "error_message", None)
    shown = health.status if not isinstance(message, str) else f"{health.status}: {message}"
    return (
        found.name,
        props.login_server,
        credential.username_secret_identifier,
        credential.password_secret_identifier,
        shown,
    )


def _deleted(output: str, what: str, name: str, deleted: bool) -> None:
    if output == JSON:
        emit_json({"name": name, "deleted": deleted})
    elif deleted:
        click.echo(f"Deleted {what} '{name}'.")
    else:
        click.echo(f"The {what} '{name}' did not exist.")


def _rule_body(source: str, target: str, credential_set_id: str | None) -> CacheRuleCreateBody:
    return unchecked(
        CacheRuleCreateBody,
        properties=unchecked(
            CacheRuleCreateProperties,
            source_repository=source,
            target_repository=target,
            credential_set_resource_id=credential_set_id,
        ),
        identity=None,
    )


# -- cache rules -------------------------------------------------------------------------------
@click.group(context_settings=CONTEXT)
def cache() -> None:
    """Manage cache rules: repositories of a registry pulled through from an upstream on
    first pull (az acr cache).

    A rule maps a target repository to a source repository upstream; both may end in a
    wildcard ('docker.io/library/*' to 'library/*'). A rule with a credential set pulls with
    the set's username and password; without one it pulls anonymously.
    """


@cache.command(name="create", context_settings=CONTEXT)
@registry_option
@_name_option("cache rule")
@click.option(
    "--source-repo",
    "-s",
    required=True,
    metavar="SOURCE",
    help="The full source repository path, such as 'docker.io/library/ubuntu' or "
    "'docker.io/library/*'.",
)
@click.option(
    "--target-repo",
    "-t",
    required=True,
    metavar="TARGET",
    help="The target repository in the registry, such as 'ubuntu' or 'library/*'.",
)
@click.option(
    "--cred-set", "-c", metavar="CREDENTIAL_SET", help="The credential set the rule pulls with."
)
@resource_group_option
@output_option
@service_command
def cache_create(
    registry: str,
    name: str,
    source_repo: str,
    target_repo: str,
    cred_set: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Create a cache rule.

    \b
    Examples:
      Cache Docker Hub's ubuntu as 'ubuntu', anonymously:
        transship cache create -r myregistry -n ubuntu-rule \\
          -s docker.io/library/ubuntu -t ubuntu
      Cache every official Docker Hub image under library/, with credentials:
        transship cache create -r myregistry -n hub-library \\
          -s 'docker.io/library/*' -t 'library/*' -c hub-creds
    """
    management = api()
    set_id = (
        None
        if cred_set is None
        else f"{sets_url(management, registry, resource_group)}/{seg(cred_set)}"
    )
    created = management.put(
        f"{rules_url(management, registry, resource_group)}/{seg(name)}",
        _rule_body(source_repo, target_repo, set_id),
        CacheRule,
    )
    emit(output, created, RULE_COLUMNS, lambda v: [rule_row(v)])


@cache.command(name="update", context_settings=CONTEXT)
@registry_option
@_name_option("cache rule")
@click.option("--cred-set", "-c", metavar="CREDENTIAL_SET", help="The credential set to use.")
@click.option(
    "--remove-cred-set", is_flag=True, help="Pull anonymously: remove the rule's credential set."
)
@resource_group_option
@output_option
@service_command
def cache_update(
    registry: str,
    name: str,
    cred_set: str | None,
    remove_cred_set: bool,
    resource_group: str | None,
    output: str,
) -> None:
    """Change a cache rule's credential set (its repositories cannot change).

    \b
    Examples:
      transship cache update -r myregistry -n hub-library -c hub-creds2
      transship cache update -r myregistry -n hub-library --remove-cred-set
    """
    if (cred_set is None) == (not remove_cred_set):
        raise click.UsageError("give one of --cred-set or --remove-cred-set")
    management = api()
    url = f"{rules_url(management, registry, resource_group)}/{seg(name)}"
    props = management.get(url, CacheRule).properties
    set_id = (
        None
        if cred_set is None
        else f"{sets_url(management, registry, resource_group)}/{seg(cred_set)}"
    )
    # A PUT of the rule as it is with the new credential set: `null` (removal) cannot
    # be sent in a PATCH body here, and PUT on an existing rule sets just that.
    updated = management.put(
        url, _rule_body(props.source_repository, props.target_repository, set_id), CacheRule
    )
    emit(output, updated, RULE_COLUMNS, lambda v: [rule_row(v)])


@cache.command(name="list", context_settings=CONTEXT)
@registry_option
@resource_group_option
@output_option
@service_command
def cache_list(registry: str, resource_group: str | None, output: str) -> None:
    """List a registry's cache rules.

    \b
    Examples:
      transship cache list -r myregistry
    """
    management = api()
    rules = management.values(rules_url(management, registry, resource_group), CacheRule)
    emit(
        output,
        rules,
        RULE_COLUMNS,
        lambda v: [rule_row(r) for r in v],
        empty="No cache rules.",
    )


@cache.command(name="show", context_settings=CONTEXT)
@registry_option
@_name_option("cache rule")
@resource_group_option
@output_option
@service_command
def cache_show(registry: str, name: str, resource_group: str | None, output: str) -> None:
    """Show a cache rule.

    \b
    Examples:
      transship cache show -r myregistry -n hub-library -o json
    """
    management = api()
    found = management.get(
        f"{rules_url(management, registry, resource_group)}/{seg(name)}", CacheRule
    )
    emit(output, found, RULE_COLUMNS, lambda v: [rule_row(v)])


@cache.command(name="delete", context_settings=CONTEXT)
@registry_option
@_name_option("cache rule")
@resource_group_option
@yes_option
@output_option
@service_command
def cache_delete(
    registry: str, name: str, resource_group: str | None, yes: bool, output: str
) -> None:
    """Delete a cache rule. What it cached stays, as ordinary repositories.

    \b
    Examples:
      transship cache delete -r myregistry -n hub-library --yes
    """
    confirm(f"Delete cache rule '{name}' of registry '{registry}'?", yes)
    management = api()
    deleted = management.delete(f"{rules_url(management, registry, resource_group)}/{seg(name)}")
    _deleted(output, "cache rule", name, deleted)


# -- credential sets ---------------------------------------------------------------------------
@click.group(name="credential-set", context_settings=CONTEXT)
def credential_set() -> None:
    """Manage credential sets: an upstream's login server and the secret identifiers of its
    username and password (az acr credential-set).

    The identifiers are Key Vault secret identifiers
    (https://<vault>.vault.azure.net/secrets/<name>); Transship resolves them against its own
    secret store, which `transship secret set` fills. HEALTH says whether both are set.
    """


_login_server_option = click.option(
    "--login-server",
    "-l",
    required=True,
    metavar="HOST",
    help="The upstream registry's login server, such as 'docker.io'.",
)
_username_option = click.option(
    "--username-id",
    "-u",
    metavar="SECRET_ID",
    help="The secret identifier of the username.",
)
_password_option = click.option(
    "--password-id",
    "-p",
    metavar="SECRET_ID",
    help="The secret identifier of the password.",
)


@credential_set.command(name="create", context_settings=CONTEXT)
@registry_option
@_name_option("credential set")
@_login_server_option
@_username_option
@_password_option
@resource_group_option
@output_option
@service_command
def credential_set_create(
    registry: str,
    name: str,
    login_server: str,
    username_id: str | None,
    password_id: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Create a credential set.

    \b
    Examples:
      transship secret set https://myvault.vault.azure.net/secrets/hub-user
      transship secret set https://myvault.vault.azure.net/secrets/hub-password
      transship credential-set create -r myregistry -n hub-creds -l docker.io \\
        -u https://myvault.vault.azure.net/secrets/hub-user \\
        -p https://myvault.vault.azure.net/secrets/hub-password
    """
    for value, flag in (
        (username_id, "--username-id"),
        (password_id, "--password-id"),
    ):
        if not value:
            raise click.UsageError(f"missing {flag}")
    management = api()
    body = unchecked(
        CredentialSetCreateBody,
        properties=unchecked(
            CredentialSetCreateProperties,
            login_server=login_server,
            auth_credentials=[
                unchecked(
                    AuthCredentialBody,
                    name=CREDENTIAL_NAME,
                    username_secret_identifier=username_id,
                    password_secret_identifier=password_id,
                )
            ],
        ),
        identity=unchecked(IdentityBody, type="SystemAssigned", user_assigned_identities=None),
    )
    created = management.put(
        f"{sets_url(management, registry, resource_group)}/{seg(name)}", body, CredentialSet
    )
    emit(output, created, SET_COLUMNS, lambda v: [set_row(v)])


@credential_set.command(name="update", context_settings=CONTEXT)
@registry_option
@_name_option("credential set")
@_username_option
@_password_option
@resource_group_option
@output_option
@service_command
def credential_set_update(
    registry: str,
    name: str,
    username_id: str | None,
    password_id: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Change a credential set's secret identifiers.

    \b
    Examples:
      transship credential-set update -r myregistry -n hub-creds \\
        -p https://myvault.vault.azure.net/secrets/hub-password2
    """
    if username_id is None and password_id is None:
        raise click.UsageError("give --username-id, --password-id or both")
    management = api()
    body = unchecked(
        CredentialSetUpdateBody,
        properties=unchecked(
            CredentialSetUpdateProperties,
            auth_credentials=[
                unchecked(
                    AuthCredentialBody,
                    name=CREDENTIAL_NAME,
                    username_secret_identifier=username_id,
                    password_secret_identifier=password_id,
                )
            ],
        ),
        identity=None,
    )
    updated = management.answer(
        "PATCH",
        f"{sets_url(management, registry, resource_group)}/{seg(name)}",
        CredentialSet,
        body=body,
    )
    emit(output, updated, SET_COLUMNS, lambda v: [set_row(v)])


@credential_set.command(name="list", context_settings=CONTEXT)
@registry_option
@resource_group_option
@output_option
@service_command
def credential_set_list(registry: str, resource_group: str | None, output: str) -> None:
    """List a registry's credential sets and the health of their secrets.

    \b
    Examples:
      transship credential-set list -r myregistry
    """
    management = api()
    found = management.values(sets_url(management, registry, resource_group), CredentialSet)
    emit(
        output,
        found,
        SET_COLUMNS,
        lambda v: [set_row(s) for s in v],
        empty="No credential sets.",
    )


@credential_set.command(name="show", context_settings=CONTEXT)
@registry_option
@_name_option("credential set")
@resource_group_option
@output_option
@service_command
def credential_set_show(registry: str, name: str, resource_group: str | None, output: str) -> None:
    """Show a credential set.

    \b
    Examples:
      transship credential-set show -r myregistry -n hub-creds -o json
    """
    management = api()
    found = management.get(
        f"{sets_url(management, registry, resource_group)}/{seg(name)}", CredentialSet
    )
    emit(output, found, SET_COLUMNS, lambda v: [set_row(v)])


@credential_set.command(name="delete", context_settings=CONTEXT)
@registry_option
@_name_option("credential set")
@resource_group_option
@yes_option
@output_option
@service_command
def credential_set_delete(
    registry: str, name: str, resource_group: str | None, yes: bool, output: str
) -> None:
    """Delete a credential set no cache rule uses.

    \b
    Examples:
      transship credential-set delete -r myregistry -n hub-creds --yes
    """
    confirm(f"Delete credential set '{name}' of registry '{registry}'?", yes)
    management = api()
    deleted = management.delete(f"{sets_url(management, registry, resource_group)}/{seg(name)}")
    _deleted(output, "credential set", name, deleted)
