"""The command line: help, validation of flags, and the offline gc/check commands."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import click
from click.testing import CliRunner

from transship.api.services import build_services
from transship.cli.main import main
from transship.config import Settings


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "gc", "check"):
        assert command in result.output


def test_every_listed_command_loads_under_its_name() -> None:
    context = click.Context(main)
    names = main.list_commands(context)
    assert {"serve", "worker", "import", "registry", "cache", "credential-set"} <= set(names)
    for name in names:
        command = main.get_command(context, name)
        assert command is not None and command.name == name


def test_a_client_command_loads_neither_the_server_nor_sqlalchemy() -> None:
    """Commands load lazily: `transship registry list` needs only the HTTP client."""
    probe = (
        "import sys\n"
        "from transship.cli.main import main\n"
        "main(['registry', 'list', '--help'], standalone_mode=False)\n"
        "loaded = [m for m in ('sqlalchemy', 'transship.cli.server_commands',"
        " 'transship.api.app') if m in sys.modules]\n"
        "print('loaded:', loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "loaded: []" in result.stdout, result.stdout + result.stderr
    assert "List the registries" in result.stdout  # the subcommand's own help


def test_serve_refuses_an_invalid_port_naming_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "99999", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "port" in result.output


def test_an_unsupported_database_url_is_a_clear_error(tmp_path: Path) -> None:
    for command in ("gc", "check", "serve"):
        result = CliRunner().invoke(
            main, [command, "--data-dir", str(tmp_path), "--database-url", "mysql://x/y"]
        )
        assert result.exit_code == 1, command
        assert "unsupported database URL scheme 'mysql'" in result.output, command


def test_gc_and_check_on_an_empty_data_directory(tmp_path: Path) -> None:
    runner = CliRunner()
    gc = runner.invoke(main, ["gc", "--data-dir", str(tmp_path), "--dry-run", "-o", "json"])
    assert gc.exit_code == 0, gc.output
    assert json.loads(gc.output)["dryRun"] is True
    check = runner.invoke(main, ["check", "--data-dir", str(tmp_path), "-o", "json"])
    assert check.exit_code == 0, check.output
    assert json.loads(check.output) == {
        "ok": True,
        "blobs": 0,
        "manifests": 0,
        "tags": 0,
        "problems": [],
    }


def test_check_exits_1_and_names_the_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["check", "--data-dir", str(tmp_path)]).exit_code == 0
    # A session row whose staged bytes are gone.
    import sqlite3

    with sqlite3.connect(tmp_path / "metadata.db") as db:
        db.execute(
            "insert into uploads "
            "(id, registry_id, repository, offset, algorithm, created_at, updated_at) "
            "values (?, 1, 'app', 10, 'sha256', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            ("a" * 32,),
        )
    result = runner.invoke(main, ["check", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"upload {'a' * 32} in app has lost its staged bytes" in result.output


def test_check_reports_an_import_job_left_running_without_a_process(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["check", "--data-dir", str(tmp_path)]).exit_code == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "metadata.db") as db:
        db.execute(
            "insert into import_jobs (id, registry_id, request, state, bytes_total, bytes_done,"
            " blobs_total, blobs_done, manifests_total, manifests_done, bytes_fetched,"
            " cancel_requested, attempts, lease_owner, lease_expires_at, created_at)"
            " values (?, 1, '{}', 'running', 0, 0, 0, 0, 0, 0, 0, 0, 1,"
            " 'gone', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            ("b" * 32,),
        )
    result = runner.invoke(main, ["check", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"import job {'b' * 32} has been running without a live process" in result.output


def test_keys_rotate_adds_an_active_key_and_keeps_the_old_one_verifying(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, gc_interval_seconds=0, durable_writes=False)

    async def issue_and_jwks() -> tuple[str, list[str]]:
        services = await build_services(settings)
        try:
            token, _ = services.tokens.issue({"iss": "t", "aud": "a"}, timedelta(minutes=5))
            return token, [k["kid"] for k in services.tokens.keys.jwks()["keys"]]
        finally:
            await services.close()

    async def verify(token: str) -> str:
        services = await build_services(settings)
        try:
            claims = await services.tokens.verify(token, audiences={"a"})
            return str(claims["iss"])
        finally:
            await services.close()

    token, before = asyncio.run(issue_and_jwks())
    result = CliRunner().invoke(main, ["keys", "rotate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    new_kid = result.output.split()[3]
    _, after = asyncio.run(issue_and_jwks())
    assert before == after[:1] and after[1:] == [new_kid]
    assert asyncio.run(verify(token)) == "t"  # signed with the retired key, still valid
