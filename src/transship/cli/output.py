"""Output for the client commands: `-o table|json|tsv`, `--query`, rich tables, and az-style
errors.

Results go to stdout (JSON exactly as the service returned it, or a table); everything meant
for a person alone — progress, warnings, errors — goes to stderr, so `-o json` stays
machine-readable.

A command decides between two answers: its own table for people (`output == TABLE`), or its
JSON answer (`output == JSON`, given to `emit_json`). `-o tsv` and `--query` (a JMESPath
expression, as az's) work on the JSON answer, so the command sees JSON for them and
`emit_json` applies the query and renders the result as JSON, TSV or a generic table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import IO, Any, TypeVar

import click
import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])

TABLE = "table"
JSON = "json"
TSV = "tsv"

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

# Where the options keep what the command does not see: the format asked for, and the
# compiled query (click's ctx.meta is shared by a command and its groups).
_FORMAT = "transship.output.format"
_QUERY = "transship.output.query"


def _remember_query(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        ctx.meta[_QUERY] = jmespath.compile(value)
    except JMESPathError as exc:
        position = getattr(exc, "lex_position", getattr(exc, "lexer_position", None))
        where = f" at character {position}" if isinstance(position, int) else ""
        raise click.BadParameter(
            f"{value!r} is not a valid JMESPath expression ({_first_line(exc)}{where})"
        ) from None


def _choose_answer(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """What the command produces: its table only for `-o table` without `--query`."""
    chosen = value.lower()
    ctx.meta[_FORMAT] = chosen
    return TABLE if chosen == TABLE and _QUERY not in ctx.meta else JSON


def output_option(function: F) -> F:
    """`--output/-o table|json|tsv` (default table) and `--query JMESPATH`.

    The command's `output` parameter is TABLE or JSON (see the module docstring); `--query`
    is compiled as it is parsed (eagerly, so before `--output`), and a bad expression is a
    usage error (exit 2), as in az."""
    function = click.option(
        "--output",
        "-o",
        type=click.Choice([TABLE, JSON, TSV], case_sensitive=False),
        default=TABLE,
        show_default=True,
        callback=_choose_answer,
        help="Output format: a table for people, or JSON or TSV (tab-separated values) for "
        "scripts (stdout only).",
    )(function)
    return click.option(
        "--query",
        metavar="JMESPATH",
        is_eager=True,
        expose_value=False,
        callback=_remember_query,
        help="A JMESPath expression applied to the JSON answer before output "
        '(see https://jmespath.org), e.g. "[].name".',
    )(function)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(":") if text else type(exc).__name__


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
    """The command's JSON answer `value` (wire models, also in lists or dicts, as the server
    wrote them: by alias, fields the server left out left out), after `--query` if given,
    as indented JSON, TSV, or (`-o table --query`) a table of the query's result.

    Raises click.UsageError (exit 2) when the query cannot be applied to the answer (a
    function given the wrong type)."""
    data = plain(value)
    context = click.get_current_context(silent=True)
    meta = context.meta if context is not None else {}
    query = meta.get(_QUERY)
    if query is not None:
        try:
            data = query.search(data)
        except JMESPathError as exc:
            raise click.UsageError(f"--query: {_first_line(exc)}") from None
    chosen = meta.get(_FORMAT, JSON)
    if chosen == TSV:
        click.echo(tsv(data), nl=False)
    elif chosen == TABLE:
        columns, rows = generic_table(data)
        if rows:
            emit_table(columns, rows)
    else:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def tsv(data: Any) -> str:
    """`data` (JSON values) as az's `-o tsv`: a list is one line per item, an object one line
    of its values in order, a scalar one line; nested objects and lists are empty fields
    (select what you need with --query), booleans `True`/`False` and null empty, as az
    prints them."""
    items = data if isinstance(data, list) else [data]
    lines = []
    for item in items:
        if isinstance(item, dict):
            values = list(item.values())
        elif isinstance(item, list):
            values = item
        else:
            values = [item]
        lines.append("\t".join(_tsv_field(v) for v in values))
    return "".join(f"{line}\n" for line in lines)


def _tsv_field(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return str(value)
    # A tab or line break inside a value would shift the columns of every later field.
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def generic_table(data: Any) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows for a query's result, as az's table output builds them: objects are
    rows whose columns are their keys (first letter capitalised; nested objects left out),
    anything else is a `Result` column."""
    items = data if isinstance(data, list) else [] if data is None else [data]
    if items and all(isinstance(item, dict) for item in items):
        keys: list[str] = []
        for item in items:
            keys += [k for k, v in item.items() if not isinstance(v, dict) and k not in keys]
        columns = [key[:1].upper() + key[1:] for key in keys]
        return columns, [[item.get(key) for key in keys] for item in items]
    return ["Result"], [[item] for item in items]


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
