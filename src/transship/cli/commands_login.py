"""`transship login` and `transship logout`."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from transship.cli import profile as profiles
from transship.cli.client import AnswerMismatch, ApiError, ManagementApi, info_of
from transship.cli.common import CONTEXT, service_command
from transship.cli.output import JSON, CommandFailed, emit_json, info, output_option, warn
from transship.wire.arm import ServiceInfo

# Token-endpoint and management errors that mean "this credential is not valid here".
_REFUSED = {"invalid_client", "invalid_grant", "unauthorized_client", "AuthenticationFailed"}


@click.command(context_settings=CONTEXT)
@click.option(
    "--server",
    "-s",
    required=True,
    metavar="URL",
    envvar=profiles.ENV_SERVER,
    help="URL of the Transship server, e.g. https://registry.example.com or localhost:5000 "
    "(without a scheme: http:// for loopback hosts, https:// otherwise). "
    f"Default: ${profiles.ENV_SERVER}.",
)
@click.option(
    "--service-principal",
    is_flag=True,
    help="Log in as a service principal: --username is its client (application) id and the "
    "password its client secret.",
)
@click.option(
    "--username",
    "-u",
    metavar="NAME",
    help="A user's name, or with --service-principal a client (application) id.",
)
@click.option(
    "--password",
    "-p",
    metavar="PASSWORD",
    help="The user's password or the client secret (prompted for when not given). Prefer "
    "--password-stdin or --credential-file: a password on the command line is visible to "
    "other users of the machine.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.option(
    "--tenant",
    "-t",
    metavar="TENANT_ID",
    help="The tenant (directory) id. Needed for a user; a service principal's is looked up "
    "when not given.",
)
@click.option(
    "--credential-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="PATH",
    help="A service principal's credential as JSON: the server writes the owner's at first "
    f'start as <data-dir>/{profiles.OWNER_CREDENTIAL_FILE} ({{"tenantId", "clientId", '
    '"clientSecret", …}); the output of `transship identity sp create -o json` works too.',
)
@output_option
@service_command
def login(
    server: str,
    service_principal: bool,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    tenant: str | None,
    credential_file: Path | None,
    output: str,
) -> None:
    """Log in to a Transship server and save the login for the other commands.

    Log in as a service principal (a client id and secret, for example the owner credential
    the server writes at first start) or as a user (a name and password in a tenant). The
    credential is checked against the server's token endpoint
    (POST /{tenant}/oauth2/v2.0/token) before anything is saved; the other commands trade it
    for bearer tokens the same way (kept in memory, renewed when they expire).

    The profile — server URL, credential, tenant and the service's subscription, resource
    group, location and login-server suffix — is written to
    $XDG_CONFIG_HOME/transship/profile.json (default ~/.config/transship), readable by you
    only. TRANSSHIP_SERVER, TRANSSHIP_USERNAME, TRANSSHIP_PASSWORD, TRANSSHIP_TENANT and
    TRANSSHIP_USER_TYPE (servicePrincipal or user) override it.

    \b
    Examples:
      Log in with the owner credential the server wrote at first start:
        transship login --server localhost:5000 \\
          --credential-file /srv/transship/owner-credential.json
      Log in as a service principal, the secret on stdin:
        echo "$SECRET" | transship login --server https://registry.example.com \\
          --service-principal -u $APP_ID --tenant $TENANT_ID --password-stdin
      Log in as a user, prompted for the password:
        transship login --server https://registry.example.com -u alice --tenant $TENANT_ID
    """
    try:
        server = profiles.normalize_server(server)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server") from None
    sources = [
        s
        for s, given in (
            ("--password", password is not None),
            ("--password-stdin", password_stdin),
            ("--credential-file", credential_file is not None),
        )
        if given
    ]
    if len(sources) > 1:
        raise click.UsageError(f"use only one of {', '.join(sources)}")

    kind = profiles.SERVICE_PRINCIPAL
    if credential_file is not None:
        if username is not None:
            raise click.UsageError("--credential-file names the client id: drop --username")
        credential = profiles.read_credential_file(credential_file)
        if tenant and credential.tenant and tenant.lower() != credential.tenant.lower():
            raise click.UsageError(
                f"--tenant {tenant} differs from the tenant {credential.tenant} "
                f"in {credential_file}"
            )
        username, password = credential.client_id, credential.client_secret
        tenant = tenant or credential.tenant
    else:
        if not username:
            raise click.UsageError(
                "give --credential-file, or --username with --service-principal (a client id) "
                "or with --tenant (a user)"
            )
        if not service_principal:
            kind = profiles.USER
            if not tenant:
                raise click.UsageError(
                    "a user's login needs --tenant "
                    "(for a service principal add --service-principal)"
                )
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise click.UsageError("--password-stdin: stdin held no password")
        elif password is None:
            prompt = "Client secret" if kind == profiles.SERVICE_PRINCIPAL else "Password"
            password = click.prompt(prompt, hide_input=True, err=True)
    assert username is not None and password is not None

    parts = urlsplit(server)
    host = parts.hostname or ""
    if parts.scheme == "http" and not (host in ("localhost", "::1") or host.startswith("127.")):
        warn(f"{server} is plain HTTP: the credential crosses the network unencrypted")

    candidate = profiles.Profile(server, username, password, kind, tenant or None)
    data = _verify(candidate)
    saved = profiles.Profile(
        server, username, password, kind, data.tenant_id or candidate.tenant, info_of(data)
    )
    path = profiles.save(saved)
    if output == JSON:
        emit_json({**saved.public(), "caller": data.caller, "profile": str(path)})
    else:
        who = "service principal" if kind == profiles.SERVICE_PRINCIPAL else "user"
        name = data.caller.name
        shown = f"{name} ({username})" if name and name != username else username
        click.echo(f"Logged in to {server} as {who} {shown}, tenant {saved.tenant}.")
        click.echo(
            f"Subscription {saved.info.get('subscriptionId')}, resource group "
            f"{saved.info.get('resourceGroup')}, location {saved.info.get('location')}."
        )
        info(f"Profile saved to {path}")


def _verify(candidate: profiles.Profile) -> ServiceInfo:
    """A token for the credential, then GET /transship/v1/info with it."""
    management = ManagementApi(candidate)
    try:
        data = management.fetch_info()
    except AnswerMismatch as exc:
        raise not_transship(candidate.server, str(exc)) from None
    except ApiError as exc:
        # A 5xx page (a proxy whose Transship is down) says nothing about what is behind it.
        if not exc.enveloped and exc.status < 500:
            why = f"it answered {exc.status} {exc.message}"
            raise not_transship(candidate.server, why) from None
        if exc.code == "invalid_tenant" or (
            exc.code == "invalid_request" and "AADSTS90002" in exc.message
        ):
            raise CommandFailed(
                f"the server has no tenant {candidate.tenant!r}", code=exc.code
            ) from None
        if exc.status == 401 or exc.code in _REFUSED:
            raise CommandFailed(
                f"the server refused the credential of {candidate.username!r}: {exc.message}",
                code=exc.code,
            ) from None
        raise
    coordinates = {
        "subscriptionId": data.subscription_id,
        "resourceGroup": data.resource_group,
        "location": data.location,
    }
    missing = [key for key, value in coordinates.items() if not value]
    if missing:
        raise CommandFailed(
            f"{candidate.server} does not look like a Transship server, or gives this login no "
            f"subscription: /transship/v1/info lacks {', '.join(missing)}"
        )
    return data


def not_transship(server: str, why: str) -> CommandFailed:
    """The failure of a login whose server does not speak Transship's API (another registry,
    a web server, a proxy's page): said plainly, since its own errors would mislead."""
    if len(why) > 200:
        why = why[:200] + "…"
    return CommandFailed(
        f"{server} is not a Transship server (or not its base URL): its token endpoint and "
        f"/transship/v1/info do not answer as Transship's do ({why}). Give the URL that "
        "`transship serve` listens on, e.g. http://localhost:5000.",
        code="NotTransship",
    )


@click.command(context_settings=CONTEXT)
@output_option
def logout(output: str) -> None:
    """Forget the saved login (delete the profile file).

    \b
    Examples:
      transship logout
    """
    path = profiles.profile_path()
    removed = profiles.remove(path)
    if output == JSON:
        emit_json({"loggedOut": removed, "profile": str(path)})
    elif removed:
        click.echo(f"Logged out (removed {path}).")
    else:
        click.echo("Not logged in.")
