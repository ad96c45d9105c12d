"""`transship registry scope-map …` and `transship registry token …` (az acr scope-map /
az acr token): repository-scoped credentials of one registry.

A scope map lists actions `repositories/<repository pattern>/<permission>`; a token (a user
name with two passwords) gets the actions of its scope map. Token passwords are in the
server's answer once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from transship.cli.client import ManagementApi, seg, unchecked
from transship.cli.common import (
    CONTEXT,
    RepositoryActionsCommand,
    api,
    confirm,
    registry_option,
    resource_group_option,
    service_command,
    yes_option,
)
from transship.cli.output import (
    JSON,
    emit,
    emit_json,
    emit_table,
    info,
    output_option,
    short_time,
)
from transship.wire.arm import (
    GeneratedCredentials,
    GeneratedPassword,
    ScopeMap,
    Token,
    TokenPasswordInfo,
)
from transship.wire.bodies import (
    GenerateCredentialsBody,
    ScopeMapBody,
    ScopeMapProperties,
    TokenBody,
    TokenProperties,
)

PERMISSIONS = ("content/read", "content/write", "content/delete", "metadata/read", "metadata/write")
SCOPE_MAP_COLUMNS = ("NAME", "TYPE", "DESCRIPTION", "ACTIONS")
TOKEN_COLUMNS = ("NAME", "SCOPE MAP", "STATUS", "CREATED", "PASSWORDS")
PASSWORD_COLUMNS = ("PASSWORD NAME", "VALUE", "EXPIRY")
SHOWN_ONCE = "The passwords are shown only this once: store them safely now."

RepositoryActions = tuple[str, tuple[str, ...]]
F = TypeVar("F", bound=Callable[..., Any])


def repository_actions(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[RepositoryActions]:
    """`("team/app content/read metadata/read", …)` → [("team/app", ("content/read", …))]."""
    out: list[RepositoryActions] = []
    for value in values:
        words = value.split()
        if len(words) < 2:
            raise click.BadParameter(
                f"give the actions after the repository, e.g. {words[0] if words else 'REPO'} "
                f"content/read ({', '.join(PERMISSIONS)})",
                ctx=ctx,
                param=param,
            )
        repository, actions = words[0], tuple(words[1:])
        for action in actions:
            if action not in PERMISSIONS:
                raise click.BadParameter(
                    f"{action!r} is not one of {', '.join(PERMISSIONS)}", ctx=ctx, param=param
                )
        out.append((repository, actions))
    return out


def action_strings(pairs: Iterable[RepositoryActions]) -> list[str]:
    """Scope-map actions, in order, each once."""
    actions = [f"repositories/{repo}/{action}" for repo, wanted in pairs for action in wanted]
    return list(dict.fromkeys(actions))


def repository_option(flag: str, text: str) -> Callable[[F], F]:
    return click.option(
        flag,
        multiple=True,
        metavar="REPO ACTION...",
        callback=repository_actions,
        help=f"{text} A repository (or a pattern: team/*, *) followed by actions: "
        f"{', '.join(PERMISSIONS)}. Repeatable.",
    )


def scope_map_row(item: ScopeMap) -> Sequence[Any]:
    props = item.properties
    return (item.name, props.type, props.description, props.actions)


def scope_maps_url(management: ManagementApi, registry: str, resource_group: str | None) -> str:
    return f"{management.registry_id(registry, resource_group)}/scopeMaps"


def tokens_url(management: ManagementApi, registry: str, resource_group: str | None) -> str:
    return f"{management.registry_id(registry, resource_group)}/tokens"


def name_of(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def token_row(
    item: Token, passwords: Sequence[TokenPasswordInfo | GeneratedPassword] | None = None
) -> Sequence[Any]:
    """A token's row; its passwords, or `passwords` just generated for it."""
    props = item.properties
    shown = props.credentials.passwords if passwords is None else passwords
    return (
        item.name,
        name_of(props.scope_map_id),
        props.status,
        short_time(props.creation_date),
        [f"{p.name} (expires {short_time(p.expiry)})" if p.expiry else p.name for p in shown],
    )


def scope_map_body(description: str, actions: list[str]) -> ScopeMapBody:
    return unchecked(
        ScopeMapBody,
        properties=unchecked(ScopeMapProperties, description=description, actions=actions),
    )


def token_body(scope_map_id: str, status: str) -> TokenBody:
    return unchecked(
        TokenBody, properties=unchecked(TokenProperties, scope_map_id=scope_map_id, status=status)
    )


# -- scope maps --------------------------------------------------------------------------------
@click.group(name="scope-map", context_settings=CONTEXT)
def scope_map() -> None:
    """Manage scope maps: the repository permissions tokens carry (az acr scope-map).

    Every registry also has the system scope maps _repositories_admin, _repositories_pull,
    _repositories_pull_metadata_read, _repositories_push and
    _repositories_push_metadata_write.
    """


scope_map_name_option = click.option(
    "--name",
    "-n",
    required=True,
    metavar="NAME",
    help="Name of the scope map: 5-50 letters, digits and '-'.",
)
description_option = click.option(
    "--description", metavar="TEXT", help="What the scope map is for."
)


@scope_map.command(name="create", cls=RepositoryActionsCommand, context_settings=CONTEXT)
@registry_option
@scope_map_name_option
@repository_option("--repository", "Permissions to grant.")
@description_option
@resource_group_option
@output_option
@service_command
def scope_map_create(
    registry: str,
    name: str,
    repository: list[RepositoryActions],
    description: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Create a scope map.

    \b
    Examples:
      Read and write one repository, read the others under samples/:
        transship registry scope-map create -r myregistry -n app-rw \\
          --repository team/app content/read content/write \\
          --repository 'samples/*' content/read metadata/read --description "CI of team/app"
    """
    if not repository:
        raise click.UsageError("give at least one --repository REPO ACTION...")
    management = api()
    body = scope_map_body(description or "", action_strings(repository))
    created = management.put(
        f"{scope_maps_url(management, registry, resource_group)}/{seg(name)}", body, ScopeMap
    )
    emit(output, created, SCOPE_MAP_COLUMNS, lambda v: [scope_map_row(v)])


@scope_map.command(name="update", cls=RepositoryActionsCommand, context_settings=CONTEXT)
@registry_option
@scope_map_name_option
@repository_option("--repository", "Replace every permission with these.")
@repository_option("--add-repository", "Permissions to add.")
@repository_option("--remove-repository", "Permissions to remove.")
@description_option
@resource_group_option
@output_option
@service_command
def scope_map_update(
    registry: str,
    name: str,
    repository: list[RepositoryActions],
    add_repository: list[RepositoryActions],
    remove_repository: list[RepositoryActions],
    description: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Change a scope map's permissions or description (tokens using it follow at once).

    \b
    Examples:
      Let the map also delete in team/app:
        transship registry scope-map update -r myregistry -n app-rw \\
          --add-repository team/app content/delete
      Stop it writing:
        transship registry scope-map update -r myregistry -n app-rw \\
          --remove-repository team/app content/write
    """
    if not (repository or add_repository or remove_repository or description is not None):
        raise click.UsageError(
            "nothing to update: give --repository, --add-repository, "
            "--remove-repository or --description"
        )
    management = api()
    url = f"{scope_maps_url(management, registry, resource_group)}/{seg(name)}"
    props = management.get(url, ScopeMap).properties
    actions = action_strings(repository) if repository else list(props.actions)
    actions = list(dict.fromkeys([*actions, *action_strings(add_repository)]))
    removed = set(action_strings(remove_repository))
    actions = [a for a in actions if a not in removed]
    if not actions:
        raise click.UsageError("a scope map needs at least one action; delete it instead")
    body = scope_map_body(props.description if description is None else description, actions)
    updated = management.put(url, body, ScopeMap)
    emit(output, updated, SCOPE_MAP_COLUMNS, lambda v: [scope_map_row(v)])


@scope_map.command(name="list", context_settings=CONTEXT)
@registry_option
@resource_group_option
@output_option
@service_command
def scope_map_list(registry: str, resource_group: str | None, output: str) -> None:
    """List a registry's scope maps, the system ones included.

    \b
    Examples:
      transship registry scope-map list -r myregistry
    """
    management = api()
    maps = management.values(scope_maps_url(management, registry, resource_group), ScopeMap)
    emit(
        output,
        maps,
        SCOPE_MAP_COLUMNS,
        lambda v: [scope_map_row(m) for m in v],
        empty="No scope maps.",
    )


@scope_map.command(name="show", context_settings=CONTEXT)
@registry_option
@scope_map_name_option
@resource_group_option
@output_option
@service_command
def scope_map_show(registry: str, name: str, resource_group: str | None, output: str) -> None:
    """Show a scope map's actions.

    \b
    Examples:
      transship registry scope-map show -r myregistry -n app-rw -o json
    """
    management = api()
    found = management.get(
        f"{scope_maps_url(management, registry, resource_group)}/{seg(name)}", ScopeMap
    )
    emit(output, found, SCOPE_MAP_COLUMNS, lambda v: [scope_map_row(v)])


@scope_map.command(name="delete", context_settings=CONTEXT)
@registry_option
@scope_map_name_option
@resource_group_option
@yes_option
@output_option
@service_command
def scope_map_delete(
    registry: str, name: str, resource_group: str | None, yes: bool, output: str
) -> None:
    """Delete a scope map no token uses.

    \b
    Examples:
      transship registry scope-map delete -r myregistry -n app-rw --yes
    """
    confirm(f"Delete scope map '{name}' of registry '{registry}'?", yes)
    management = api()
    deleted = management.delete(
        f"{scope_maps_url(management, registry, resource_group)}/{seg(name)}"
    )
    _deleted(output, "scope map", name, deleted)


def _deleted(output: str, what: str, name: str, deleted: bool) -> None:
    if output == JSON:
        emit_json({"name": name, "deleted": deleted})
    elif deleted:
        click.echo(f"Deleted {what} '{name}'.")
    else:
        click.echo(f"The {what} '{name}' did not exist.")


# -- tokens ------------------------------------------------------------------------------------
@click.group(context_settings=CONTEXT)
def token() -> None:
    """Manage tokens: registry credentials limited to a scope map (az acr token).

    Log in to the registry with the token's name as user name and one of its passwords,
    e.g. `docker login myregistry.example.com -u NAME -p PASSWORD`.
    """


token_name_option = click.option(
    "--name",
    "-n",
    required=True,
    metavar="NAME",
    help="Name of the token: 5-50 letters, digits and '-'.",
)
expiration_days_option = click.option(
    "--expiration-in-days",
    type=click.IntRange(min=1),
    metavar="DAYS",
    help="The passwords expire after this many days (default: never).",
)
expiration_option = click.option(
    "--expiration",
    metavar="DATETIME",
    help="The passwords expire at this ISO 8601 time, e.g. 2027-01-31T00:00:00Z.",
)
status_option = click.option(
    "--status", type=click.Choice(["enabled", "disabled"]), help="A disabled token cannot log in."
)


def expiry_of(days: int | None, moment: str | None) -> str | None:
    """The ISO expiry of --expiration-in-days or --expiration (UTC)."""
    if days is not None and moment is not None:
        raise click.UsageError("use only one of --expiration-in-days, --expiration")
    if days is not None:
        when = datetime.now(UTC) + timedelta(days=days)
    elif moment is not None:
        try:
            when = datetime.fromisoformat(moment.strip().replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(
                f"{moment!r} is not an ISO 8601 time", param_hint="--expiration"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    else:
        return None
    if when <= datetime.now(UTC):
        raise click.BadParameter(f"{moment!r} is not in the future", param_hint="--expiration")
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def generate(
    management: ManagementApi,
    registry: str,
    resource_group: str | None,
    name: str,
    password_name: str | None,
    expiry: str | None,
) -> GeneratedCredentials:
    body = unchecked(
        GenerateCredentialsBody,
        token_id=f"{tokens_url(management, registry, resource_group)}/{name}",
        name=password_name or None,
        expiry=datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None,
    )
    url = f"{management.registry_id(registry, resource_group)}/generateCredentials"
    return management.post(url, GeneratedCredentials, body)


def with_credentials(token: Token, credentials: GeneratedCredentials) -> dict[str, object]:
    """The token as JSON with the credentials just generated in its `credentials` (as az
    acr token create prints it)."""
    shown = token.model_dump(mode="json", by_alias=True)
    properties = dict(shown["properties"])
    current = properties.get("credentials")
    merged = dict(current) if isinstance(current, dict) else {}
    merged.update(credentials.model_dump(mode="json", by_alias=True))
    properties["credentials"] = merged
    return {**shown, "properties": properties}


def emit_passwords(
    output: str, credentials: GeneratedCredentials, token: Token | None = None
) -> None:
    """The token (or just the credentials) as JSON, or tables; the passwords once."""
    passwords = credentials.passwords
    if output == JSON:
        emit_json(credentials if token is None else with_credentials(token, credentials))
    else:
        if token is not None:
            emit_table(TOKEN_COLUMNS, [token_row(token, passwords)])
            click.echo()
        click.echo(f"Username: {credentials.username}")
        emit_table(
            PASSWORD_COLUMNS,
            [(p.name, p.value, short_time(p.expiry) or "never") for p in passwords],
        )
    if passwords:
        info(SHOWN_ONCE)


@token.command(name="create", cls=RepositoryActionsCommand, context_settings=CONTEXT)
@registry_option
@token_name_option
@click.option(
    "--scope-map", metavar="NAME", help="The scope map the token gets (e.g. _repositories_pull)."
)
@repository_option(
    "--repository",
    "Instead of --scope-map: create the scope map NAME-scope-map with these permissions.",
)
@status_option
@expiration_days_option
@expiration_option
@click.option(
    "--no-passwords", is_flag=True, help="Create no passwords yet (see token credential generate)."
)
@resource_group_option
@output_option
@service_command
def token_create(
    registry: str,
    name: str,
    scope_map: str | None,
    repository: list[RepositoryActions],
    status: str | None,
    expiration_in_days: int | None,
    expiration: str | None,
    no_passwords: bool,
    resource_group: str | None,
    output: str,
) -> None:
    """Create a token and its two passwords (printed once).

    \b
    Examples:
      A token that may pull everything under team/:
        transship registry token create -r myregistry -n team-puller \\
          --repository 'team/*' content/read metadata/read
      A token with a system scope map, passwords valid for 30 days:
        transship registry token create -r myregistry -n ci-pusher \\
          --scope-map _repositories_push --expiration-in-days 30
    """
    if bool(scope_map) == bool(repository):
        raise click.UsageError("give either --scope-map or --repository REPO ACTION...")
    expiry = expiry_of(expiration_in_days, expiration)
    management = api()
    if repository:
        scope_map = f"{name}-scope-map"
        management.put(
            f"{scope_maps_url(management, registry, resource_group)}/{seg(scope_map)}",
            scope_map_body(f"Scope map of token {name}", action_strings(repository)),
            ScopeMap,
        )
        info(f"Created scope map '{scope_map}'.")
    assert scope_map is not None
    url = f"{tokens_url(management, registry, resource_group)}/{seg(name)}"
    created = management.put(
        url,
        token_body(
            f"{scope_maps_url(management, registry, resource_group)}/{scope_map}",
            status or "enabled",
        ),
        Token,
    )
    if no_passwords:
        emit(output, created, TOKEN_COLUMNS, lambda v: [token_row(v)])
        return
    credentials = generate(management, registry, resource_group, name, None, expiry)
    emit_passwords(output, credentials, created)


@token.command(name="update", context_settings=CONTEXT)
@registry_option
@token_name_option
@click.option("--scope-map", metavar="NAME", help="Give the token this scope map instead.")
@status_option
@resource_group_option
@output_option
@service_command
def token_update(
    registry: str,
    name: str,
    scope_map: str | None,
    status: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Enable or disable a token, or change its scope map.

    \b
    Examples:
      transship registry token update -r myregistry -n ci-pusher --status disabled
    """
    if scope_map is None and status is None:
        raise click.UsageError("nothing to update: give --scope-map or --status")
    management = api()
    url = f"{tokens_url(management, registry, resource_group)}/{seg(name)}"
    props = management.get(url, Token).properties
    scope_map_id = (
        f"{scope_maps_url(management, registry, resource_group)}/{scope_map}"
        if scope_map
        else props.scope_map_id
    )
    updated = management.put(url, token_body(scope_map_id, status or props.status), Token)
    emit(output, updated, TOKEN_COLUMNS, lambda v: [token_row(v)])


@token.command(name="list", context_settings=CONTEXT)
@registry_option
@resource_group_option
@output_option
@service_command
def token_list(registry: str, resource_group: str | None, output: str) -> None:
    """List a registry's tokens (their passwords' names and expiry, never the values).

    \b
    Examples:
      transship registry token list -r myregistry
    """
    management = api()
    tokens = management.values(tokens_url(management, registry, resource_group), Token)
    emit(output, tokens, TOKEN_COLUMNS, lambda v: [token_row(t) for t in v], empty="No tokens.")


@token.command(name="show", context_settings=CONTEXT)
@registry_option
@token_name_option
@resource_group_option
@output_option
@service_command
def token_show(registry: str, name: str, resource_group: str | None, output: str) -> None:
    """Show a token: its scope map, status and passwords' expiry.

    \b
    Examples:
      transship registry token show -r myregistry -n team-puller -o json
    """
    management = api()
    found = management.get(f"{tokens_url(management, registry, resource_group)}/{seg(name)}", Token)
    emit(output, found, TOKEN_COLUMNS, lambda v: [token_row(v)])


@token.command(name="delete", context_settings=CONTEXT)
@registry_option
@token_name_option
@resource_group_option
@yes_option
@output_option
@service_command
def token_delete(
    registry: str, name: str, resource_group: str | None, yes: bool, output: str
) -> None:
    """Delete a token (its scope map stays).

    \b
    Examples:
      transship registry token delete -r myregistry -n team-puller --yes
    """
    confirm(f"Delete token '{name}' of registry '{registry}'?", yes)
    management = api()
    deleted = management.delete(f"{tokens_url(management, registry, resource_group)}/{seg(name)}")
    _deleted(output, "token", name, deleted)


@token.group(name="credential", context_settings=CONTEXT)
def token_credential() -> None:
    """Generate a token's passwords."""


@token_credential.command(name="generate", context_settings=CONTEXT)
@registry_option
@token_name_option
@click.option("--password1", is_flag=True, help="Generate password1 (with neither flag: both).")
@click.option("--password2", is_flag=True, help="Generate password2 (with neither flag: both).")
@expiration_days_option
@expiration_option
@resource_group_option
@output_option
@service_command
def token_credential_generate(
    registry: str,
    name: str,
    password1: bool,
    password2: bool,
    expiration_in_days: int | None,
    expiration: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Replace a token's passwords (printed once); the one not generated keeps working.

    \b
    Examples:
      Rotate password2, valid for 90 days:
        transship registry token credential generate -r myregistry -n ci-pusher \\
          --password2 --expiration-in-days 90
      Replace both:
        transship registry token credential generate -r myregistry -n ci-pusher -o json
    """
    expiry = expiry_of(expiration_in_days, expiration)
    password_name = (
        "password1"
        if password1 and not password2
        else "password2"
        if password2 and not password1
        else None
    )
    credentials = generate(api(), registry, resource_group, name, password_name, expiry)
    emit_passwords(output, credentials)
