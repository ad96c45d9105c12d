"""`transship cache`, `transship credential-set` and `transship secret` against the real
application in-process: what they send, what the server then holds, what they print (never
a secret's value), and their errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from tests.unit.cli.live_service import LiveService, run
from transship.cli.main import main

VAULT = "https://myvault.vault.azure.net/secrets"
USER_ID, PASSWORD_ID = f"{VAULT}/hub-user", f"{VAULT}/hub-password"
VALUES = ("hub-user-4711", "Hub-Pa55-never-printed")


def ok(*args: str, input: str | None = None) -> Any:
    result = run(*args, input=input, secrets=VALUES)
    assert result.exit_code == 0, result.output
    return result


def ok_json(*args: str, input: str | None = None) -> Any:
    return json.loads(ok(*args, "-o", "json", input=input).stdout)


def fails(*args: str) -> str:
    result = run(*args, secrets=VALUES)
    assert result.exit_code == 1, result.output
    return str(result.stderr)


def test_secret_credential_set_and_cache_rule_lifecycle(logged_in: LiveService) -> None:
    ok("registry", "create", "myregistry")
    # Values come from stdin or a hidden prompt, never argv; never printed.
    ok("secret", "set", USER_ID, "--value-stdin", input=VALUES[0] + "\n")
    [put] = logged_in.seen("PUT", "/transship/v1/secrets")
    assert put.body == {"identifier": USER_ID, "value": VALUES[0]}
    assert put.reply == {
        "identifier": USER_ID,
        "createdAt": put.reply["createdAt"],
        "updatedAt": put.reply["updatedAt"],
    }
    ok("secret", "set", PASSWORD_ID, input=f"{VALUES[1]}\n{VALUES[1]}\n")
    listed = ok("secret", "list")
    assert USER_ID in listed.stdout and PASSWORD_ID in listed.stdout

    created = ok_json(
        "credential-set", "create", "-r", "myregistry", "-n", "hub-creds", "-l", "docker.io",
        "-u", USER_ID, "-p", PASSWORD_ID,
    )  # fmt: skip
    assert created["properties"]["loginServer"] == "docker.io"
    health = created["properties"]["authCredentials"][0]["credentialHealth"]
    assert health == {"status": "Healthy"}
    table = ok("credential-set", "list", "-r", "myregistry").stdout
    assert "hub-creds" in table and "Healthy" in table

    rule = ok_json(
        "cache", "create", "-r", "myregistry", "-n", "hub-library",
        "-s", "docker.io/library/*", "-t", "library/*", "-c", "hub-creds",
    )  # fmt: skip
    set_id = logged_in.arm_id("myregistry") + "/credentialSets/hub-creds"
    assert rule["properties"]["credentialSetResourceId"] == set_id
    table = ok("cache", "list", "-r", "myregistry").stdout
    assert "hub-library" in table and "docker.io/library/*" in table and "hub-creds" in table

    # A credential set in use is not deleted: the error names the rule.
    message = fails("credential-set", "delete", "-r", "myregistry", "-n", "hub-creds", "--yes")
    assert "hub-library" in message

    shown = ok_json("cache", "update", "-r", "myregistry", "-n", "hub-library", "--remove-cred-set")
    assert shown["properties"]["credentialSetResourceId"] is None
    assert ok_json("cache", "show", "-r", "myregistry", "-n", "hub-library")["properties"][
        "credentialSetResourceId"
    ] is None  # fmt: skip
    shown = ok_json("cache", "update", "-r", "myregistry", "-n", "hub-library", "-c", "hub-creds")
    assert shown["properties"]["credentialSetResourceId"] == set_id

    changed = ok_json(
        "credential-set", "update", "-r", "myregistry", "-n", "hub-creds",
        "-p", f"{VAULT}/hub-password2",
    )  # fmt: skip
    credential = changed["properties"]["authCredentials"][0]
    assert credential["passwordSecretIdentifier"] == f"{VAULT}/hub-password2"
    assert credential["usernameSecretIdentifier"] == USER_ID
    assert credential["credentialHealth"]["status"] == "Unhealthy"
    assert "Unhealthy" in ok("credential-set", "show", "-r", "myregistry", "-n", "hub-creds").stdout

    assert (
        "Deleted cache rule 'hub-library'."
        in ok("cache", "delete", "-r", "myregistry", "-n", "hub-library", "--yes").stdout
    )
    assert (
        "did not exist"
        in ok("cache", "delete", "-r", "myregistry", "-n", "hub-library", "--yes").stdout
    )
    ok("credential-set", "delete", "-r", "myregistry", "-n", "hub-creds", "--yes")
    assert ok_json("credential-set", "list", "-r", "myregistry") == []
    assert ok("secret", "delete", PASSWORD_ID, "--yes").stdout.startswith("Deleted secret")
    assert [s["identifier"] for s in ok_json("secret", "list")] == [USER_ID]
    for request in logged_in.requests:
        assert VALUES[1] not in json.dumps(request.reply)


def test_refusals_name_the_field(logged_in: LiveService) -> None:
    ok("registry", "create", "myregistry")
    message = fails(
        "cache", "create", "-r", "myregistry", "-n", "nginx-rule",
        "-s", "docker.io/library/nginx", "-t", "ng/*",
    )  # fmt: skip
    assert "(InvalidParameter)" in message and "Target: targetRepository" in message
    message = fails(
        "credential-set", "create", "-r", "myregistry", "-n", "hub-creds", "-l", "docker.io",
        "-u", "hub-user", "-p", PASSWORD_ID,
    )  # fmt: skip
    assert "Target: authCredentials.usernameSecretIdentifier" in message
    result = run(
        "secret", "set", "not-an-identifier", "--value-stdin", input="v\n", secrets=("v\n",)
    )
    assert result.exit_code == 1
    assert "Target: identifier" in result.stderr and "Key Vault secret identifier" in result.stderr
    result = run("secret", "set", USER_ID, "--value-stdin", input="")
    assert result.exit_code == 2 and "stdin held no value" in result.output
    message = fails("cache", "show", "-r", "myregistry", "-n", "nosuchrule")
    assert "(ResourceNotFound)" in message


def test_update_needs_something_to_change(logged_in: LiveService) -> None:
    result = run("cache", "update", "-r", "myregistry", "-n", "hub-library")
    assert result.exit_code == 2 and "--cred-set or --remove-cred-set" in result.output
    result = run("credential-set", "update", "-r", "myregistry", "-n", "hub-creds")
    assert result.exit_code == 2 and "--username-id, --password-id" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["cache", "create"],
        ["cache", "update"],
        ["cache", "list"],
        ["credential-set", "create"],
        ["credential-set", "show"],
        ["secret", "set"],
    ],
    ids=" ".join,
)
def test_help_shows_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output and "table|json|tsv" in result.output
