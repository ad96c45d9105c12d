"""The resident ``az`` (tests/peers/az_resident.py) behaves as a fresh ``az`` process does.

The e2e tests run their ``az`` commands in one resident process per client; these tests
run the same command sequences both ways and compare exit codes, stdout and stderr, and
check what a process could carry from one command to the next: log level and handlers
(``--debug``), config written by a former command, the environment, a hung command.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.peers.azure import AzResult, AzureCli, CommandError, az_venv_or_skip

# Commands that need no service: config, clouds, parse errors, a failing lookup.
SEQUENCE: tuple[tuple[str, ...], ...] = (
    ("config", "set", "core.instance_discovery=false"),
    ("config", "get", "core.instance_discovery"),
    ("cloud", "list", "--query", "[].name"),
    ("cloud", "list", "--query", "[].name", "--debug"),
    ("cloud", "list", "--query", "[].name"),
    ("nosuch",),
    ("cloud", "show", "-n", "NoSuchCloud"),
    ("account", "show"),
    ("cloud", "register", "-n", "Mine", "--endpoint-resource-manager", "not a url"),
    ("config", "get", "core.instance_discovery", "--only-show-errors"),
    ("version", "--query", '"azure-cli"'),
)


@pytest.fixture
def make_az(tmp_path: Path) -> Iterator[Callable[[str], AzureCli]]:
    """``make_az(name)`` → an :class:`AzureCli` (no service) in ``tmp_path/name``; closed at
    teardown."""
    venv = az_venv_or_skip()
    made: list[AzureCli] = []
    ca = tmp_path / "ca.pem"
    ca.touch()  # no service is reached over TLS; a missing bundle would make az warn

    def make(name: str) -> AzureCli:
        az = AzureCli("https://127.0.0.1:9/", ca, tmp_path / name, venv=venv)
        made.append(az)
        return az

    try:
        yield make
    finally:
        for az in made:
            az.close()


def _comparable(result: AzResult, workdir: Path) -> tuple[int, str, str]:
    """Exit code, stdout and stderr with the client's own directory made neutral, and
    ``--debug``'s timings and process ids dropped."""

    def neutral(text: str) -> str:
        lines = text.replace(str(workdir), "<workdir>").splitlines()
        return "\n".join(line for line in lines if "DEBUG" not in line and "INFO" not in line)

    return result.returncode, neutral(result.stdout), neutral(result.stderr)


def test_a_sequence_gives_what_fresh_processes_give(make_az: Callable[[str], AzureCli]) -> None:
    fresh, resident = make_az("fresh"), make_az("resident")
    for command in SEQUENCE:
        expected = fresh.run(*command, check=False, fresh_process=True)
        got = resident.run(*command, check=False)
        assert _comparable(got, resident.workdir) == _comparable(expected, fresh.workdir), command
    assert resident._resident is not None and resident._resident.alive  # one process served all


def test_debug_output_does_not_leak_into_the_next_command(
    make_az: Callable[[str], AzureCli],
) -> None:
    az = make_az("az")
    debug = az.run("cloud", "list", "--query", "[0].name", "--debug")
    assert "DEBUG" in debug.stderr or "INFO" in debug.stderr, debug.stderr
    quiet = az.run("cloud", "list", "--query", "[0].name")
    assert quiet.stderr == "", quiet.stderr
    assert quiet.json() == debug.json() == "AzureCloud"


def test_failures_keep_their_exit_code_and_messages(make_az: Callable[[str], AzureCli]) -> None:
    az = make_az("az")
    with pytest.raises(CommandError) as raised:
        az.run("nosuch")
    assert raised.value.result.returncode == 2
    assert "'nosuch' is misspelled or not recognized" in raised.value.stderr
    assert raised.value.result.argv[0].endswith("/bin/az")
    # The process is still usable, and a command after a failure starts clean.
    assert az.json("config", "get", "core.collect_telemetry")["value"] == "false"


def test_a_changed_environment_gets_a_fresh_process(make_az: Callable[[str], AzureCli]) -> None:
    az = make_az("az")
    assert az.run("cloud", "show", "-n", "AzureCloud", "--query", "name", output=None).json()
    first = az._resident
    az.env["AZURE_CORE_OUTPUT"] = "tsv"
    shown = az.run("cloud", "show", "-n", "AzureCloud", "--query", "name", output=None)
    assert shown.stdout == "AzureCloud\n"
    assert az._resident is not first and first is not None and not first.alive


def test_a_hung_command_times_out_and_the_next_one_runs(make_az: Callable[[str], AzureCli]) -> None:
    az = make_az("az")
    # A listener that never answers: az's request waits until the call's timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(CommandError) as raised:
            az.run(
                "rest",
                "--url",
                f"http://127.0.0.1:{port}/hang",
                "--skip-authorization-header",
                timeout=3,
            )
    assert raised.value.timed_out
    hung = raised.value
    assert hung.result.returncode != 0
    assert az._resident is None  # killed with its process group
    assert az.json("cloud", "show", "-n", "AzureCloud", "--query", "name") == "AzureCloud"


def test_concurrent_calls_on_one_client_stay_concurrent(make_az: Callable[[str], AzureCli]) -> None:
    az = make_az("az")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        hung: list[BaseException] = []

        def hang() -> None:
            try:
                az.run(
                    "rest",
                    "--url",
                    f"http://127.0.0.1:{port}/",
                    "--skip-authorization-header",
                    timeout=5,
                )
            except CommandError as exc:
                hung.append(exc)

        thread = threading.Thread(target=hang)
        thread.start()
        try:
            # While the resident process is busy, this call runs in a process of its own.
            while not az._resident_lock.locked():
                thread.join(0.01)
            assert az.json("cloud", "show", "-n", "AzureCloud", "--query", "name") == "AzureCloud"
            assert thread.is_alive()
        finally:
            thread.join()
    assert len(hung) == 1 and isinstance(hung[0], CommandError) and hung[0].timed_out
