"""`transship secret set|list|delete`: the service's secret store, which the Key Vault
secret identifiers of credential sets resolve against (a Transship extension, for the root
tenant's administrators). A value is read from stdin or a hidden prompt, never from the
command line (which other users and shell histories see), and is never shown again."""

from __future__ import annotations

import sys

import click

from transship.cli.client import DIRECTORY
from transship.cli.common import CONTEXT, api, confirm, service_command, yes_option
from transship.cli.output import JSON, emit, emit_json, output_option, short_time
from transship.wire.cache import Secret, SecretBody, SecretList

SECRETS_PATH = "/secrets"
COLUMNS = ("IDENTIFIER", "CREATED", "UPDATED")


def _row(found: Secret) -> tuple[str, str, str]:
    return (found.identifier, short_time(found.created_at), short_time(found.updated_at))


@click.group(context_settings=CONTEXT)
def secret() -> None:
    """Manage the secrets credential sets name (Transship's stand-in for Key Vault).

    A credential set names its username and password by Key Vault secret identifier
    (https://<vault>.vault.azure.net/secrets/<name>[/<version>]). Set each identifier here
    once; values are sealed with the service key and never returned.
    """


@secret.command(name="set", context_settings=CONTEXT)
@click.argument("identifier")
@click.option(
    "--value-stdin",
    is_flag=True,
    help="Read the value from the first line of stdin (else a hidden prompt asks for it).",
)
@output_option
@service_command
def secret_set(identifier: str, value_stdin: bool, output: str) -> None:
    """Set (or replace) the secret IDENTIFIER.

    \b
    Examples:
      transship secret set https://myvault.vault.azure.net/secrets/hub-password
      printf '%s\\n' "$HUB_TOKEN" | transship secret set \\
        https://myvault.vault.azure.net/secrets/hub-password --value-stdin
    """
    if value_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise click.UsageError("--value-stdin: stdin held no value")
    else:
        value = click.prompt("Value", hide_input=True, confirmation_prompt=True, err=True)
    saved = api().directory(
        "PUT", SECRETS_PATH, Secret, body=SecretBody(identifier=identifier, value=value)
    )
    emit(output, saved, COLUMNS, lambda v: [_row(v)])


@secret.command(name="list", context_settings=CONTEXT)
@output_option
@service_command
def secret_list(output: str) -> None:
    """List the identifiers of the stored secrets (never their values).

    \b
    Examples:
      transship secret list
    """
    found = api().directory("GET", SECRETS_PATH, SecretList).value
    emit(output, found, COLUMNS, lambda rows: [_row(s) for s in rows], empty="No secrets.")


@secret.command(name="delete", context_settings=CONTEXT)
@click.argument("identifier")
@yes_option
@output_option
@service_command
def secret_delete(identifier: str, yes: bool, output: str) -> None:
    """Delete the secret IDENTIFIER; credential sets naming it turn Unhealthy.

    \b
    Examples:
      transship secret delete https://myvault.vault.azure.net/secrets/hub-password --yes
    """
    confirm(f"Delete secret '{identifier}'?", yes)
    response = api().send("DELETE", f"{DIRECTORY}{SECRETS_PATH}", query={"identifier": identifier})
    deleted = response.status != 204
    if output == JSON:
        emit_json({"identifier": identifier, "deleted": deleted})
    elif deleted:
        click.echo(f"Deleted secret '{identifier}'.")
    else:
        click.echo(f"The secret '{identifier}' did not exist.")
