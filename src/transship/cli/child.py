"""The entry point of a child process of `serve --workers N` or `worker --processes N`
(`python -m transship.cli.child`): read the `ChildSpec` from stdin, then run it. Not a
command for people: see `transship.cli.processes`."""

from __future__ import annotations

import asyncio
import sys

import click

from transship.cli.processes import ChildSpec
from transship.cli.server import run_worker, serve_child
from transship.cli.server_commands import configure_logging, server_ssl_context
from transship.metadata.db import DatabaseUrlError


def main() -> int:
    """Run the child the spec on stdin describes; the exit status the master logs."""
    line = sys.stdin.buffer.readline()
    try:
        spec = ChildSpec.decode(line)
    except (ValueError, KeyError) as exc:
        print(f"transship child: no usable spec on stdin ({exc})", file=sys.stderr)
        return 2
    settings = spec.settings
    configure_logging(settings.log_level, processes=True)
    try:
        if spec.kind == "serve":
            ssl_context = server_ssl_context(settings) if settings.tls_enabled else None
            asyncio.run(serve_child(settings, ssl_context, spec.addresses))
        else:
            asyncio.run(run_worker(settings, child=True))
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (DatabaseUrlError, OSError) as exc:
        print(f"transship child: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
