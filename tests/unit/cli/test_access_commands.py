"""The identity and access commands (identity, group, role, registry update / credential /
network-rule / scope-map / token) against the real application in-process: what they send,
what the server then holds, what they print, and their errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.unit.cli.live_service import (
    AUTHZ,
    LiveService,
    run,
)
from transship.cli.client import is_guid
from transship.cli.common import join_greedy
from transship.cli.main import main

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
ALICE_PASSWORD = "alice-pw-1234567"


def ok(*args: str, input: str | None = None) -> Any:
    result = run(*args, input=input, secrets=())
    assert result.exit_code == 0, result.output
    return result


def ok_json(*args: str, input: str | None = None) -> Any:
    return json.loads(ok(*args, "-o", "json", input=input).stdout)


def create_sp(service: LiveService, name: str = "ci") -> dict[str, Any]:
    """A service principal, created with the CLI; what the server answered."""
    created = ok_json("identity", "sp", "create", "-n", name)
    service.requests.clear()
    return dict(created)


def create_user(service: LiveService, name: str = "alice") -> dict[str, Any]:
    created = ok_json(
        "identity", "user", "create", "-n", name, "--password-stdin", input=ALICE_PASSWORD + "\n"
    )
    service.requests.clear()
    return dict(created)


def create_registry(service: LiveService, name: str = "myregistry", *args: str) -> str:
    """A registry, created with the CLI; its ARM id."""
    ok("registry", "create", name, *args)
    service.requests.clear()
    return service.arm_id(name)


# -- identity ------------------------------------------------------------------------------


def test_sp_create_prints_the_secret_once_or_writes_it_to_a_file(
    logged_in: LiveService, tmp_path: Path
) -> None:
    result = ok("identity", "sp", "create", "--display-name", "ci")
    [post] = logged_in.seen("POST", "/servicePrincipals")
    assert post.body == {"displayName": "ci", "years": 1}
    assert post.headers["Authorization"].startswith("Bearer ")
    created = post.reply
    assert "DISPLAY NAME" in result.stdout and created["appId"] in result.stdout
    assert f"Client secret: {created['password']}" in result.stdout
    assert "The secret is shown only this once" in result.stderr
    # The secret works: the new principal signs in with it.
    assert (
        run(
            "login",
            "--server",
            logged_in.url,
            "--service-principal",
            "-u",
            created["appId"],
            "-p",
            created["password"],
            "--tenant",
            logged_in.tenant,
        ).exit_code
        == 0
    )
    ok("login", "--server", logged_in.url, "--credential-file", str(logged_in.credential_file))

    shown = ok_json("identity", "sp", "create", "-n", "ci2", "--years", "3")
    assert shown["password"] == logged_in.seen("POST", "/servicePrincipals")[-1].reply["password"]
    assert logged_in.seen("POST", "/servicePrincipals")[-1].body == {
        "displayName": "ci2",
        "years": 3,
    }

    target = tmp_path / "ci.json"
    result = ok(
        "identity", "sp", "create", "-n", "ci3", "--credential-file", str(target), "-o", "json"
    )
    created = logged_in.seen("POST", "/servicePrincipals")[-1].reply
    assert created["password"] not in result.output
    shown = json.loads(result.stdout)
    assert "password" not in shown and shown["credential"] == created["credential"]
    assert json.loads(target.read_text()) == {
        "tenantId": logged_in.tenant,
        "clientId": created["appId"],
        "clientSecret": created["password"],
    }
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert f"Credential written to {target}" in result.stderr

    requests = len(logged_in.requests)
    result = run(
        "identity",
        "sp",
        "create",
        "-n",
        "ci",
        "--credential-file",
        str(tmp_path / "no" / "dir.json"),
    )
    assert result.exit_code == 2 and "cannot write into" in result.stderr
    assert len(logged_in.requests) == requests  # nothing was created to lose the secret of
    assert len(ok_json("identity", "sp", "list")) == 4  # the owner and three "ci"


def test_sp_list_show_reset_and_delete(logged_in: LiveService) -> None:
    app_id = create_sp(logged_in)["appId"]
    result = ok("identity", "sp", "list")
    assert result.stdout.split("\n")[0].split() == ["DISPLAY", "NAME", "APP", "ID", "OBJECT", "ID"]
    assert app_id in result.stdout and logged_in.client_id in result.stdout

    shown = ok("identity", "sp", "show", "--id", app_id).stdout
    [secret] = logged_in.seen("GET", f"/servicePrincipals/{app_id}")[-1].reply[
        "passwordCredentials"
    ]
    assert f"{secret['hint']}… until {secret['endDateTime'][:19]}" in shown

    result = ok("identity", "sp", "credential", "reset", "--id", app_id, "--append", "--years", "2")
    [reset] = logged_in.seen("POST", "/credentials/reset")
    assert reset.body == {"append": True, "years": 2}
    assert f"Client secret: {reset.reply['password']}" in result.stdout
    # Appended: the principal now holds two secrets.
    assert len(ok_json("identity", "sp", "show", "--id", app_id)["passwordCredentials"]) == 2

    result = run("identity", "sp", "delete", "--id", app_id, input="n\n")
    assert result.exit_code == 1 and not logged_in.seen("DELETE")
    result = ok("identity", "sp", "delete", "--id", app_id, "--yes")
    assert result.stdout == f"Deleted service principal '{app_id}'.\n"
    assert logged_in.seen("DELETE")[0].path == f"/transship/v1/servicePrincipals/{app_id}"
    assert run("identity", "sp", "show", "--id", app_id).exit_code == 1

    # sp delete does not delete a user, even given the user's object id.
    alice = create_user(logged_in)["objectId"]
    result = run("identity", "sp", "delete", "--id", alice, "--yes")
    assert (
        result.exit_code == 1
        and f"(PrincipalNotFound) No service principal or user '{alice}'" in result.stderr
    )
    assert not logged_in.seen("DELETE")
    assert [u["userName"] for u in ok_json("identity", "user", "list")] == ["alice"]


def test_user_create_list_delete(logged_in: LiveService) -> None:
    result = ok(
        "identity",
        "user",
        "create",
        "--user-name",
        "alice",
        "--password-stdin",
        input=ALICE_PASSWORD + "\n",
    )
    [post] = logged_in.seen("POST", "/users")
    assert post.body == {"userName": "alice", "password": ALICE_PASSWORD}
    assert ALICE_PASSWORD not in result.output and post.reply["objectId"] in result.stdout
    result = ok(
        "identity", "user", "create", "-n", "bob", input=f"{ALICE_PASSWORD}\n{ALICE_PASSWORD}\n"
    )
    assert "Repeat for confirmation" in result.stderr
    result = run("identity", "user", "create", "-n", "carol", "-p", "short")
    assert result.exit_code == 1
    error = logged_in.seen("POST", "/users")[-1].reply["error"]
    assert error["code"] == "InvalidParameter" and error["target"] == "password"
    assert f"ERROR: (InvalidParameter) {error['message']}\nTarget: password" in result.stderr

    listed = ok_json("identity", "user", "list")
    assert {u["userName"] for u in listed} == {"alice", "bob"}
    assert post.reply in listed
    assert ok_json("identity", "user", "delete", "--id", "alice", "-y") == {
        "id": "alice",
        "deleted": True,
    }
    assert [u["userName"] for u in ok_json("identity", "user", "list")] == ["bob"]


def test_tenant_and_subscription_create(logged_in: LiveService, tmp_path: Path) -> None:
    tenant_id = "7e7e0000-0000-4000-8000-000000000001"
    subscription_id = "5b5b0000-0000-4000-8000-000000000001"
    target = tmp_path / "owner.json"
    result = ok(
        "identity",
        "tenant",
        "create",
        "-n",
        "Team B",
        "--tenant-id",
        tenant_id,
        "--subscription-id",
        subscription_id,
        "--credential-file",
        str(target),
    )
    [put] = logged_in.seen("PUT", "/tenants/")
    assert put.path == f"/transship/v1/tenants/{tenant_id}"
    assert put.body == {"displayName": "Team B", "subscriptionId": subscription_id}
    owner = put.reply["owner"]
    assert owner["password"] not in result.output and tenant_id in result.stdout
    assert json.loads(target.read_text()) == {
        "tenantId": tenant_id,
        "subscriptionId": subscription_id,
        "resourceGroup": "default",
        "clientId": owner["appId"],
        "clientSecret": owner["password"],
    }
    # The owner-credential.json format: `transship login --credential-file` takes it.
    result = ok("login", "--server", logged_in.url, "--credential-file", str(target))
    assert f"tenant {tenant_id}" in result.stdout
    ok("login", "--server", logged_in.url, "--credential-file", str(logged_in.credential_file))
    result = run("identity", "tenant", "create", "-n", "Team C", "--tenant-id", "not-a-guid")
    assert result.exit_code == 2 and "'not-a-guid' is not a GUID" in result.stderr

    staging = "5b5b0000-0000-4000-8000-000000000002"
    result = ok(
        "identity",
        "subscription",
        "create",
        "-n",
        "Staging",
        "--subscription-id",
        staging,
        "--tenant",
        tenant_id,
    )
    assert logged_in.seen("PUT", "/transship/v1/subscriptions/")[0].body == {
        "displayName": "Staging",
        "tenantId": tenant_id,
    }
    assert "Staging" in result.stdout and "Enabled" in result.stdout
    ok("identity", "subscription", "create", "-n", "Generated")  # without an id: a new GUID
    put = logged_in.seen("PUT", "/transship/v1/subscriptions/")[-1]
    assert put.status == 201 and len(put.path.rsplit("/", 1)[1]) == 36
    assert put.path != f"/transship/v1/subscriptions/{staging}"


# -- groups --------------------------------------------------------------------------------


def test_group_create_list_show_delete(logged_in: LiveService) -> None:
    sub = f"/subscriptions/{logged_in.sub}"
    result = ok("group", "create", "--name", "team-a")
    [put] = logged_in.seen("PUT")
    assert put.path == f"{sub}/resourcegroups/team-a"
    assert put.body == {"location": "local"} and put.query == {"api-version": "2025-04-01"}
    assert result.stdout.split("\n")[1].split() == ["team-a", "local", "Succeeded"]
    ok("group", "create", "-g", "team-b", "--location", "west")
    assert logged_in.seen("PUT")[-1].body == {"location": "west"}

    listed = ok_json("group", "list")
    assert {g["name"]: g["location"] for g in listed} == {
        "default": "local",
        "team-a": "local",
        "team-b": "west",
    }
    assert "team-a" in ok("group", "show", "-n", "team-a").stdout

    create_registry(logged_in, "teamregistry", "-g", "team-a")
    result = run("group", "delete", "-n", "team-a", "--yes")
    assert result.exit_code == 1 and "(ResourceGroupNotEmpty)" in result.stderr
    ok("registry", "delete", "teamregistry", "-g", "team-a", "--yes")
    assert (
        ok("group", "delete", "-n", "team-a", "--yes").stdout
        == "Deleted resource group 'team-a'.\n"
    )
    assert (
        ok("group", "delete", "-n", "team-a", "--yes").stdout
        == "Resource group 'team-a' did not exist.\n"
    )


# -- roles ---------------------------------------------------------------------------------


def test_role_assignment_create_resolves_role_and_assignee(logged_in: LiveService) -> None:
    reg_id = create_registry(logged_in)
    sp = create_sp(logged_in)
    shown = ok_json(
        "role",
        "assignment",
        "create",
        "--assignee",
        sp["appId"],
        "--role",
        "AcrPull",
        "--registry",
        "myregistry",
    )
    [roles] = logged_in.seen("GET", "/roleDefinitions")
    assert roles.path == f"{reg_id}{AUTHZ}/roleDefinitions"
    assert roles.query == {"api-version": "2025-04-01", "$filter": "roleName eq 'AcrPull'"}
    assert logged_in.seen("GET", f"/servicePrincipals/{sp['appId']}")
    [sent] = logged_in.seen("PUT", "/roleAssignments/")
    prefix, guid = sent.path.rsplit("/", 1)
    assert prefix == f"{reg_id}{AUTHZ}/roleAssignments" and is_guid(guid)  # a new name
    assert sent.query == {"api-version": "2025-04-01"}
    assert sent.body == {
        "properties": {
            "roleDefinitionId": roles.reply["value"][0]["id"],
            "principalId": sp["objectId"],
        }
    }
    assert sent.reply["properties"]["roleDefinitionId"].endswith(f"/roleDefinitions/{ACR_PULL}")
    assert shown == sent.reply
    # Held: the assignment is listed at the registry.
    listed = ok_json("role", "assignment", "list", "--registry", "myregistry")
    assert shown in listed


def test_role_assignment_create_output_and_errors(logged_in: LiveService) -> None:
    sub = f"/subscriptions/{logged_in.sub}"
    group_scope = f"{sub}/resourceGroups/team-a"
    ok("group", "create", "-n", "team-a")
    alice = create_user(logged_in)
    result = ok(
        "role", "assignment", "create", "--assignee", "alice", "--role", "AcrPull", "-g", "team-a"
    )
    assert result.stdout.split("\n")[1].split() == ["alice", "User", "AcrPull", group_scope]
    assert logged_in.seen("PUT")[0].body["properties"]["principalId"] == alice["objectId"]

    # Unknown role: named, and nothing assigned.
    result = run("role", "assignment", "create", "--assignee", "alice", "--role", "NoSuchRole")
    assert result.exit_code == 1 and result.stderr == "ERROR: Role 'NoSuchRole' doesn't exist.\n"
    unknown = "0bad0000-0000-4000-8000-000000000000"
    result = run(
        "role", "assignment", "create", "--assignee", "alice", "--role", unknown, "--scope", "/"
    )
    assert result.exit_code == 1 and f"Role '{unknown}' doesn't exist." in result.stderr

    # Unknown principal.
    result = run("role", "assignment", "create", "--assignee", "nobody", "--role", "AcrPull")
    assert result.exit_code == 1
    assert "Cannot find a user or service principal 'nobody' in the directory." in result.stderr
    assert len(logged_in.seen("PUT")) == 1

    # Without read access to the directory, the service resolves the name itself.
    denied = (403, {"error": {"code": "AuthorizationFailed", "message": "x"}})
    logged_in.answer("GET", "/transship/v1/users/bob", denied)
    logged_in.answer("GET", "/transship/v1/servicePrincipals/bob", denied)
    result = run("role", "assignment", "create", "--assignee", "bob", "--role", "AcrPull")
    put = logged_in.seen("PUT")[-1]
    assert put.body["properties"]["principalId"] == "bob"
    assert result.exit_code == 1 and f"ERROR: ({put.reply['error']['code']})" in result.stderr

    result = run(
        "role",
        "assignment",
        "create",
        "--assignee",
        "bob",
        "--role",
        "AcrPull",
        "--scope",
        "/x",
        "--registry",
        "r",
    )
    assert (
        result.exit_code == 2
        and "use either --scope or --registry/--resource-group" in result.stderr
    )
    result = run(
        "role",
        "assignment",
        "create",
        "--assignee",
        "bob",
        "--role",
        "AcrPull",
        "--scope",
        "subscriptions/x",
    )
    assert result.exit_code == 2 and "is not a scope" in result.stderr


def test_role_assignment_list_filters_and_names(logged_in: LiveService) -> None:
    reg_id = create_registry(logged_in)
    sp = create_sp(logged_in)
    ok(
        "role",
        "assignment",
        "create",
        "--assignee",
        sp["appId"],
        "--role",
        "AcrPull",
        "--registry",
        "myregistry",
    )
    # A login that may not list users: principals it cannot name show by id.
    logged_in.answer(
        "GET",
        "/transship/v1/users",
        (403, {"error": {"code": "AuthorizationFailed", "message": "x"}}),
    )
    logged_in.requests.clear()
    result = ok("role", "assignment", "list", "--registry", "myregistry")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PRINCIPAL", "PRINCIPAL", "TYPE", "ROLE", "SCOPE"]
    rows = [line.split() for line in lines[1:]]
    assert ["ci", "ServicePrincipal", "AcrPull", reg_id] in rows
    # The owner holds Owner on the service root (inherited at the registry).
    assert ["transship-owner", "ServicePrincipal", "Owner", "/"] in rows

    logged_in.requests.clear()
    shown = ok_json("role", "assignment", "list", "--assignee", sp["appId"], "--role", "AcrPull")
    assert [a["properties"]["scope"] for a in shown] == [reg_id]
    [query] = [r.query for r in logged_in.seen("GET", "/roleAssignments")]
    assert query["$filter"] == f"principalId eq '{sp['objectId']}'"


def test_role_assignment_delete_by_filter_or_ids(logged_in: LiveService) -> None:
    create_registry(logged_in)
    sp = create_sp(logged_in)
    at_registry = ok_json(
        "role",
        "assignment",
        "create",
        "--assignee",
        sp["appId"],
        "--role",
        "AcrPull",
        "--registry",
        "myregistry",
    )
    inherited = ok_json(
        "role",
        "assignment",
        "create",
        "--assignee",
        sp["appId"],
        "--role",
        "AcrPull",
        "--scope",
        f"/subscriptions/{logged_in.sub}",
    )
    logged_in.requests.clear()
    result = ok(
        "role",
        "assignment",
        "delete",
        "--assignee",
        sp["appId"],
        "--role",
        "AcrPull",
        "--registry",
        "myregistry",
    )
    # Not the inherited one.
    assert [d.path for d in logged_in.seen("DELETE")] == [at_registry["id"]]
    assert result.stdout == f"Deleted role assignment {at_registry['id']}.\n"

    result = run(
        "role", "assignment", "delete", "--assignee", sp["appId"], "--registry", "myregistry"
    )
    assert result.exit_code == 1 and "No matched assignments were found to delete." in result.stderr

    logged_in.requests.clear()
    shown = ok_json("role", "assignment", "delete", "--ids", at_registry["id"], inherited["id"])
    assert [d.path for d in logged_in.seen("DELETE")] == [at_registry["id"], inherited["id"]]
    # The one already deleted is not there any more; the other is, and goes.
    assert shown == [inherited]
    assert ok_json("role", "assignment", "list", "--assignee", sp["appId"]) == []

    result = run("role", "assignment", "delete")
    assert result.exit_code == 2 and "give --ids, or --assignee and/or --role" in result.stderr
    result = run("role", "assignment", "delete", "--ids", at_registry["id"], "--role", "AcrPull")
    assert result.exit_code == 2 and "use either --ids or --assignee/--role" in result.stderr


def test_role_definition_create_from_inline_json_or_a_file(
    logged_in: LiveService, tmp_path: Path
) -> None:
    sub = f"/subscriptions/{logged_in.sub}"
    action = "Microsoft.ContainerRegistry/registries/importImage/action"
    result = ok(
        "role",
        "definition",
        "create",
        "--role-definition",
        json.dumps(
            {"Name": "Importer", "Description": "imports", "Actions": [action], "IsCustom": True}
        ),
    )
    [put] = logged_in.seen("PUT")
    prefix, guid = put.path.rsplit("/", 1)
    assert prefix == f"{sub}{AUTHZ}/roleDefinitions" and is_guid(guid)
    assert put.body == {
        "properties": {
            "roleName": "Importer",
            "description": "imports",
            "permissions": [
                {"actions": [action], "notActions": [], "dataActions": [], "notDataActions": []}
            ],
            "assignableScopes": [sub],
        }
    }
    assert result.stdout.split("\n")[1].split()[:3] == ["Importer", "CustomRole", guid]

    path = tmp_path / "role.json"
    for n, value in enumerate((str(path), f"@{path}")):
        path.write_text(
            json.dumps(
                {
                    "roleName": f"Importer{n}",
                    "actions": [action],
                    "notActions": ["Microsoft.ContainerRegistry/registries/write"],
                    "assignableScopes": [f"{sub}/"],
                }
            )
        )
        ok("role", "definition", "create", "--role-definition", value)
        body = logged_in.seen("PUT")[-1].body["properties"]
        assert body["permissions"][0]["notActions"] == [
            "Microsoft.ContainerRegistry/registries/write"
        ]
        assert body["assignableScopes"] == [sub]

    ok(
        "role",
        "definition",
        "create",
        "--role-definition",
        json.dumps(
            {
                "Name": "R",
                "DataActions": ["Microsoft.ContainerRegistry/registries/repositories/content/read"],
                "AssignableScopes": ["/"],
            }
        ),
    )
    prefix, other = logged_in.seen("PUT")[-1].path.rsplit("/", 1)
    assert prefix == f"{AUTHZ}/roleDefinitions" and is_guid(other) and other != guid
    names = {
        r["properties"]["roleName"]
        for r in ok_json("role", "definition", "list", "--custom-role-only")
    }
    assert {"Importer", "Importer0", "Importer1"} <= names


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON, nor a file"),
        ("[]", "must be a JSON object"),
        ('{"Actions": ["a"]}', 'needs a "Name"'),
        ('{"Name": "x"}', 'needs "Actions" or "DataActions"'),
        ('{"Name": "x", "Actions": "a"}', "Actions must be a list of strings"),
        ("@/nonexistent/role.json", "cannot read /nonexistent/role.json"),
    ],
)
def test_role_definition_create_refuses_bad_input(
    logged_in: LiveService, value: str, message: str
) -> None:
    result = run("role", "definition", "create", "--role-definition", value)
    assert result.exit_code == 2 and message in result.stderr
    assert not logged_in.requests


def test_role_definition_list_and_delete(logged_in: LiveService) -> None:
    sub = f"/subscriptions/{logged_in.sub}"
    action = "Microsoft.ContainerRegistry/registries/importImage/action"
    custom = ok_json(
        "role",
        "definition",
        "create",
        "--role-definition",
        json.dumps({"Name": "Importer", "Actions": [action]}),
    )
    assert custom["id"] == f"{sub}{AUTHZ}/roleDefinitions/{custom['name']}"
    assert [r["name"] for r in ok_json("role", "definition", "list", "--custom-role-only")] == [
        custom["name"]
    ]
    ok("role", "definition", "list", "--name", "Importer")
    assert (
        logged_in.seen("GET", "/roleDefinitions")[-1].query["$filter"] == "roleName eq 'Importer'"
    )
    assert (
        ok("role", "definition", "delete", "--name", "importer").stdout
        == "Deleted role 'Importer'.\n"
    )
    assert logged_in.seen("DELETE")[0].path == custom["id"]
    assert ok_json("role", "definition", "list", "--custom-role-only") == []
    result = run("role", "definition", "delete", "--name", "Nope")
    assert result.exit_code == 1 and "Role 'Nope' doesn't exist." in result.stderr


# -- registry settings ---------------------------------------------------------------------


def test_registry_update_sends_only_what_is_given(logged_in: LiveService) -> None:
    create_registry(logged_in)
    result = ok(
        "registry",
        "update",
        "-n",
        "myregistry",
        "--admin-enabled",
        "true",
        "--anonymous-pull-enabled",
        "FALSE",
        "--public-network-enabled",
        "false",
        "--default-action",
        "deny",
        "--allow-trusted-services",
        "false",
    )
    [patch] = logged_in.seen("PATCH")
    assert patch.query == {"api-version": "2025-04-01"}
    assert patch.body == {
        "properties": {
            "adminUserEnabled": True,
            "anonymousPullEnabled": False,
            "publicNetworkAccess": "Disabled",
            "networkRuleSet": {"defaultAction": "Deny"},
            "networkRuleBypassOptions": "None",
        }
    }
    # Name, admin, anonymous pull, public access, default action, IP rules (none), bypass.
    assert result.stdout.splitlines()[1].split() == [
        "myregistry",
        "true",
        "false",
        "Disabled",
        "Deny",
        "false",
    ]
    ok("registry", "update", "-n", "myregistry", "--allow-trusted-services", "true")
    assert logged_in.seen("PATCH")[-1].body == {
        "properties": {"networkRuleBypassOptions": "AzureServices"}
    }
    held = ok_json("registry", "show", "myregistry")["properties"]
    assert (held["adminUserEnabled"], held["publicNetworkAccess"]) == (True, "Disabled")
    assert held["networkRuleSet"]["defaultAction"] == "Deny"
    assert held["networkRuleBypassOptions"] == "AzureServices"
    result = run("registry", "update", "-n", "myregistry")
    assert result.exit_code == 2 and "nothing to update" in result.stderr
    result = run("registry", "update", "-n", "myregistry", "--admin-enabled", "maybe")
    assert result.exit_code == 2


def test_network_rules_are_read_modified_and_written_keeping_the_default_action(
    logged_in: LiveService,
) -> None:
    create_registry(logged_in)
    ok("registry", "update", "-n", "myregistry", "--default-action", "deny")
    ok("registry", "network-rule", "add", "-n", "myregistry", "--ip-address", "10.0.0.0/24")
    logged_in.requests.clear()
    rules = ok_json(
        "registry", "network-rule", "add", "-n", "myregistry", "--ip-address", "192.0.2.7"
    )
    assert logged_in.seen("PATCH")[-1].body == {
        "properties": {
            "networkRuleSet": {
                "defaultAction": "Deny",
                "ipRules": [
                    {"action": "Allow", "value": "10.0.0.0/24"},
                    {"action": "Allow", "value": "192.0.2.7/32"},
                ],
            }
        }
    }
    assert rules["defaultAction"] == "Deny" and len(rules["ipRules"]) == 2
    ok(
        "registry", "network-rule", "add", "-n", "myregistry", "--ip-address", "192.0.2.7/32"
    )  # already there
    assert len(logged_in.seen("PATCH")[-1].body["properties"]["networkRuleSet"]["ipRules"]) == 2
    result = ok(
        "registry", "network-rule", "remove", "-n", "myregistry", "--ip-address", "10.0.0.1/24"
    )
    assert result.stdout.splitlines() == ["ACTION  IP ADDRESS OR RANGE", "Allow   192.0.2.7/32"]
    result = run(
        "registry", "network-rule", "remove", "-n", "myregistry", "--ip-address", "10.0.0.0/24"
    )
    assert (
        result.exit_code == 1
        and "registry 'myregistry' has no IP rule 10.0.0.0/24" in result.stderr
    )
    result = run(
        "registry", "network-rule", "add", "-n", "myregistry", "--ip-address", "10.0.0.300"
    )
    assert (
        result.exit_code == 2 and "'10.0.0.300' is not an IP address or CIDR range" in result.stderr
    )
    ok("registry", "network-rule", "remove", "-n", "myregistry", "--ip-address", "192.0.2.7")
    result = ok("registry", "network-rule", "list", "-n", "myregistry")
    assert "No IP rules (default action: Deny)." in result.stderr


def test_admin_credential_show_and_renew(logged_in: LiveService) -> None:
    create_registry(logged_in)
    ok("registry", "update", "-n", "myregistry", "--admin-enabled", "true")
    result = ok("registry", "credential", "show", "-n", "myregistry")
    shown = logged_in.seen("POST", "/listCredentials")[-1].reply
    first, second = (p["value"] for p in shown["passwords"])
    assert result.stdout.splitlines()[1].split() == ["myregistry", first, second]
    renewed = ok_json(
        "registry", "credential", "renew", "-n", "myregistry", "--password-name", "password2"
    )
    assert logged_in.seen("POST", "/regenerateCredential")[0].body == {"name": "password2"}
    values = [p["value"] for p in renewed["passwords"]]
    assert values[0] == first and values[1] != second
    result = run(
        "registry", "credential", "renew", "-n", "myregistry", "--password-name", "password3"
    )
    assert result.exit_code == 2


# -- scope maps and tokens -----------------------------------------------------------------


def test_repository_options_take_a_repository_and_its_actions() -> None:
    assert join_greedy(
        [
            "-r",
            "x",
            "--repository",
            "a/b",
            "content/read",
            "content/write",
            "--repository=c",
            "metadata/read",
            "-o",
            "json",
        ],
        ("--repository",),
    ) == [
        "-r",
        "x",
        "--repository",
        "a/b content/read content/write",
        "--repository",
        "c metadata/read",
        "-o",
        "json",
    ]
    assert join_greedy(["--repository", "--", "--repository", "x"], ("--repository",)) == [
        "--repository",
        "--",
        "--repository",
        "x",
    ]


def test_scope_map_create_update_and_errors(logged_in: LiveService) -> None:
    reg_id = create_registry(logged_in)
    url = f"{reg_id}/scopeMaps/app-rw"
    result = ok(
        "registry",
        "scope-map",
        "create",
        "-r",
        "myregistry",
        "-n",
        "app-rw",
        "--repository",
        "team/app",
        "content/read",
        "content/write",
        "--repository",
        "samples/*",
        "content/read",
        "--description",
        "CI",
    )
    [put] = logged_in.seen("PUT")
    assert put.path == url
    assert put.body == {
        "properties": {
            "description": "CI",
            "actions": [
                "repositories/team/app/content/read",
                "repositories/team/app/content/write",
                "repositories/samples/*/content/read",
            ],
        }
    }
    assert "app-rw" in result.stdout and "UserDefined" in result.stdout

    ok(
        "registry",
        "scope-map",
        "update",
        "-r",
        "myregistry",
        "-n",
        "app-rw",
        "--add-repository",
        "team/app",
        "content/delete",
        "--remove-repository",
        "team/app",
        "content/write",
    )
    assert logged_in.seen("PUT")[-1].body == {
        "properties": {
            "description": "CI",
            "actions": [
                "repositories/team/app/content/read",
                "repositories/samples/*/content/read",
                "repositories/team/app/content/delete",
            ],
        }
    }
    ok(
        "registry",
        "scope-map",
        "update",
        "-r",
        "myregistry",
        "-n",
        "app-rw",
        "--repository",
        "x",
        "metadata/read",
        "--description",
        "new",
    )
    assert logged_in.seen("PUT")[-1].body == {
        "properties": {"description": "new", "actions": ["repositories/x/metadata/read"]}
    }
    held = ok_json("registry", "scope-map", "show", "-r", "myregistry", "-n", "app-rw")
    assert held["properties"]["actions"] == ["repositories/x/metadata/read"]

    for args, message in [
        (["--repository", "team/app"], "give the actions after the repository"),
        (["--repository", "team/app", "content/eat"], "'content/eat' is not one of content/read"),
        ([], "give at least one --repository"),
    ]:
        result = run("registry", "scope-map", "create", "-r", "myregistry", "-n", "app-rw", *args)
        assert result.exit_code == 2 and message in result.stderr, result.output
    result = run("registry", "scope-map", "update", "-r", "myregistry", "-n", "app-rw")
    assert result.exit_code == 2 and "nothing to update" in result.stderr

    ok(
        "registry",
        "token",
        "create",
        "-r",
        "myregistry",
        "-n",
        "user1",
        "--scope-map",
        "app-rw",
        "--no-passwords",
    )
    result = run("registry", "scope-map", "delete", "-r", "myregistry", "-n", "app-rw", "--yes")
    error = logged_in.seen("DELETE")[-1].reply["error"]
    assert result.exit_code == 1 and f"({error['code']}) {error['message']}" in result.stderr
    assert error["code"] == "ScopeMapInUse"


def test_token_create_with_repositories_makes_a_scope_map_and_prints_passwords_once(
    logged_in: LiveService,
) -> None:
    reg_id = create_registry(logged_in)
    result = ok(
        "registry",
        "token",
        "create",
        "-r",
        "myregistry",
        "-n",
        "team-puller",
        "--repository",
        "team/*",
        "content/read",
        "metadata/read",
        "--expiration-in-days",
        "30",
    )
    scope_map, token = logged_in.seen("PUT")
    assert scope_map.path == f"{reg_id}/scopeMaps/team-puller-scope-map"
    assert scope_map.body["properties"]["actions"] == [
        "repositories/team/*/content/read",
        "repositories/team/*/metadata/read",
    ]
    assert token.body == {
        "properties": {
            "scopeMapId": f"{reg_id}/scopeMaps/team-puller-scope-map",
            "status": "enabled",
        }
    }
    [generate] = logged_in.seen("POST", "/generateCredentials")
    assert generate.body["tokenId"] == f"{reg_id}/tokens/team-puller"
    assert generate.body["expiry"].endswith("Z") and "name" not in generate.body
    first, second = (p["value"] for p in generate.reply["passwords"])
    assert "Created scope map 'team-puller-scope-map'." in result.stderr
    assert "The passwords are shown only this once" in result.stderr
    assert "Username: team-puller" in result.stdout
    assert f"password1      {first}" in result.stdout and second in result.stdout

    shown = ok_json(
        "registry",
        "token",
        "create",
        "-r",
        "myregistry",
        "-n",
        "team-puller2",
        "--scope-map",
        "_repositories_pull",
    )
    assert shown["name"] == "team-puller2"
    generated = logged_in.seen("POST", "/generateCredentials")[-1]
    assert (
        shown["properties"]["credentials"]["passwords"][0]["value"]
        == (generated.reply["passwords"][0]["value"])
    )
    assert (
        logged_in.seen("PUT")[-1]
        .body["properties"]["scopeMapId"]
        .endswith("/scopeMaps/_repositories_pull")
    )
    assert "expiry" not in generated.body

    posts = len(logged_in.seen("POST", "/generateCredentials"))
    ok(
        "registry",
        "token",
        "create",
        "-r",
        "myregistry",
        "-n",
        "team-puller3",
        "--scope-map",
        "_repositories_pull",
        "--no-passwords",
        "--status",
        "disabled",
    )
    assert len(logged_in.seen("POST", "/generateCredentials")) == posts
    assert logged_in.seen("PUT")[-1].body["properties"]["status"] == "disabled"
    held = ok_json("registry", "token", "show", "-r", "myregistry", "-n", "team-puller3")
    assert held["properties"]["status"] == "disabled"

    for args, message in [
        ([], "give either --scope-map or --repository"),
        (
            ["--scope-map", "m", "--repository", "a", "content/read"],
            "give either --scope-map or --repository",
        ),
        (["--scope-map", "m", "--expiration", "2001-01-01T00:00:00Z"], "is not in the future"),
        (["--scope-map", "m", "--expiration", "soon"], "'soon' is not an ISO 8601 time"),
        (
            ["--scope-map", "m", "--expiration", "2999-01-01", "--expiration-in-days", "3"],
            "use only one of",
        ),
    ]:
        requests = len(logged_in.requests)
        result = run("registry", "token", "create", "-r", "myregistry", "-n", "t1234", *args)
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(logged_in.requests) == requests


def test_token_list_show_update_delete_and_generate(logged_in: LiveService) -> None:
    reg_id = create_registry(logged_in)
    ok(
        "registry",
        "token",
        "create",
        "-r",
        "myregistry",
        "-n",
        "ci-pusher",
        "--scope-map",
        "_repositories_push",
        "--expiration",
        "2999-03-01T00:00:00Z",
    )
    created = logged_in.seen("PUT", "/tokens/ci-pusher")[-1].reply
    lines = ok("registry", "token", "list", "-r", "myregistry").stdout.splitlines()
    assert lines[1].split()[:3] == ["ci-pusher", "_repositories_push", "enabled"]
    assert lines[1].split()[4:] == [
        "password1",
        "(expires",
        "2999-03-01T00:00:00Z),",
        "password2",
        "(expires",
        "2999-03-01T00:00:00Z)",
    ]
    token = ok_json("registry", "token", "show", "-r", "myregistry", "-n", "ci-pusher")
    assert token["id"] == created["id"] == f"{reg_id}/tokens/ci-pusher"

    ok("registry", "token", "update", "-r", "myregistry", "-n", "ci-pusher", "--status", "disabled")
    assert logged_in.seen("PUT")[-1].body == {
        "properties": {"scopeMapId": f"{reg_id}/scopeMaps/_repositories_push", "status": "disabled"}
    }
    held = ok_json("registry", "token", "show", "-r", "myregistry", "-n", "ci-pusher")
    assert held["properties"]["status"] == "disabled"

    result = ok(
        "registry",
        "token",
        "credential",
        "generate",
        "-r",
        "myregistry",
        "-n",
        "ci-pusher",
        "--password2",
    )
    generate = logged_in.seen("POST", "/generateCredentials")[-1]
    assert generate.body == {"tokenId": f"{reg_id}/tokens/ci-pusher", "name": "password2"}
    [new] = generate.reply["passwords"]
    assert new["value"] in result.stdout and "never" in result.stdout
    ok(
        "registry",
        "token",
        "credential",
        "generate",
        "-r",
        "myregistry",
        "-n",
        "ci-pusher",
        "--password1",
        "--password2",
    )
    assert "name" not in logged_in.seen("POST", "/generateCredentials")[-1].body

    assert ok(
        "registry", "token", "delete", "-r", "myregistry", "-n", "ci-pusher", "-y"
    ).stdout == ("Deleted token 'ci-pusher'.\n")
    assert (
        "did not exist"
        in ok("registry", "token", "delete", "-r", "myregistry", "-n", "ci-pusher", "-y").stdout
    )


def test_commands_use_the_registry_of_another_resource_group(logged_in: LiveService) -> None:
    ok("group", "create", "-n", "other-rg")
    create_registry(logged_in, "myregistry", "-g", "other-rg")
    other = logged_in.arm_id("myregistry", "other-rg")
    result = ok("registry", "token", "list", "-r", "myregistry", "-g", "other-rg")
    assert "No tokens." in result.stderr
    assert logged_in.seen("GET", "/tokens")[0].path == f"{other}/tokens"


# -- help ----------------------------------------------------------------------------------

COMMANDS = [
    ["identity", "sp", "create"],
    ["identity", "sp", "list"],
    ["identity", "sp", "show"],
    ["identity", "sp", "delete"],
    ["identity", "sp", "credential", "reset"],
    ["identity", "user", "create"],
    ["identity", "user", "list"],
    ["identity", "user", "delete"],
    ["identity", "tenant", "create"],
    ["identity", "subscription", "create"],
    ["group", "create"],
    ["group", "list"],
    ["group", "show"],
    ["group", "delete"],
    ["role", "assignment", "create"],
    ["role", "assignment", "list"],
    ["role", "assignment", "delete"],
    ["role", "definition", "create"],
    ["role", "definition", "list"],
    ["role", "definition", "delete"],
    ["registry", "update"],
    ["registry", "credential", "show"],
    ["registry", "credential", "renew"],
    ["registry", "network-rule", "add"],
    ["registry", "network-rule", "remove"],
    ["registry", "network-rule", "list"],
    ["registry", "scope-map", "create"],
    ["registry", "scope-map", "update"],
    ["registry", "scope-map", "list"],
    ["registry", "scope-map", "show"],
    ["registry", "scope-map", "delete"],
    ["registry", "token", "create"],
    ["registry", "token", "update"],
    ["registry", "token", "list"],
    ["registry", "token", "show"],
    ["registry", "token", "delete"],
    ["registry", "token", "credential", "generate"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_access_command_has_help_with_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert "transship " + " ".join(command) in result.output
    assert "--output" in result.output


@pytest.mark.parametrize(
    "group",
    [
        ["identity"],
        ["identity", "sp"],
        ["group"],
        ["role"],
        ["role", "assignment"],
        ["registry", "token"],
        ["registry", "scope-map"],
        ["registry", "network-rule"],
    ],
    ids=" ".join,
)
def test_groups_list_their_commands(group: list[str]) -> None:
    result = CliRunner().invoke(main, [*group, "--help"])
    assert result.exit_code == 0 and "Commands:" in result.output


def test_the_credential_of_the_login_is_never_printed(logged_in: LiveService) -> None:
    """`run` asserts the login's secret is absent from every output; this exercises a
    failing and a succeeding command once more with the owner's client id visible."""
    result = run("registry", "list")
    assert result.exit_code == 0 and logged_in.client_id not in result.output
