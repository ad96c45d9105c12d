"""`transship registry create|list|show|delete` (az acr create/list/show/delete)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import click

from transship.cli.common import CONTEXT, api, resource_group_option, service_command
from transship.cli.output import JSON, emit, emit_json, output_option, short_time

REGISTRY_NAME = re.compile(r"[A-Za-z0-9]{5,50}")
COLUMNS = ("NAME", "RESOURCE GROUP", "LOCATION", "SKU", "LOGIN SERVER", "CREATION DATE")


def resource_group_of(resource_id: Any) -> str:
    parts = str(resource_id or "").split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[index + 1]
    return ""


def registry_row(registry: dict[str, Any]) -> Sequence[Any]:
    properties = registry.get("properties") or {}
    sku = registry.get("sku") or {}
    return (
        registry.get("name"),
        resource_group_of(registry.get("id")),
        registry.get("location"),
        sku.get("name"),
        properties.get("loginServer"),
        short_time(properties.get("creationDate")),
    )


def registry_rows(registries: Iterable[dict[str, Any]]) -> list[Sequence[Any]]:
    return [registry_row(r) for r in registries]


@click.group(context_settings=CONTEXT)
def registry() -> None:
    """Manage the registries of the service (az acr create/list/show/delete).

    Each registry is a namespace of repositories with its own login server (host name);
    requests reach a registry by their Host header.
    """


@registry.command(context_settings=CONTEXT)
@click.argument("name")
@resource_group_option
@click.option("--location", "-l", metavar="LOCATION", help="Location (default: the service's).")
@click.option(
    "--sku",
    type=click.Choice(["Basic", "Standard", "Premium"], case_sensitive=False),
    default="Premium",
    show_default=True,
    help="Service tier (recorded for Azure compatibility; every registry has every feature).",
)
@click.option(
    "--login-server",
    metavar="HOST[:PORT]",
    help="Host name clients use for this registry (default: NAME + the service's login-server suffix).",
)
@output_option
@service_command
def create(
    name: str,
    resource_group: str | None,
    location: str | None,
    sku: str,
    login_server: str | None,
    output: str,
) -> None:
    """Create a registry (or update an existing one's settings).

    NAME is 5-50 letters and digits, as in Azure Container Registry.

    \b
    Examples:
      Create a registry:
        transship registry create myregistry
      Create a registry with its own host name:
        transship registry create myregistry --login-server myregistry.example.com
    """
    if not REGISTRY_NAME.fullmatch(name):
        raise click.BadParameter(
            "a registry name is 5-50 alphanumeric characters", param_hint="NAME"
        )
    body: dict[str, Any] = {"sku": {"name": sku.capitalize()}}
    if location:
        body["location"] = location
    if login_server:
        body["properties"] = {"loginServer": login_server}
    created = api().put_registry(name, body, resource_group)
    emit(output, created, COLUMNS, lambda r: [registry_row(r)])


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
@click.argument("name")
@resource_group_option
@output_option
@service_command
def show(name: str, resource_group: str | None, output: str) -> None:
    """Show a registry: its id, login server, SKU and settings.

    \b
    Examples:
      transship registry show myregistry
      transship registry show myregistry -o json
    """
    found = api().get_registry(name, resource_group)
    emit(output, found, COLUMNS, lambda r: [registry_row(r)])


@registry.command(context_settings=CONTEXT)
@click.argument("name")
@resource_group_option
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@output_option
@service_command
def delete(name: str, resource_group: str | None, yes: bool, output: str) -> None:
    """Delete a registry and everything in it.

    \b
    Examples:
      transship registry delete myregistry
      transship registry delete myregistry --yes
    """
    if not yes:
        click.confirm(
            f"Delete registry '{name}' and all its repositories?", abort=True, err=True
        )
    deleted = api().delete_registry(name, resource_group)
    if output == JSON:
        emit_json({"name": name, "deleted": deleted})
    elif deleted:
        click.echo(f"Deleted registry '{name}'.")
    else:
        click.echo(f"Registry '{name}' did not exist.")
