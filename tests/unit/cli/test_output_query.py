"""`-o tsv`, `--query` and the table of a query's result (transship.cli.output), on their
own: the shapes az's output takes, and values that would break a line or a column."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from transship.cli.output import JSON, TABLE, emit, generic_table, output_option, tsv


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], ""),
        (None, "\n"),
        ("text", "text\n"),
        (3, "3\n"),
        (["a", "b"], "a\nb\n"),
        ([{"name": "a", "n": 1}, {"name": "b", "n": 2}], "a\t1\nb\t2\n"),
        ({"name": "a", "ok": True, "no": False, "none": None}, "a\tTrue\tFalse\t\n"),
        ({"name": "a", "nested": {"x": 1}, "list": [1, 2], "last": "z"}, "a\t\t\tz\n"),
        ([["a", 1], ["b", 2]], "a\t1\nb\t2\n"),
        ({"value": "tab\there\nnewline\rreturn"}, "tab here newline return\n"),
    ],
)
def test_tsv_lines_and_fields(data: Any, expected: str) -> None:
    assert tsv(data) == expected


def test_the_table_of_a_query_result() -> None:
    assert generic_table([{"name": "a", "sku": "Basic"}, {"name": "b", "extra": 1}]) == (
        ["Name", "Sku", "Extra"],
        [["a", "Basic", None], ["b", None, 1]],
    )
    # Nested objects are left out of the columns, as az's table output does.
    assert generic_table({"name": "a", "properties": {"x": 1}}) == (["Name"], [["a"]])
    assert generic_table(["a", "b"]) == (["Result"], [["a"], ["b"]])
    assert generic_table("a") == (["Result"], [["a"]])
    assert generic_table(None) == (["Result"], [])


@click.command()
@output_option
def answer(output: str) -> None:
    """Print a fixed answer: the command's own table, or its JSON."""
    emit(
        output,
        [{"name": "a", "size": 1}, {"name": "b", "size": 2}],
        ("NAME",),
        lambda items: [(item["name"],) for item in items],
    )
    click.echo(f"saw {output}", err=True)


@pytest.mark.parametrize(
    ("args", "seen", "stdout"),
    [
        ([], TABLE, "NAME\na\nb\n"),
        (["-o", "json", "--query", "[].size"], JSON, "[\n  1,\n  2\n]\n"),
        (["-o", "tsv"], JSON, "a\t1\nb\t2\n"),
        (["--query", "[0].size", "-o", "tsv"], JSON, "1\n"),
        (["--query", "[?size > `1`].name"], JSON, "Result\nb\n"),
        (["-o", "TSV", "--query", "length(@)"], JSON, "2\n"),
    ],
)
def test_the_command_sees_json_whenever_its_answer_is_rendered(
    args: list[str], seen: str, stdout: str
) -> None:
    result = CliRunner().invoke(answer, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == stdout
    assert result.stderr == f"saw {seen}\n"


def test_query_errors_exit_2() -> None:
    result = CliRunner().invoke(answer, ["--query", "[].{name"])
    assert result.exit_code == 2
    assert "is not a valid JMESPath expression" in result.stderr
    assert "saw" not in result.stderr  # refused before the command ran
    result = CliRunner().invoke(answer, ["--query", "sum([].name)"])
    assert result.exit_code == 2
    assert "Error: --query: " in result.stderr and result.stdout == ""
