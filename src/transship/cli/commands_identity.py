"""`transship identity …`: the service's directory (az ad sp / az ad user, and the tenants
and subscriptions Azure has elsewhere).

It talks to the directory API under /transship/v1, which stands in for Microsoft Graph:
service principals (an application id and client secrets), users (a name and password), and
— for administrators of the root tenant — tenants and subscriptions. Secrets are in the
server's answer once; `--credential-file` writes them to a file only you can read instead of
printing them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import click

from transship.cli import profile as profiles
from transship.cli.client import ManagementApi, is_guid, seg
from transship.cli.common import CONTEXT, api, confirm, read_secret, service_command, yes_option
from transship.cli.output import (
    JSON,
    CommandFailed,
    emit,
    emit_json,
    emit_table,
    info,
    output_option,
    short_time,
    warn,
)

SHOWN_ONCE = "The secret is shown only this once: store it safely now."

SP_COLUMNS = ("DISPLAY NAME", "APP ID", "OBJECT ID")
USER_COLUMNS = ("USER NAME", "OBJECT ID")

credential_file_option = click.option(
    "--credential-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="PATH",
    help="Write the credential to this file (JSON, mode 0600) for `transship login "
    "--credential-file` instead of printing the secret.",
)
years_option = click.option(
    "--years",
    type=click.IntRange(1, 10),
    default=1,
    show_default=True,
    help="How long the client secret stays valid, in years.",
)
principal_id_option = click.option(
    "--id",
    "ident",
    required=True,
    metavar="ID",
    help="The service principal's application (client) id or object id.",
)


def sp_row(sp: dict[str, Any]) -> tuple[Any, ...]:
    return (sp.get("displayName"), sp.get("appId"), sp.get("objectId"))


def user_row(user: dict[str, Any]) -> tuple[Any, ...]:
    return (user.get("userName") or user.get("displayName"), user.get("objectId"))


def _check_writable(path: Path | None) -> None:
    """Fail before anything is created when the credential file cannot be written (the
    secret would be lost)."""
    if path is None:
        return
    directory = path.expanduser().parent
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise click.BadParameter(f"cannot write into {directory}", param_hint="--credential-file")


def _save_credential(path: Path | None, data: dict[str, Any]) -> bool:
    """Write the credential file; False (after a warning) when that failed, so the caller
    prints the secret rather than lose it."""
    if path is None:
        return False
    try:
        written = profiles.write_private(path, data)
    except OSError as exc:
        warn(f"cannot write {path}: {exc.strerror or exc}; printing the secret instead")
        return False
    info(
        f"Credential written to {written} (log in with: transship login --server URL "
        f"--credential-file {written})"
    )
    return True


def _emit_secret(
    output: str,
    body: dict[str, Any],
    columns: tuple[str, ...],
    row: tuple[Any, ...],
    secret_label: str,
    secret: Any,
    saved: bool,
) -> None:
    """The server's answer; without the secret when it went to a file."""
    if saved:
        body = _without_secret(body)
    if output == JSON:
        emit_json(body)
        if not saved:
            info(SHOWN_ONCE)
        return
    emit_table(columns, [row])
    if not saved:
        click.echo(f"{secret_label}: {secret}")
        info(SHOWN_ONCE)


def _without_secret(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k != "password"}
    for key, value in out.items():
        if isinstance(value, dict):
            out[key] = _without_secret(value)
    return out


def principal_path(kind: str, ident: str) -> str:
    return f"/{kind}/{seg(ident.strip())}"


_KINDS = {"servicePrincipals": ("ServicePrincipal", "service principal"), "users": ("User", "user")}


def require_kind(management: ManagementApi, kind: str, ident: str) -> dict[str, Any]:
    """The principal `ident`, which must be of `kind` (servicePrincipals or users): the
    directory finds any principal by any of its ids. Raises CommandFailed."""
    found = management.directory("GET", principal_path(kind, ident))
    wanted, noun = _KINDS[kind]
    if found.get("kind") != wanted:
        raise CommandFailed(f"'{ident}' is not a {noun} but a {found.get('kind') or 'principal'}")
    return found


@click.group(context_settings=CONTEXT)
def identity() -> None:
    """Manage the directory: service principals, users, tenants and subscriptions.

    These stand in for Microsoft Entra ID (az ad sp, az ad user). Give principals roles with
    `transship role assignment create`.
    """


# -- service principals ------------------------------------------------------------------------
@identity.group(context_settings=CONTEXT)
def sp() -> None:
    """Manage service principals: applications that log in with a client id and secret."""


@sp.command(name="create", context_settings=CONTEXT)
@click.option(
    "--display-name",
    "--name",
    "-n",
    "display_name",
    required=True,
    metavar="NAME",
    help="Display name (unique in the tenant).",
)
@years_option
@credential_file_option
@output_option
@service_command
def sp_create(display_name: str, years: int, credential_file: Path | None, output: str) -> None:
    """Create a service principal with a client secret (az ad sp create-for-rbac).

    The new principal has no roles: give it some with `transship role assignment create`.
    The secret is printed once (or written to --credential-file).

    \b
    Examples:
      Create one and save its credential for `transship login`:
        transship identity sp create --display-name ci-pipeline --credential-file ci.json
      Create one whose secret lasts two years, printed as JSON:
        transship identity sp create -n ci-pipeline --years 2 -o json
    """
    _check_writable(credential_file)
    created = api().directory(
        "POST", "/servicePrincipals", {"displayName": display_name, "years": years}
    )
    saved = _save_credential(credential_file, _credential_of(created))
    _emit_secret(
        output,
        created,
        (*SP_COLUMNS, "TENANT"),
        (*sp_row(created), created.get("tenantId")),
        "Client secret",
        created.get("password"),
        saved,
    )


def _credential_of(principal: dict[str, Any]) -> dict[str, Any]:
    """A service principal's credential in the format of the server's owner-credential.json."""
    return {
        "tenantId": principal.get("tenantId"),
        "clientId": principal.get("appId"),
        "clientSecret": principal.get("password"),
    }


@sp.command(name="list", context_settings=CONTEXT)
@output_option
@service_command
def sp_list(output: str) -> None:
    """List the service principals of your tenant.

    \b
    Examples:
      transship identity sp list
      transship identity sp list -o json
    """
    values = api().directory_values("/servicePrincipals")
    emit(
        output, values, SP_COLUMNS, lambda v: [sp_row(x) for x in v], empty="No service principals."
    )


@sp.command(name="show", context_settings=CONTEXT)
@principal_id_option
@output_option
@service_command
def sp_show(ident: str, output: str) -> None:
    """Show a service principal and its client secrets' hints and expiry.

    \b
    Examples:
      transship identity sp show --id $APP_ID
    """
    found = require_kind(api(), "servicePrincipals", ident)
    emit(
        output,
        found,
        (*SP_COLUMNS, "SECRETS"),
        lambda v: [
            (
                *sp_row(v),
                [
                    f"{c.get('hint')}… until {short_time(c.get('endDateTime'))}"
                    for c in v.get("passwordCredentials") or []
                    if isinstance(c, dict)
                ],
            )
        ],
    )


@sp.command(name="delete", context_settings=CONTEXT)
@principal_id_option
@yes_option
@output_option
@service_command
def sp_delete(ident: str, yes: bool, output: str) -> None:
    """Delete a service principal, its secrets and its role assignments.

    \b
    Examples:
      transship identity sp delete --id $APP_ID
      transship identity sp delete --id $APP_ID --yes
    """
    confirm(f"Delete service principal '{ident}' and its role assignments?", yes)
    management = api()
    require_kind(management, "servicePrincipals", ident)
    management.directory("DELETE", principal_path("servicePrincipals", ident))
    if output == JSON:
        emit_json({"id": ident, "deleted": True})
    else:
        click.echo(f"Deleted service principal '{ident}'.")


@sp.group(context_settings=CONTEXT)
def credential() -> None:
    """Manage a service principal's client secrets."""


@credential.command(name="reset", context_settings=CONTEXT)
@principal_id_option
@click.option(
    "--append", is_flag=True, help="Keep the existing secrets valid (default: revoke them)."
)
@years_option
@credential_file_option
@output_option
@service_command
def sp_credential_reset(
    ident: str, append: bool, years: int, credential_file: Path | None, output: str
) -> None:
    """Issue a new client secret for a service principal (az ad sp credential reset).

    Without --append the old secrets stop working at once; a login that used one must log
    in again with the new secret.

    \b
    Examples:
      Replace the secret, saving the new credential:
        transship identity sp credential reset --id $APP_ID --credential-file ci.json
      Add a second secret for a rotation:
        transship identity sp credential reset --id $APP_ID --append -o json
    """
    _check_writable(credential_file)
    found = api().directory(
        "POST",
        f"{principal_path('servicePrincipals', ident)}/credentials/reset",
        {"append": append, "years": years},
    )
    saved = _save_credential(credential_file, _credential_of(found))
    _emit_secret(
        output,
        found,
        (*SP_COLUMNS, "TENANT"),
        (*sp_row(found), found.get("tenantId")),
        "Client secret",
        found.get("password"),
        saved,
    )


# -- users -------------------------------------------------------------------------------------
@identity.group(context_settings=CONTEXT)
def user() -> None:
    """Manage users: people who log in with a name and password."""


@user.command(name="create", context_settings=CONTEXT)
@click.option(
    "--user-name",
    "--name",
    "-n",
    "user_name",
    required=True,
    metavar="NAME",
    help="User name: letters, digits, '.', '_', '@' or '-'.",
)
@click.option(
    "--password",
    "-p",
    metavar="PASSWORD",
    help="The password, at least 12 characters (prompted for when not given).",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@output_option
@service_command
def user_create(user_name: str, password: str | None, password_stdin: bool, output: str) -> None:
    """Create a user in your tenant (az ad user create).

    The user logs in with `transship login -u NAME --tenant TENANT_ID` and has no roles
    until you assign some.

    \b
    Examples:
      Create a user, prompted for the password:
        transship identity user create --user-name alice
      From a script:
        echo "$PASSWORD" | transship identity user create -n alice --password-stdin -o json
    """
    secret = read_secret(password, password_stdin, "Password", twice=True)
    created = api().directory("POST", "/users", {"userName": user_name, "password": secret})
    emit(output, created, (*USER_COLUMNS, "TENANT"), lambda v: [(*user_row(v), v.get("tenantId"))])


@user.command(name="list", context_settings=CONTEXT)
@output_option
@service_command
def user_list(output: str) -> None:
    """List the users of your tenant.

    \b
    Examples:
      transship identity user list
    """
    values = api().directory_values("/users")
    emit(output, values, USER_COLUMNS, lambda v: [user_row(x) for x in v], empty="No users.")


@user.command(name="delete", context_settings=CONTEXT)
@click.option("--id", "ident", required=True, metavar="ID", help="The user's name or object id.")
@yes_option
@output_option
@service_command
def user_delete(ident: str, yes: bool, output: str) -> None:
    """Delete a user and the user's role assignments.

    \b
    Examples:
      transship identity user delete --id alice --yes
    """
    confirm(f"Delete user '{ident}' and the user's role assignments?", yes)
    management = api()
    require_kind(management, "users", ident)
    management.directory("DELETE", principal_path("users", ident))
    if output == JSON:
        emit_json({"id": ident, "deleted": True})
    else:
        click.echo(f"Deleted user '{ident}'.")


# -- tenants and subscriptions -----------------------------------------------------------------
def _guid_option(value: str | None, flag: str) -> str:
    if value is None:
        return str(uuid.uuid4())
    if not is_guid(value):
        raise click.BadParameter(f"{value!r} is not a GUID", param_hint=flag)
    return value.lower()


@identity.group(context_settings=CONTEXT)
def tenant() -> None:
    """Create tenants: separate directories with their own principals and subscriptions."""


@tenant.command(name="create", context_settings=CONTEXT)
@click.option(
    "--display-name",
    "--name",
    "-n",
    "display_name",
    required=True,
    metavar="NAME",
    help="Display name of the tenant.",
)
@click.option("--tenant-id", metavar="GUID", help="The new tenant's id (default: a new GUID).")
@click.option(
    "--subscription-id",
    metavar="GUID",
    help="Id of the tenant's first subscription (default: a new GUID).",
)
@credential_file_option
@output_option
@service_command
def tenant_create(
    display_name: str,
    tenant_id: str | None,
    subscription_id: str | None,
    credential_file: Path | None,
    output: str,
) -> None:
    """Create a tenant with a subscription, a `default` resource group and an owner.

    Only administrators of the root tenant (the one the server created at first start) may.
    The owner is a service principal holding Owner over the new tenant; its secret is
    printed once (or written to --credential-file, in the format of the server's
    owner-credential.json).

    \b
    Examples:
      Create a tenant for a team and save its owner's credential:
        transship identity tenant create --display-name "Team A" --credential-file team-a-owner.json
      Log in as that owner:
        transship login --server localhost:5000 --credential-file team-a-owner.json
    """
    tenant_guid = _guid_option(tenant_id, "--tenant-id")
    body: dict[str, Any] = {"displayName": display_name}
    if subscription_id is not None:
        body["subscriptionId"] = _guid_option(subscription_id, "--subscription-id")
    _check_writable(credential_file)
    created = api().directory("PUT", f"/tenants/{seg(tenant_guid)}", body)
    owner = created.get("owner") if isinstance(created.get("owner"), dict) else {}
    assert isinstance(owner, dict)
    saved = _save_credential(
        credential_file,
        {
            "tenantId": created.get("tenantId"),
            "subscriptionId": created.get("subscriptionId"),
            "resourceGroup": created.get("resourceGroup"),
            "clientId": owner.get("appId"),
            "clientSecret": owner.get("password"),
        },
    )
    _emit_secret(
        output,
        created,
        ("TENANT ID", "DISPLAY NAME", "SUBSCRIPTION ID", "OWNER APP ID"),
        (
            created.get("tenantId"),
            created.get("displayName"),
            created.get("subscriptionId"),
            owner.get("appId"),
        ),
        "Owner client secret",
        owner.get("password"),
        saved,
    )


@identity.group(context_settings=CONTEXT)
def subscription() -> None:
    """Create subscriptions: containers of resource groups and registries."""


@subscription.command(name="create", context_settings=CONTEXT)
@click.option(
    "--display-name",
    "--name",
    "-n",
    "display_name",
    required=True,
    metavar="NAME",
    help="Display name of the subscription.",
)
@click.option(
    "--subscription-id", metavar="GUID", help="The new subscription's id (default: a new GUID)."
)
@click.option(
    "--tenant",
    "tenant_id",
    metavar="TENANT_ID",
    help="The tenant that owns it (default: yours; another tenant needs a root "
    "tenant administrator).",
)
@output_option
@service_command
def subscription_create(
    display_name: str, subscription_id: str | None, tenant_id: str | None, output: str
) -> None:
    """Create a subscription (with a `default` resource group).

    Commands use the subscription your login saw first; a new subscription is reached with
    ARM ids or az.

    \b
    Examples:
      transship identity subscription create --display-name "Staging"
      transship identity subscription create -n "Team A prod" --tenant $TENANT_ID -o json
    """
    subscription_guid = _guid_option(subscription_id, "--subscription-id")
    body: dict[str, Any] = {"displayName": display_name}
    if tenant_id:
        body["tenantId"] = tenant_id
    created = api().directory("PUT", f"/subscriptions/{seg(subscription_guid)}", body)
    emit(
        output,
        created,
        ("SUBSCRIPTION ID", "DISPLAY NAME", "TENANT ID", "STATE"),
        lambda v: [
            (v.get("subscriptionId"), v.get("displayName"), v.get("tenantId"), v.get("state"))
        ],
    )
