"""Output for the client commands: `-o table|json`, rich tables, and az-style errors.

Results go to stdout (JSON exactly as the service returned it, or a table); everything meant
for a person alone — progress, warnings, errors — goes to stderr, so `-o json` stays
machine-readable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import IO, Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])

TABLE = "table"
JSON = "json"

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def output_option(function: F) -> F:
    """`--output/-o table|json` (default table)."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice([TABLE, JSON], case_sensitive=False),
        default=TABLE,
        show_default=True,
        help="Output format: a table for people, or JSON for scripts (stdout only).",
    )(function)


class CommandFailed(click.ClickException):
    """A failed operation or a service error: `ERROR: (Code) message` on stderr, exit 1.

    `details` are extra lines printed under the message (failing step, object, …).
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, code: str | None = None, details: Sequence[str] = ()):
        super().__init__(message)
        self.code = code
        self.details = list(details)

    def format_message(self) -> str:
        head = f"({self.code}) {self.message}" if self.code else self.message
        return "\n".join([head, *self.details])

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"ERROR: {self.format_message()}", file=file or sys.stderr, err=True)


def stdout_console() -> Console:
    """A console on the current stdout; wide enough that ids and digests — ARM resource ids
    and scopes too — are not cut when stdout is not a terminal."""
    out = sys.stdout
    terminal = out.isatty() if hasattr(out, "isatty") else False
    return Console(file=out, width=None if terminal else 400, highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(file=sys.stderr, stderr=True, highlight=False)


def warn(message: str) -> None:
    click.echo(f"WARNING: {message}", err=True)


def info(message: str) -> None:
    """A note for people on stderr (never part of the result)."""
    click.echo(message, err=True)


def emit_json(value: Any) -> None:
    """`value` as indented JSON; wire models (also in lists or dicts) as the server wrote
    them: by alias, fields the server left out left out."""
    click.echo(json.dumps(plain(value), indent=2, ensure_ascii=False))


def plain(value: Any) -> Any:
    """`value` with every wire model in it as its JSON value."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def emit_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str | None = None
) -> None:
    rows = [[cell_text(cell) for cell in row] for row in rows]
    if not rows and empty is not None:
        info(empty)
        return
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console = stdout_console()
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def emit(
    output: str,
    value: Any,
    columns: Sequence[str],
    rows: Callable[[Any], Iterable[Sequence[Any]]],
    *,
    empty: str | None = None,
) -> None:
    """Print `value` as JSON, or as a table of `rows(value)`."""
    if output == JSON:
        emit_json(value)
    else:
        emit_table(columns, rows(value), empty=empty)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def human_bytes(count: float | int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def short_time(text: Any) -> str:
    """An ISO timestamp as `YYYY-MM-DDTHH:MM:SSZ`-ish; anything unparsable as given."""
    if not isinstance(text, str) or not text:
        return ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
