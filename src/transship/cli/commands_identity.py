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
from transship.cli.client import ManagementApi, is_guid, seg, unchecked
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
from transship.wire.arm import CreatedTenant, Principal, PrincipalWithSecret, Subscription
from transship.wire.bodies import (
    CredentialResetBody,
    ServicePrincipalBody,
    SubscriptionBody,
    TenantBody,
    UserBody,
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


def sp_row(sp: Principal) -> tuple[Any, ...]:
    return (sp.display_name, sp.app_id if isinstance(sp.app_id, str) else None, sp.object_id)


def user_row(user: Principal) -> tuple[Any, ...]:
    return (
        user.user_name if isinstance(user.user_name, str) else user.display_name,
        user.object_id,
    )


def _check_writable(path: Path | None) -> None:
    """Fail before anything is created when the credential file cannot be written (the
    secret would be lost)."""
    if path is None:
        return
    directory = path.expanduser().parent
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise click.BadParameter(f"cannot write into {directory}", param_hint="--credential-file")


def _save_credential(path: Path | None, data: dict[str, str | None]) -> bool:
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
    body: PrincipalWithSecret | CreatedTenant,
    columns: tuple[str, ...],
    row: tuple[Any, ...],
    secret_label: str,
    secret: str,
    saved: bool,
) -> None:
    """The server's answer; without the secret when it went to a file."""
    if output == JSON:
        answer = body.model_dump(mode="json", by_alias=True)
        emit_json(_without_secret(answer) if saved else answer)
        if not saved:
            info(SHOWN_ONCE)
        return
    emit_table(columns, [row])
    if not saved:
        click.echo(f"{secret_label}: {secret}")
        info(SHOWN_ONCE)


def _without_secret(value: object) -> object:
    """A JSON value without its `password` members, at any depth."""
    if isinstance(value, dict):
        return {k: _without_secret(v) for k, v in value.items() if k != "password"}
    return value


def principal_path(kind: str, ident: str) -> str:
    return f"/{kind}/{seg(ident.strip())}"


_KINDS = {"servicePrincipals": ("ServicePrincipal", "service principal"), "users": ("User", "user")}


def require_kind(management: ManagementApi, kind: str, ident: str) -> Principal:
    """The principal `ident`, which must be of `kind` (servicePrincipals or users): the
    directory finds any principal by any of its ids. Raises CommandFailed."""
    found = management.directory("GET", principal_path(kind, ident), Principal)
    wanted, noun = _KINDS[kind]
    if found.kind != wanted:
        raise CommandFailed(f"'{ident}' is not a {noun} but a {found.kind}")
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
    body = unchecked(ServicePrincipalBody, display_name=display_name, years=years)
    created = api().directory("POST", "/servicePrincipals", PrincipalWithSecret, body)
    saved = _save_credential(credential_file, _credential_of(created))
    _emit_secret(
        output,
        created,
        (*SP_COLUMNS, "TENANT"),
        (*sp_row(created), created.tenant_id),
        "Client secret",
        created.password,
        saved,
    )


def _credential_of(principal: PrincipalWithSecret) -> dict[str, str | None]:
    """A service principal's credential in the format of the server's owner-credential.json."""
    return {
        "tenantId": principal.tenant_id,
        "clientId": principal.app_id,
        "clientSecret": principal.password,
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
    values = api().directory_values("/servicePrincipals", Principal)
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
                    f"{c.hint}… until {short_time(c.end_date_time)}"
                    for c in (
                        v.password_credentials if isinstance(v.password_credentials, list) else []
                    )
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
    management.directory_delete(principal_path("servicePrincipals", ident))
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
        PrincipalWithSecret,
        unchecked(CredentialResetBody, append=append, years=years),
    )
    saved = _save_credential(credential_file, _credential_of(found))
    _emit_secret(
        output,
        found,
        (*SP_COLUMNS, "TENANT"),
        (*sp_row(found), found.tenant_id),
        "Client secret",
        found.password,
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
    body = unchecked(UserBody, user_name=user_name, password=secret)
    created = api().directory("POST", "/users", Principal, body)
    emit(output, created, (*USER_COLUMNS, "TENANT"), lambda v: [(*user_row(v), v.tenant_id)])


@user.command(name="list", context_settings=CONTEXT)
@output_option
@service_command
def user_list(output: str) -> None:
    """List the users of your tenant.

    \b
    Examples:
      transship identity user list
    """
    values = api().directory_values("/users", Principal)
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
    management.directory_delete(principal_path("users", ident))
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
    body = unchecked(
        TenantBody,
        display_name=display_name,
        subscription_id=None
        if subscription_id is None
        else _guid_option(subscription_id, "--subscription-id"),
    )
    _check_writable(credential_file)
    created = api().directory("PUT", f"/tenants/{seg(tenant_guid)}", CreatedTenant, body)
    owner = created.owner
    saved = _save_credential(
        credential_file,
        {
            "tenantId": created.tenant_id,
            "subscriptionId": created.subscription_id,
            "resourceGroup": created.resource_group,
            "clientId": owner.app_id,
            "clientSecret": owner.password,
        },
    )
    _emit_secret(
        output,
        created,
        ("TENANT ID", "DISPLAY NAME", "SUBSCRIPTION ID", "OWNER APP ID"),
        (created.tenant_id, created.display_name, created.subscription_id, owner.app_id),
        "Owner client secret",
        owner.password,
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
    body = unchecked(SubscriptionBody, display_name=display_name, tenant_id=tenant_id or None)
    created = api().directory("PUT", f"/subscriptions/{seg(subscription_guid)}", Subscription, body)
    emit(
        output,
        created,
        ("SUBSCRIPTION ID", "DISPLAY NAME", "TENANT ID", "STATE"),
        lambda v: [(v.subscription_id, v.display_name, v.tenant_id, v.state)],
    )
