"""`transship login` and `transship logout`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from transship.cli import profile as profiles
from transship.cli.client import ApiError, ManagementApi
from transship.cli.common import CONTEXT, service_command
from transship.cli.output import JSON, CommandFailed, emit_json, info, output_option, warn


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
    "--username",
    "-u",
    metavar="USER",
    help="User name (default: the credential file's, else 'admin').",
)
@click.option(
    "--password",
    "-p",
    metavar="PASSWORD",
    help="Password. Prefer --password-stdin or --credential-file: a password on the command "
    "line is visible to other users of the machine.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option(
    "--credential-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="PATH",
    help='A JSON file {"username": …, "password": …}: the server writes one at first start '
    "as <data-dir>/admin-credential.json.",
)
@output_option
@service_command
def login(
    server: str,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    credential_file: Path | None,
    output: str,
) -> None:
    """Log in to a Transship server and save the login for the other commands.

    The credential is checked against the server (GET /transship/v1/info) before anything is
    saved. The profile — server URL, credential and the service's subscription, resource
    group, location and login-server suffix — is written to
    $XDG_CONFIG_HOME/transship/profile.json (default ~/.config/transship), readable by you
    only. TRANSSHIP_SERVER, TRANSSHIP_USERNAME and TRANSSHIP_PASSWORD override it.

    \b
    Examples:
      Log in with the admin credential the server wrote at first start:
        transship login --server localhost:5000 --credential-file /srv/transship/admin-credential.json
      Log in from a script, the password on stdin:
        echo "$PASSWORD" | transship login --server https://registry.example.com --password-stdin
      Log in, prompted for the password:
        transship login --server https://registry.example.com --username admin
    """
    try:
        server = profiles.normalize_server(server)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server") from None
    sources = [s for s, given in (("--password", password is not None),
                                  ("--password-stdin", password_stdin),
                                  ("--credential-file", credential_file is not None)) if given]
    if len(sources) > 1:
        raise click.UsageError(f"use only one of {', '.join(sources)}")
    if credential_file is not None:
        file_username, password = profiles.read_credential_file(credential_file)
        username = username or file_username
    elif password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: stdin held no password")
    elif password is None:
        password = click.prompt("Password", hide_input=True, err=True)
    username = username or profiles.DEFAULT_USERNAME
    assert password is not None

    parts = urlsplit(server)
    host = parts.hostname or ""
    if parts.scheme == "http" and not (host in ("localhost", "::1") or host.startswith("127.")):
        warn(f"{server} is plain HTTP: the password crosses the network unencrypted")

    data = _verify(profiles.Profile(server, username, password))
    saved = profiles.Profile(
        server,
        username,
        password,
        {k: str(data[k]) for k in profiles.INFO_KEYS if isinstance(data.get(k), str | int)},
    )
    path = profiles.save(saved)
    if output == JSON:
        emit_json({**saved.public(), "profile": str(path)})
    else:
        click.echo(f"Logged in to {server} as {username}.")
        click.echo(
            f"Subscription {saved.info.get('subscriptionId')}, resource group "
            f"{saved.info.get('resourceGroup')}, location {saved.info.get('location')}."
        )
        info(f"Profile saved to {path}")


def _verify(candidate: profiles.Profile) -> dict[str, Any]:
    """GET /transship/v1/info with the credential, then one call that always demands it
    (listing the subscription's registries), in case the info endpoint is public."""
    try:
        data = ManagementApi(candidate).fetch_info()
        missing = [k for k in ("subscriptionId", "resourceGroup", "location") if not data.get(k)]
        if missing:
            raise CommandFailed(
                f"{candidate.server} does not look like a Transship server: "
                f"/transship/v1/info lacks {', '.join(missing)}"
            )
        candidate.info = {k: str(data[k]) for k in ("subscriptionId", "resourceGroup", "location")}
        ManagementApi(candidate).list_registries()
    except ApiError as exc:
        if exc.status == 401:
            raise CommandFailed(
                f"the server refused the credential of {candidate.username!r}: {exc.message}",
                code=exc.code,
            ) from None
        raise
    return data


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
