"""`transship group create|list|show|delete` (az group …): the resource groups of the
subscription, which hold registries and are scopes for role assignments."""

from __future__ import annotations

from typing import Any

import click

from transship.cli.client import seg
from transship.cli.common import CONTEXT, api, confirm, service_command, yes_option
from transship.cli.output import JSON, emit, emit_json, output_option
from transship.wire.arm import ResourceGroup
from transship.wire.bodies import ResourceGroupBody

COLUMNS = ("NAME", "LOCATION", "STATE")

group_name_option = click.option(
    "--name",
    "-n",
    "--resource-group",
    "-g",
    "name",
    required=True,
    metavar="NAME",
    help="Name of the resource group.",
)


def group_row(group: ResourceGroup) -> tuple[Any, ...]:
    return (group.name, group.location, group.properties.provisioning_state)


@click.group(context_settings=CONTEXT)
def group() -> None:
    """Manage the resource groups of your subscription (az group)."""


@group.command(context_settings=CONTEXT)
@group_name_option
@click.option("--location", "-l", metavar="LOCATION", help="Location (default: the service's).")
@output_option
@service_command
def create(name: str, location: str | None, output: str) -> None:
    """Create a resource group (or show the existing one of that name).

    \b
    Examples:
      transship group create --name team-a
      transship group create -n team-a --location west -o json
    """
    management = api()
    body = ResourceGroupBody(location=location or management.location)
    created = management.put(
        f"{management.subscription_scope()}/resourcegroups/{seg(name)}", body, ResourceGroup
    )
    emit(output, created, COLUMNS, lambda g: [group_row(g)])


@group.command(name="list", context_settings=CONTEXT)
@output_option
@service_command
def list_groups(output: str) -> None:
    """List the resource groups you can see.

    \b
    Examples:
      transship group list
      transship group list -o json
    """
    management = api()
    groups = management.values(f"{management.subscription_scope()}/resourcegroups", ResourceGroup)
    emit(output, groups, COLUMNS, lambda v: [group_row(g) for g in v], empty="No resource groups.")


@group.command(context_settings=CONTEXT)
@group_name_option
@output_option
@service_command
def show(name: str, output: str) -> None:
    """Show a resource group.

    \b
    Examples:
      transship group show --name team-a
    """
    management = api()
    found = management.get(
        f"{management.subscription_scope()}/resourcegroups/{seg(name)}", ResourceGroup
    )
    emit(output, found, COLUMNS, lambda g: [group_row(g)])


@group.command(context_settings=CONTEXT)
@group_name_option
@yes_option
@output_option
@service_command
def delete(name: str, yes: bool, output: str) -> None:
    """Delete an empty resource group (delete its registries first).

    \b
    Examples:
      transship group delete --name team-a
      transship group delete -n team-a --yes
    """
    confirm(f"Delete resource group '{name}'?", yes)
    management = api()
    deleted = management.delete(f"{management.subscription_scope()}/resourcegroups/{seg(name)}")
    if output == JSON:
        emit_json({"name": name, "deleted": deleted})
    elif deleted:
        click.echo(f"Deleted resource group '{name}'.")
    else:
        click.echo(f"Resource group '{name}' did not exist.")
