"""`transship`: serve the registry and operate on it.

The entry point only assembles the command group: the server's commands live in
`transship.cli.server_commands`, the client commands (which talk HTTP to a server) in
`transship.cli.commands_*`.
"""

from __future__ import annotations

import gc

import click

from transship import __version__
from transship.cli.commands_cache import cache as _cache_command
from transship.cli.commands_cache import credential_set as _credential_set_command
from transship.cli.commands_group import group as _group_command
from transship.cli.commands_identity import identity as _identity_command
from transship.cli.commands_import import import_ as _import_command
from transship.cli.commands_login import login as _login_command
from transship.cli.commands_login import logout as _logout_command
from transship.cli.commands_registry import registry as _registry_command
from transship.cli.commands_repository import repository as _repository_command
from transship.cli.commands_role import role as _role_command
from transship.cli.commands_secret import secret as _secret_command
from transship.cli.commands_sync import sync as _sync_command
from transship.cli.commands_upstream import upstream as _upstream_command
from transship.cli.server_commands import SERVER_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="transship")
def main() -> None:
    """Transship: a self-hosted OCI registry with server-side image import.

    Settings come from flags, TRANSSHIP_* environment variables and an optional TOML file
    named by TRANSSHIP_CONFIG (see docs/configuration.md).
    """
    # Once per run, before the command: the modules and objects loaded so far live until
    # the process ends. Kept out of the cyclic collector's scans, they no longer cost the
    # interpreter's exit about a second on two loaded cores (measured: from the last answer
    # of `transship import` to the process's end, 1.2 s before, 0.1-0.2 s after), a wait the
    # user has after every command. Objects made later are collected as usual. Here rather
    # than at import, so importing the CLI (tests, tools) changes nothing.
    gc.freeze()


for _command in (
    *SERVER_COMMANDS,
    _login_command,
    _logout_command,
    _registry_command,
    _import_command,
    _repository_command,
    _identity_command,
    _group_command,
    _role_command,
    _upstream_command,
    _cache_command,
    _credential_set_command,
    _secret_command,
    _sync_command,
):
    main.add_command(_command)
