"""`transship registry …` (az acr …): create, list, show, update and delete registries, their
admin credential and network rules; scope maps and tokens are in commands_registry_access."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from transship.cli.common import (
    CONTEXT,
    api,
    name_option,
    registry_name,
    resource_group_option,
    service_command,
)
from transship.cli.output import JSON, CommandFailed, emit, emit_json, output_option, short_time
from transship.cli.pull_hint import show_pull_hint
from transship.wire.arm import NetworkRules, Registry, RegistryCredentials
from transship.wire.bodies import (
    IpRule,
    NetworkRuleSet,
    RegenerateCredentialBody,
    RegistryBody,
    RegistryProperties,
    RegistrySku,
)

REGISTRY_NAME = re.compile(r"[A-Za-z0-9]{5,50}")
COLUMNS = ("NAME", "RESOURCE GROUP", "LOCATION", "SKU", "LOGIN SERVER", "CREATION DATE")


def resource_group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[index + 1]
    return ""


def registry_row(registry: Registry) -> Sequence[Any]:
    return (
        registry.name,
        resource_group_of(registry.id),
        registry.location,
        registry.sku.name,
        registry.properties.login_server,
        short_time(registry.properties.creation_date),
    )


def registry_rows(registries: Iterable[Registry]) -> list[Sequence[Any]]:
    return [registry_row(r) for r in registries]


@click.group(context_settings=CONTEXT)
def registry() -> None:
    """Manage the registries of the service (az acr …).

    Each registry is a namespace of repositories with its own login server (host name);
    requests reach a registry by their Host header. Access to a registry's data plane comes
    from role assignments (AcrPull, AcrPush, …), the admin user, tokens with scope maps, and
    anonymous pull; network rules restrict where clients may connect from.
    """


@registry.command(context_settings=CONTEXT)
@registry_name
@resource_group_option
@click.option("--location", "-l", metavar="LOCATION", help="Location (default: the service's).")
@click.option(
    "--sku",
    type=click.Choice(["Basic", "Standard", "Premium"], case_sensitive=False),
    default="Premium",
    show_default=True,
    help="Service tier (recorded for Azure compatibility; every registry has every feature).",
)
@output_option
@service_command
def create(
    name: str,
    resource_group: str | None,
    location: str | None,
    sku: str,
    output: str,
) -> None:
    """Create a registry (or update an existing one's settings).

    The name (-n/--name, as in az; a positional NAME works too) is 5-50 letters and digits,
    as in Azure Container Registry, unique across the service. Its login server is always
    the name (in lower case) followed by the service's login-server suffix, e.g.
    myregistry.localhost:5000 (like NAME.azurecr.io in Azure).

    \b
    Examples:
      Create a registry:
        transship registry create -n myregistry
    """
    if not REGISTRY_NAME.fullmatch(name):
        raise click.BadParameter(
            "a registry name is 5-50 alphanumeric characters", param_hint="-n/--name"
        )
    body = RegistryBody(
        sku=RegistrySku.model_validate({"name": sku.capitalize()}), location=location or None
    )
    management = api()
    created = management.put_registry(name, body, resource_group)
    emit(output, created, COLUMNS, lambda r: [registry_row(r)])
    if output != JSON:
        show_pull_hint(management, created.properties.login_server, ())


@registry.command(name="list", context_settings=CONTEXT)
@resource_group_option
@output_option
@service_command
def list_registries(resource_group: str | None, output: str) -> None:
    """List the registries of the subscription, or of one resource group.

    \b
    Examples:
      transship registry list -o table
      transship registry list --resource-group myresourcegroup -o json
    """
    registries = api().list_registries(resource_group)
    emit(output, registries, COLUMNS, registry_rows, empty="No registries.")


@registry.command(context_settings=CONTEXT)
@registry_name
@resource_group_option
@output_option
@service_command
def show(name: str, resource_group: str | None, output: str) -> None:
    """Show a registry: its id, login server, SKU and settings.

    \b
    Examples:
      transship registry show -n myregistry
      transship registry show -n myregistry -o json
      Just its login server:
        transship registry show -n myregistry --query properties.loginServer -o tsv
    """
    found = api().get_registry(name, resource_group)
    emit(output, found, COLUMNS, lambda r: [registry_row(r)])


@registry.command(context_settings=CONTEXT)
@registry_name
@resource_group_option
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@output_option
@service_command
def delete(name: str, resource_group: str | None, yes: bool, output: str) -> None:
    """Delete a registry and everything in it.

    \b
    Examples:
      transship registry delete -n myregistry
      transship registry delete -n myregistry --yes
    """
    if not yes:
        click.confirm(f"Delete registry '{name}' and all its repositories?", abort=True, err=True)
    deleted = api().delete_registry(name, resource_group)
    if output == JSON:
        emit_json({"name": name, "deleted": deleted})
    elif deleted:
        click.echo(f"Deleted registry '{name}'.")
    else:
        click.echo(f"Registry '{name}' did not exist.")


# -- settings: update, admin credential, network rules ---------------------------------------
ACCESS_COLUMNS = (
    "NAME",
    "ADMIN ENABLED",
    "ANONYMOUS PULL",
    "PUBLIC NETWORK",
    "DEFAULT ACTION",
    "IP RULES",
    "TRUSTED SERVICES",
)
TRUE_FALSE = click.Choice(["true", "false"], case_sensitive=False)


def access_row(registry: Registry) -> Sequence[Any]:
    properties = registry.properties
    rules = properties.network_rule_set
    return (
        registry.name,
        properties.admin_user_enabled,
        properties.anonymous_pull_enabled,
        properties.public_network_access,
        rules.default_action,
        [r.value for r in rules.ip_rules],
        properties.network_rule_bypass_options == "AzureServices",
    )


def _flag(value: str | None) -> bool | None:
    return None if value is None else value.lower() == "true"


@registry.command(context_settings=CONTEXT)
@name_option
@resource_group_option
@click.option(
    "--admin-enabled",
    type=TRUE_FALSE,
    metavar="true|false",
    help="Enable the admin user (the registry's name with two passwords).",
)
@click.option(
    "--anonymous-pull-enabled",
    type=TRUE_FALSE,
    metavar="true|false",
    help="Let anyone pull without credentials.",
)
@click.option(
    "--public-network-enabled",
    type=TRUE_FALSE,
    metavar="true|false",
    help="Accept data-plane requests from the network at all (false: refuse every "
    "client but trusted services).",
)
@click.option(
    "--default-action",
    type=click.Choice(["Allow", "Deny"], case_sensitive=False),
    help="What happens to clients that no IP rule matches.",
)
@click.option(
    "--allow-trusted-services",
    type=TRUE_FALSE,
    metavar="true|false",
    help="Let trusted services bypass the network rules (networkRuleBypassOptions).",
)
@output_option
@service_command
def update(
    registry: str,
    resource_group: str | None,
    admin_enabled: str | None,
    anonymous_pull_enabled: str | None,
    public_network_enabled: str | None,
    default_action: str | None,
    allow_trusted_services: str | None,
    output: str,
) -> None:
    """Change a registry's access settings (az acr update).

    Only the settings given change. Add IP rules with `transship registry network-rule add`.

    \b
    Examples:
      Enable the admin user:
        transship registry update -n myregistry --admin-enabled true
      Refuse clients outside the IP rules:
        transship registry update -n myregistry --default-action Deny
      Allow anonymous pulls:
        transship registry update -n myregistry --anonymous-pull-enabled true
    """
    settings: dict[str, object] = {}
    if admin_enabled is not None:
        settings["adminUserEnabled"] = _flag(admin_enabled)
    if anonymous_pull_enabled is not None:
        settings["anonymousPullEnabled"] = _flag(anonymous_pull_enabled)
    if public_network_enabled is not None:
        settings["publicNetworkAccess"] = "Enabled" if _flag(public_network_enabled) else "Disabled"
    if default_action is not None:
        settings["networkRuleSet"] = {"defaultAction": default_action.capitalize()}
    if allow_trusted_services is not None:
        settings["networkRuleBypassOptions"] = (
            "AzureServices" if _flag(allow_trusted_services) else "None"
        )
    if not settings:
        raise click.UsageError("nothing to update: give at least one setting (see --help)")
    properties = RegistryProperties.model_validate(settings)
    updated = api().patch_registry(registry, properties, resource_group)
    emit(output, updated, ACCESS_COLUMNS, lambda r: [access_row(r)])


@registry.group(context_settings=CONTEXT)
def credential() -> None:
    """Show and renew the admin user's passwords (az acr credential)."""


def credential_rows(credentials: RegistryCredentials) -> list[Sequence[Any]]:
    passwords = {p.name: p.value for p in credentials.passwords}
    return [(credentials.username, passwords.get("password"), passwords.get("password2"))]


CREDENTIAL_COLUMNS = ("USERNAME", "PASSWORD", "PASSWORD2")


@credential.command(name="show", context_settings=CONTEXT)
@name_option
@resource_group_option
@output_option
@service_command
def credential_show(registry: str, resource_group: str | None, output: str) -> None:
    """Show the admin user's name and passwords (the admin user must be enabled).

    \b
    Examples:
      transship registry credential show -n myregistry
      docker login with them:
        transship registry credential show -n myregistry -o json
    """
    found = api().registry_credentials(registry, "listCredentials", None, resource_group)
    emit(output, found, CREDENTIAL_COLUMNS, credential_rows)


@credential.command(name="renew", context_settings=CONTEXT)
@name_option
@resource_group_option
@click.option(
    "--password-name",
    required=True,
    type=click.Choice(["password", "password2"]),
    help="Which of the two passwords to replace.",
)
@output_option
@service_command
def credential_renew(
    registry: str, resource_group: str | None, password_name: str, output: str
) -> None:
    """Replace one of the admin user's passwords (the other keeps working).

    \b
    Examples:
      transship registry credential renew -n myregistry --password-name password2
    """
    body = RegenerateCredentialBody.model_validate({"name": password_name})
    found = api().registry_credentials(registry, "regenerateCredential", body, resource_group)
    emit(output, found, CREDENTIAL_COLUMNS, credential_rows)


@registry.group(name="network-rule", context_settings=CONTEXT)
def network_rule() -> None:
    """Manage the IP rules of a registry's network rule set (az acr network-rule).

    Rules matter when the default action is Deny (`transship registry update
    --default-action Deny`): then only clients in a rule's range reach the data plane.
    """


RULE_COLUMNS = ("ACTION", "IP ADDRESS OR RANGE")


def canonical_range(text: str) -> str:
    """An address or CIDR range as `a.b.c.d/n` (or the IPv6 form). Raises BadParameter."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an IP address or CIDR range", param_hint="--ip-address"
        ) from None


def _rule_set(found: Registry) -> NetworkRules:
    return found.properties.network_rule_set


def _rewrite_rules(
    registry: str, resource_group: str | None, change: Callable[[list[str]], list[str]]
) -> NetworkRules:
    """Read the rule set, apply `change` to the canonical ranges, write it back (PATCH,
    keeping the default action); the new rule set."""
    management = api()
    rules = _rule_set(management.get_registry(registry, resource_group))
    current = [canonical_range(r.value) for r in rules.ip_rules]
    wanted = change(current)
    properties = RegistryProperties.model_validate(
        {
            "networkRuleSet": NetworkRuleSet.model_validate(
                {
                    "defaultAction": rules.default_action,
                    "ipRules": [IpRule(value=value) for value in wanted],
                }
            )
        }
    )
    return _rule_set(management.patch_registry(registry, properties, resource_group))


def _emit_rules(output: str, rules: NetworkRules) -> None:
    emit(
        output,
        rules,
        RULE_COLUMNS,
        lambda v: [(r.action, r.value) for r in v.ip_rules],
        empty=f"No IP rules (default action: {rules.default_action}).",
    )


ip_address_option = click.option(
    "--ip-address",
    required=True,
    metavar="IP|CIDR",
    help="An IPv4 or IPv6 address, or a CIDR range such as 10.0.0.0/24.",
)


@network_rule.command(name="add", context_settings=CONTEXT)
@name_option
@ip_address_option
@resource_group_option
@output_option
@service_command
def network_rule_add(
    registry: str, ip_address: str, resource_group: str | None, output: str
) -> None:
    """Allow an address or range to reach the registry.

    \b
    Examples:
      transship registry network-rule add -n myregistry --ip-address 203.0.113.7
      transship registry network-rule add -n myregistry --ip-address 10.0.0.0/24
    """
    value = canonical_range(ip_address)
    rules = _rewrite_rules(
        registry, resource_group, lambda current: current if value in current else [*current, value]
    )
    _emit_rules(output, rules)


@network_rule.command(name="remove", context_settings=CONTEXT)
@name_option
@ip_address_option
@resource_group_option
@output_option
@service_command
def network_rule_remove(
    registry: str, ip_address: str, resource_group: str | None, output: str
) -> None:
    """Remove an IP rule.

    \b
    Examples:
      transship registry network-rule remove -n myregistry --ip-address 10.0.0.0/24
    """
    value = canonical_range(ip_address)

    def without(current: list[str]) -> list[str]:
        if value not in current:
            raise CommandFailed(f"registry '{registry}' has no IP rule {value}")
        return [r for r in current if r != value]

    _emit_rules(output, _rewrite_rules(registry, resource_group, without))


@network_rule.command(name="list", context_settings=CONTEXT)
@name_option
@resource_group_option
@output_option
@service_command
def network_rule_list(registry: str, resource_group: str | None, output: str) -> None:
    """List a registry's IP rules and default action.

    \b
    Examples:
      transship registry network-rule list -n myregistry
      transship registry network-rule list -n myregistry -o json
    """
    _emit_rules(output, _rule_set(api().get_registry(registry, resource_group)))


# Scope maps and tokens live in their own module.
from transship.cli.commands_registry_access import scope_map, token  # noqa: E402

registry.add_command(scope_map)
registry.add_command(token)
