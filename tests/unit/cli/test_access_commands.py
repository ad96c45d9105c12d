"""The identity and access commands (identity, group, role, registry update / credential /
network-rule / scope-map / token) against the fake server: the requests they send, what they
print, and their errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.unit.cli.fake_service import (
    CLIENT_ID,
    GROUP,
    PROVIDER,
    SUB,
    TENANT,
    FakeService,
    arm_id,
    registry_resource,
    run,
)
from transship.cli.common import join_greedy
from transship.cli.main import main

AUTHZ = "/providers/Microsoft.Authorization"
SUB_SCOPE = f"/subscriptions/{SUB}"
REG_ID = arm_id("myregistry")
SP_APP_ID = "5a1e0000-0000-4000-8000-00000000a991"
SP_OBJECT_ID = "5a1e0000-0000-4000-8000-00000000b0b1"
SP_SECRET = "sp-Secret-0123456789abcdef"
ALICE_ID = "a11ce000-0000-4000-8000-000000000001"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"


def sp_body(secret: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": SP_OBJECT_ID,
        "objectId": SP_OBJECT_ID,
        "tenantId": TENANT,
        "kind": "ServicePrincipal",
        "displayName": "ci",
        "appId": SP_APP_ID,
        **extra,
    }
    if secret:
        body["password"] = SP_SECRET
        body["credential"] = {
            "keyId": "k1",
            "hint": SP_SECRET[:3],
            "endDateTime": "2027-01-01T00:00:00Z",
        }
    return body


USER_BODY = {
    "id": ALICE_ID,
    "objectId": ALICE_ID,
    "tenantId": TENANT,
    "kind": "User",
    "displayName": "alice",
    "userName": "alice",
}


def role_body(
    guid: str = ACR_PULL, name: str = "AcrPull", kind: str = "BuiltInRole"
) -> dict[str, Any]:
    return {
        "id": f"{AUTHZ}/roleDefinitions/{guid}",
        "name": guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": name,
            "description": f"{name} role",
            "type": kind,
            "permissions": [
                {"actions": ["x"], "notActions": [], "dataActions": [], "notDataActions": []}
            ],
            "assignableScopes": ["/"],
        },
    }


def assignment_body(
    guid: str, scope: str, principal: str = SP_OBJECT_ID, role: str = ACR_PULL
) -> dict[str, Any]:
    prefix = "" if scope == "/" else scope
    return {
        "id": f"{prefix}{AUTHZ}/roleAssignments/{guid}",
        "name": guid,
        "properties": {
            "roleDefinitionId": f"{prefix}{AUTHZ}/roleDefinitions/{role}",
            "principalId": principal,
            "principalType": "ServicePrincipal",
            "scope": scope,
        },
    }


def ok(*args: str, input: str | None = None) -> Any:
    result = run(*args, input=input, secrets=())
    assert result.exit_code == 0, result.output
    return result


# -- identity ------------------------------------------------------------------------------


def test_sp_create_prints_the_secret_once_or_writes_it_to_a_file(
    logged_in: FakeService, tmp_path: Path
) -> None:
    logged_in.answer("POST", "/transship/v1/servicePrincipals", (201, sp_body()))
    result = ok("identity", "sp", "create", "--display-name", "ci")
    [post] = logged_in.seen("POST", "/servicePrincipals")
    assert post.body == {"displayName": "ci", "years": 1}
    assert post.headers["Authorization"].startswith("Bearer ")
    assert "DISPLAY NAME" in result.stdout and SP_APP_ID in result.stdout
    assert f"Client secret: {SP_SECRET}" in result.stdout
    assert "The secret is shown only this once" in result.stderr

    result = ok("identity", "sp", "create", "-n", "ci", "--years", "3", "-o", "json")
    assert json.loads(result.stdout)["password"] == SP_SECRET
    assert logged_in.seen("POST", "/servicePrincipals")[-1].body == {
        "displayName": "ci",
        "years": 3,
    }

    target = tmp_path / "ci.json"
    result = ok(
        "identity", "sp", "create", "-n", "ci", "--credential-file", str(target), "-o", "json"
    )
    assert SP_SECRET not in result.output
    shown = json.loads(result.stdout)
    assert "password" not in shown and shown["credential"]["hint"] == SP_SECRET[:3]
    assert json.loads(target.read_text()) == {
        "tenantId": TENANT,
        "clientId": SP_APP_ID,
        "clientSecret": SP_SECRET,
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


def test_sp_list_show_reset_and_delete(logged_in: FakeService) -> None:
    logged_in.answer("GET", "/transship/v1/servicePrincipals", (200, {"value": [sp_body(False)]}))
    result = ok("identity", "sp", "list")
    assert result.stdout.split("\n")[0].split() == ["DISPLAY", "NAME", "APP", "ID", "OBJECT", "ID"]
    assert SP_APP_ID in result.stdout

    secrets = [{"keyId": "k1", "hint": "abc", "endDateTime": "2027-01-01T00:00:00.123Z"}]
    logged_in.answer(
        "GET",
        f"/transship/v1/servicePrincipals/{SP_APP_ID}",
        (200, sp_body(False, passwordCredentials=secrets)),
    )
    assert (
        "abc… until 2027-01-01T00:00:00" in ok("identity", "sp", "show", "--id", SP_APP_ID).stdout
    )

    logged_in.answer(
        "POST", f"/transship/v1/servicePrincipals/{SP_APP_ID}/credentials/reset", (200, sp_body())
    )
    result = ok(
        "identity", "sp", "credential", "reset", "--id", SP_APP_ID, "--append", "--years", "2"
    )
    assert logged_in.seen("POST", "/credentials/reset")[0].body == {"append": True, "years": 2}
    assert f"Client secret: {SP_SECRET}" in result.stdout

    logged_in.answer("DELETE", f"/transship/v1/servicePrincipals/{SP_APP_ID}", (204, None))
    result = run("identity", "sp", "delete", "--id", SP_APP_ID, input="n\n")
    assert result.exit_code == 1 and not logged_in.seen("DELETE")
    result = ok("identity", "sp", "delete", "--id", SP_APP_ID, "--yes")
    assert result.stdout == f"Deleted service principal '{SP_APP_ID}'.\n"
    assert logged_in.seen("DELETE")[0].path == f"/transship/v1/servicePrincipals/{SP_APP_ID}"

    # The directory finds any principal by any id: sp delete does not delete a user.
    logged_in.answer("GET", "/transship/v1/servicePrincipals/alice", (200, USER_BODY))
    result = run("identity", "sp", "delete", "--id", "alice", "--yes")
    assert (
        result.exit_code == 1 and "'alice' is not a service principal but a User" in result.stderr
    )
    assert len(logged_in.seen("DELETE")) == 1


def test_user_create_list_delete(logged_in: FakeService) -> None:
    logged_in.answer("POST", "/transship/v1/users", (201, USER_BODY))
    result = ok(
        "identity",
        "user",
        "create",
        "--user-name",
        "alice",
        "--password-stdin",
        input="alice-pw-1234567\n",
    )
    assert logged_in.seen("POST", "/users")[0].body == {
        "userName": "alice",
        "password": "alice-pw-1234567",
    }
    assert "alice-pw-1234567" not in result.output and ALICE_ID in result.stdout
    result = ok(
        "identity", "user", "create", "-n", "alice", input="alice-pw-1234567\nalice-pw-1234567\n"
    )
    assert "Repeat for confirmation" in result.stderr
    logged_in.answer(
        "POST",
        "/transship/v1/users",
        (
            400,
            {
                "error": {
                    "code": "InvalidParameter",
                    "message": "password must have at least 12 characters.",
                    "target": "password",
                }
            },
        ),
    )
    result = run("identity", "user", "create", "-n", "bob", "-p", "short")
    assert result.exit_code == 1
    assert (
        "ERROR: (InvalidParameter) password must have at least 12 characters.\nTarget: password"
        in result.stderr
    )

    logged_in.answer("GET", "/transship/v1/users", (200, {"value": [USER_BODY]}))
    assert json.loads(ok("identity", "user", "list", "-o", "json").stdout) == [USER_BODY]
    logged_in.answer("GET", "/transship/v1/users/alice", (200, USER_BODY))
    logged_in.answer("DELETE", "/transship/v1/users/alice", (204, None))
    assert json.loads(
        ok("identity", "user", "delete", "--id", "alice", "-y", "-o", "json").stdout
    ) == {"id": "alice", "deleted": True}


def test_tenant_and_subscription_create(logged_in: FakeService, tmp_path: Path) -> None:
    tenant_id = "7e7e0000-0000-4000-8000-000000000001"
    subscription_id = "5b5b0000-0000-4000-8000-000000000001"
    created: dict[str, Any] = {
        "tenantId": tenant_id,
        "displayName": "Team B",
        "subscriptionId": "5b5b0000-0000-4000-8000-000000000001",
        "resourceGroup": "default",
        "owner": sp_body(),
    }
    logged_in.answer("PUT", f"/transship/v1/tenants/{tenant_id}", (201, created))
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
    assert logged_in.seen("PUT", "/tenants/")[0].body == {
        "displayName": "Team B",
        "subscriptionId": created["subscriptionId"],
    }
    assert SP_SECRET not in result.output and tenant_id in result.stdout
    assert json.loads(target.read_text()) == {
        "tenantId": tenant_id,
        "subscriptionId": created["subscriptionId"],
        "resourceGroup": "default",
        "clientId": SP_APP_ID,
        "clientSecret": SP_SECRET,
    }
    # The owner-credential.json format: `transship login --credential-file` takes it.
    result = run("identity", "tenant", "create", "-n", "Team C", "--tenant-id", "not-a-guid")
    assert result.exit_code == 2 and "'not-a-guid' is not a GUID" in result.stderr

    logged_in.answer(
        "PUT",
        f"/transship/v1/subscriptions/{SUB}",
        lambda body: (
            201,
            {
                "subscriptionId": SUB,
                "displayName": body["displayName"],
                "tenantId": body.get("tenantId", TENANT),
                "state": "Enabled",
            },
        ),
    )
    result = ok(
        "identity",
        "subscription",
        "create",
        "-n",
        "Staging",
        "--subscription-id",
        SUB,
        "--tenant",
        tenant_id,
    )
    assert logged_in.seen("PUT", "/transship/v1/subscriptions/")[0].body == {
        "displayName": "Staging",
        "tenantId": tenant_id,
    }
    assert "Staging" in result.stdout and "Enabled" in result.stdout
    run("identity", "subscription", "create", "-n", "Generated")  # without an id: a new GUID
    path = logged_in.seen("PUT", "/transship/v1/subscriptions/")[-1].path
    assert path != f"/transship/v1/subscriptions/{SUB}" and len(path.rsplit("/", 1)[1]) == 36


# -- groups --------------------------------------------------------------------------------


def test_group_create_list_show_delete(logged_in: FakeService) -> None:
    group = {
        "id": f"{SUB_SCOPE}/resourceGroups/team-a",
        "name": "team-a",
        "location": "local",
        "properties": {"provisioningState": "Succeeded"},
    }
    logged_in.answer("PUT", f"{SUB_SCOPE}/resourcegroups/team-a", (201, group))
    result = ok("group", "create", "--name", "team-a")
    [put] = logged_in.seen("PUT")
    assert put.body == {"location": "local"} and put.query == {"api-version": "2025-04-01"}
    assert result.stdout.split("\n")[1].split() == ["team-a", "local", "Succeeded"]
    ok("group", "create", "-g", "team-a", "--location", "west")
    assert logged_in.seen("PUT")[-1].body == {"location": "west"}

    logged_in.answer("GET", f"{SUB_SCOPE}/resourcegroups", (200, {"value": [group]}))
    assert json.loads(ok("group", "list", "-o", "json").stdout) == [group]
    logged_in.answer("GET", f"{SUB_SCOPE}/resourcegroups/team-a", (200, group))
    assert "team-a" in ok("group", "show", "-n", "team-a").stdout

    logged_in.answer(
        "DELETE",
        f"{SUB_SCOPE}/resourcegroups/team-a",
        (
            409,
            {
                "error": {
                    "code": "ResourceGroupNotEmpty",
                    "message": "Resource group 'team-a' still holds registries: r1.",
                }
            },
        ),
        (200, None),
        (204, None),
    )
    result = run("group", "delete", "-n", "team-a", "--yes")
    assert result.exit_code == 1 and "(ResourceGroupNotEmpty)" in result.stderr
    assert (
        ok("group", "delete", "-n", "team-a", "--yes").stdout
        == "Deleted resource group 'team-a'.\n"
    )
    assert (
        ok("group", "delete", "-n", "team-a", "--yes").stdout
        == "Resource group 'team-a' did not exist.\n"
    )


# -- roles ---------------------------------------------------------------------------------


def test_role_assignment_create_resolves_role_and_assignee(
    logged_in: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    guid = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    monkeypatch.setattr("transship.cli.commands_role.uuid.uuid4", lambda: guid)
    logged_in.answer("GET", f"{REG_ID}{AUTHZ}/roleDefinitions", (200, {"value": [role_body()]}))
    logged_in.answer("GET", f"/transship/v1/servicePrincipals/{SP_APP_ID}", (200, sp_body(False)))
    logged_in.answer(
        "PUT", f"{REG_ID}{AUTHZ}/roleAssignments/{guid}", (201, assignment_body(guid, REG_ID))
    )
    result = ok(
        "role",
        "assignment",
        "create",
        "--assignee",
        SP_APP_ID,
        "--role",
        "AcrPull",
        "--registry",
        "myregistry",
        "-o",
        "json",
    )
    [roles] = logged_in.seen("GET", "/roleDefinitions")
    assert roles.query == {"api-version": "2025-04-01", "$filter": "roleName eq 'AcrPull'"}
    assert logged_in.seen("GET", f"/servicePrincipals/{SP_APP_ID}")
    [sent] = logged_in.seen("PUT", "/roleAssignments/")
    assert sent.query == {"api-version": "2025-04-01"}
    assert sent.body == {
        "properties": {
            "roleDefinitionId": f"{AUTHZ}/roleDefinitions/{ACR_PULL}",
            "principalId": SP_OBJECT_ID,
        }
    }
    assert json.loads(result.stdout) == assignment_body(guid, REG_ID)


def test_role_assignment_create_output_and_errors(
    logged_in: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "transship.cli.commands_role.uuid.uuid4", lambda: "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    )
    guid = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    group_scope = f"{SUB_SCOPE}/resourceGroups/team-a"
    logged_in.answer(
        "GET", f"{group_scope}{AUTHZ}/roleDefinitions", (200, {"value": [role_body()]})
    )
    logged_in.answer("GET", "/transship/v1/users/alice", (200, USER_BODY))
    logged_in.answer(
        "PUT",
        f"{group_scope}{AUTHZ}/roleAssignments/{guid}",
        (201, assignment_body(guid, group_scope, ALICE_ID)),
    )
    result = ok(
        "role", "assignment", "create", "--assignee", "alice", "--role", "AcrPull", "-g", "team-a"
    )
    assert result.stdout.split("\n")[1].split() == [
        "alice",
        "ServicePrincipal",
        "AcrPull",
        group_scope,
    ]
    assert logged_in.seen("PUT")[0].body["properties"]["principalId"] == ALICE_ID

    # Unknown role: named, and nothing assigned.
    logged_in.answer("GET", f"{SUB_SCOPE}{AUTHZ}/roleDefinitions", (200, {"value": []}))
    result = run("role", "assignment", "create", "--assignee", "alice", "--role", "NoSuchRole")
    assert result.exit_code == 1 and result.stderr == "ERROR: Role 'NoSuchRole' doesn't exist.\n"
    logged_in.answer(
        "GET",
        f"{AUTHZ}/roleDefinitions/{ACR_PULL}",
        (404, {"error": {"code": "RoleDefinitionDoesNotExist", "message": "no"}}),
    )
    result = run(
        "role", "assignment", "create", "--assignee", "alice", "--role", ACR_PULL, "--scope", "/"
    )
    assert result.exit_code == 1 and f"Role '{ACR_PULL}' doesn't exist." in result.stderr

    # Unknown principal.
    logged_in.answer("GET", f"{SUB_SCOPE}{AUTHZ}/roleDefinitions", (200, {"value": [role_body()]}))
    logged_in.answer(
        "GET",
        "/transship/v1/users/nobody",
        (404, {"error": {"code": "PrincipalNotFound", "message": "x"}}),
    )
    result = run("role", "assignment", "create", "--assignee", "nobody", "--role", "AcrPull")
    assert result.exit_code == 1
    assert "Cannot find a user or service principal 'nobody' in the directory." in result.stderr
    assert len(logged_in.seen("PUT")) == 1

    # Without read access to the directory, the service resolves the name itself.
    logged_in.answer(
        "GET",
        "/transship/v1/users/bob",
        (403, {"error": {"code": "AuthorizationFailed", "message": "x"}}),
    )
    logged_in.answer(
        "PUT",
        f"{SUB_SCOPE}{AUTHZ}/roleAssignments/{guid}",
        (
            403,
            {
                "error": {
                    "code": "AuthorizationFailed",
                    "message": "The client 'x' does not have authorization to perform action "
                    "'Microsoft.Authorization/roleAssignments/write'",
                }
            },
        ),
    )
    result = run("role", "assignment", "create", "--assignee", "bob", "--role", "AcrPull")
    assert (
        result.exit_code == 1 and "'Microsoft.Authorization/roleAssignments/write'" in result.stderr
    )
    assert logged_in.seen("PUT")[-1].body["properties"]["principalId"] == "bob"

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


def test_role_assignment_list_filters_and_names(logged_in: FakeService) -> None:
    listed = [
        assignment_body("a1", REG_ID),
        assignment_body(
            "a2",
            "/",
            OWNER := "0b7e5e1c-2222-4a4a-8b8b-000000000002",
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        ),
    ]
    logged_in.answer("GET", f"{REG_ID}{AUTHZ}/roleAssignments", (200, {"value": listed}))
    logged_in.answer(
        "GET",
        f"{REG_ID}{AUTHZ}/roleDefinitions",
        (200, {"value": [role_body(), role_body("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner")]}),
    )
    logged_in.answer("GET", "/transship/v1/servicePrincipals", (200, {"value": [sp_body(False)]}))
    logged_in.answer(
        "GET",
        "/transship/v1/users",
        (403, {"error": {"code": "AuthorizationFailed", "message": "x"}}),
    )
    result = ok("role", "assignment", "list", "--registry", "myregistry")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PRINCIPAL", "PRINCIPAL", "TYPE", "ROLE", "SCOPE"]
    assert lines[1].split() == ["ci", "ServicePrincipal", "AcrPull", REG_ID]
    assert lines[2].split() == [OWNER, "ServicePrincipal", "Owner", "/"]

    logged_in.requests.clear()
    logged_in.answer("GET", f"/transship/v1/servicePrincipals/{SP_APP_ID}", (200, sp_body(False)))
    logged_in.answer("GET", f"{SUB_SCOPE}{AUTHZ}/roleAssignments", (200, {"value": listed}))
    logged_in.answer("GET", f"{SUB_SCOPE}{AUTHZ}/roleDefinitions", (200, {"value": [role_body()]}))
    shown = json.loads(
        ok(
            "role", "assignment", "list", "--assignee", SP_APP_ID, "--role", "AcrPull", "-o", "json"
        ).stdout
    )
    assert shown == [listed[0]]
    [query] = [r.query for r in logged_in.seen("GET", "/roleAssignments")]
    assert query["$filter"] == f"principalId eq '{SP_OBJECT_ID}'"


def test_role_assignment_delete_by_filter_or_ids(logged_in: FakeService) -> None:
    at_registry = assignment_body("a1", REG_ID)
    inherited = assignment_body("a2", SUB_SCOPE)
    logged_in.answer("GET", f"/transship/v1/servicePrincipals/{SP_APP_ID}", (200, sp_body(False)))
    logged_in.answer(
        "GET", f"{REG_ID}{AUTHZ}/roleAssignments", (200, {"value": [at_registry, inherited]})
    )
    logged_in.answer("GET", f"{REG_ID}{AUTHZ}/roleDefinitions", (200, {"value": [role_body()]}))
    logged_in.answer("DELETE", at_registry["id"], (200, at_registry))
    result = ok(
        "role",
        "assignment",
        "delete",
        "--assignee",
        SP_APP_ID,
        "--role",
        "AcrPull",
        "--registry",
        "myregistry",
    )
    assert [d.path for d in logged_in.seen("DELETE")] == [
        at_registry["id"]
    ]  # not the inherited one
    assert result.stdout == f"Deleted role assignment {at_registry['id']}.\n"

    logged_in.answer("GET", f"{REG_ID}{AUTHZ}/roleAssignments", (200, {"value": [inherited]}))
    result = run(
        "role", "assignment", "delete", "--assignee", SP_APP_ID, "--registry", "myregistry"
    )
    assert result.exit_code == 1 and "No matched assignments were found to delete." in result.stderr

    logged_in.requests.clear()
    logged_in.answer("DELETE", inherited["id"], (204, None))
    result = ok(
        "role", "assignment", "delete", "--ids", at_registry["id"], inherited["id"], "-o", "json"
    )
    assert [d.path for d in logged_in.seen("DELETE")] == [at_registry["id"], inherited["id"]]
    assert json.loads(result.stdout) == [at_registry]

    result = run("role", "assignment", "delete")
    assert result.exit_code == 2 and "give --ids, or --assignee and/or --role" in result.stderr
    result = run("role", "assignment", "delete", "--ids", at_registry["id"], "--role", "AcrPull")
    assert result.exit_code == 2 and "use either --ids or --assignee/--role" in result.stderr


def test_role_definition_create_from_inline_json_or_a_file(
    logged_in: FakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guid = "1b1b0000-0000-4000-8000-000000000001"
    monkeypatch.setattr("transship.cli.commands_role.uuid.uuid4", lambda: guid)
    created = role_body(guid, "Importer", "CustomRole")
    logged_in.answer("PUT", f"{SUB_SCOPE}{AUTHZ}/roleDefinitions/{guid}", (201, created))
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
    assert logged_in.seen("PUT")[0].body == {
        "properties": {
            "roleName": "Importer",
            "description": "imports",
            "permissions": [
                {"actions": [action], "notActions": [], "dataActions": [], "notDataActions": []}
            ],
            "assignableScopes": [SUB_SCOPE],
        }
    }
    assert result.stdout.split("\n")[1].split()[:3] == ["Importer", "CustomRole", guid]

    path = tmp_path / "role.json"
    path.write_text(
        json.dumps(
            {
                "roleName": "Importer",
                "actions": [action],
                "notActions": ["a"],
                "assignableScopes": [f"{SUB_SCOPE}/"],
            }
        )
    )
    for value in (str(path), f"@{path}"):
        ok("role", "definition", "create", "--role-definition", value)
        body = logged_in.seen("PUT")[-1].body["properties"]
        assert body["permissions"][0]["notActions"] == ["a"] and body["assignableScopes"] == [
            SUB_SCOPE
        ]

    logged_in.answer("PUT", f"{AUTHZ}/roleDefinitions/{guid}", (201, created))
    ok(
        "role",
        "definition",
        "create",
        "--role-definition",
        json.dumps({"Name": "R", "DataActions": ["d"], "AssignableScopes": ["/"]}),
    )
    assert logged_in.seen("PUT")[-1].path == f"{AUTHZ}/roleDefinitions/{guid}"


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
    logged_in: FakeService, value: str, message: str
) -> None:
    result = run("role", "definition", "create", "--role-definition", value)
    assert result.exit_code == 2 and message in result.stderr
    assert not logged_in.requests


def test_role_definition_list_and_delete(logged_in: FakeService) -> None:
    custom = role_body("1b1b0000-0000-4000-8000-000000000001", "Importer", "CustomRole")
    custom["id"] = f"{SUB_SCOPE}{AUTHZ}/roleDefinitions/{custom['name']}"
    logged_in.answer(
        "GET", f"{SUB_SCOPE}{AUTHZ}/roleDefinitions", (200, {"value": [role_body(), custom]})
    )
    assert [
        r["name"]
        for r in json.loads(
            ok("role", "definition", "list", "--custom-role-only", "-o", "json").stdout
        )
    ] == [custom["name"]]
    ok("role", "definition", "list", "--name", "Importer")
    assert (
        logged_in.seen("GET", "/roleDefinitions")[-1].query["$filter"] == "roleName eq 'Importer'"
    )
    logged_in.answer("DELETE", custom["id"], (200, custom))
    assert (
        ok("role", "definition", "delete", "--name", "importer").stdout
        == "Deleted role 'Importer'.\n"
    )
    assert logged_in.seen("DELETE")[0].path == custom["id"]
    result = run("role", "definition", "delete", "--name", "Nope")
    assert result.exit_code == 1 and "Role 'Nope' doesn't exist." in result.stderr


# -- registry settings ---------------------------------------------------------------------


def patched(logged_in: FakeService) -> None:
    """PATCH of myregistry merges properties into the fake's resource."""
    registry = logged_in.registries["myregistry"]

    def apply(body: Any) -> tuple[int, Any]:
        registry["properties"].update(body["properties"])
        return 200, registry

    logged_in.answer("PATCH", f"{GROUP}{PROVIDER}/registries/myregistry", apply)


def test_registry_update_sends_only_what_is_given(logged_in: FakeService) -> None:
    patched(logged_in)
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
    result = run("registry", "update", "-n", "myregistry")
    assert result.exit_code == 2 and "nothing to update" in result.stderr
    result = run("registry", "update", "-n", "myregistry", "--admin-enabled", "maybe")
    assert result.exit_code == 2


def test_network_rules_are_read_modified_and_written_keeping_the_default_action(
    logged_in: FakeService,
) -> None:
    patched(logged_in)
    logged_in.registries["myregistry"]["properties"]["networkRuleSet"] = {
        "defaultAction": "Deny",
        "ipRules": [{"action": "Allow", "value": "10.0.0.0/24"}],
    }
    rules = json.loads(
        ok(
            "registry",
            "network-rule",
            "add",
            "-n",
            "myregistry",
            "--ip-address",
            "192.0.2.7",
            "-o",
            "json",
        ).stdout
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


def test_admin_credential_show_and_renew(logged_in: FakeService) -> None:
    credentials = {
        "username": "myregistry",
        "passwords": [
            {"name": "password", "value": "p-one"},
            {"name": "password2", "value": "p-two"},
        ],
    }
    logged_in.answer(
        "POST", f"{GROUP}{PROVIDER}/registries/myregistry/listCredentials", (200, credentials)
    )
    result = ok("registry", "credential", "show", "-n", "myregistry")
    assert result.stdout.splitlines()[1].split() == ["myregistry", "p-one", "p-two"]
    logged_in.answer(
        "POST", f"{GROUP}{PROVIDER}/registries/myregistry/regenerateCredential", (200, credentials)
    )
    ok(
        "registry",
        "credential",
        "renew",
        "-n",
        "myregistry",
        "--password-name",
        "password2",
        "-o",
        "json",
    )
    assert logged_in.seen("POST", "/regenerateCredential")[0].body == {"name": "password2"}
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


def test_scope_map_create_update_and_errors(logged_in: FakeService) -> None:
    url = f"{REG_ID}/scopeMaps/app-rw"

    def echo(body: Any) -> tuple[int, Any]:
        return 200, {
            "id": url,
            "name": "app-rw",
            "properties": {**body["properties"], "type": "UserDefined"},
        }

    logged_in.answer("PUT", url, echo)
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
    assert logged_in.seen("PUT")[0].body == {
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

    logged_in.answer(
        "GET",
        url,
        echo(
            {
                "properties": {
                    "description": "CI",
                    "actions": [
                        "repositories/team/app/content/read",
                        "repositories/team/app/content/write",
                    ],
                }
            }
        ),
    )
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

    for args, message in [
        (["--repository", "team/app"], "give the actions after the repository"),
        (["--repository", "team/app", "content/eat"], "'content/eat' is not one of content/read"),
        ([], "give at least one --repository"),
    ]:
        result = run("registry", "scope-map", "create", "-r", "myregistry", "-n", "app-rw", *args)
        assert result.exit_code == 2 and message in result.stderr, result.output
    result = run("registry", "scope-map", "update", "-r", "myregistry", "-n", "app-rw")
    assert result.exit_code == 2 and "nothing to update" in result.stderr

    logged_in.answer(
        "DELETE", url, (409, {"error": {"code": "ScopeMapInUse", "message": "in use"}})
    )
    result = run("registry", "scope-map", "delete", "-r", "myregistry", "-n", "app-rw", "--yes")
    assert result.exit_code == 1 and "(ScopeMapInUse) in use" in result.stderr


def token_answer(
    name: str, scope_map: str, passwords: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "id": f"{REG_ID}/tokens/{name}",
        "name": name,
        "properties": {
            "creationDate": "2026-01-02T03:04:05Z",
            "scopeMapId": f"{REG_ID}/scopeMaps/{scope_map}",
            "status": "enabled",
            "credentials": {"passwords": passwords or []},
        },
    }


def test_token_create_with_repositories_makes_a_scope_map_and_prints_passwords_once(
    logged_in: FakeService,
) -> None:
    logged_in.answer(
        "PUT", f"{REG_ID}/scopeMaps/team-puller-scope-map", (201, {"name": "team-puller-scope-map"})
    )
    logged_in.answer(
        "PUT",
        f"{REG_ID}/tokens/team-puller",
        (201, token_answer("team-puller", "team-puller-scope-map")),
    )
    generated = {
        "username": "team-puller",
        "passwords": [
            {"name": "password1", "value": "tok-pw-1", "expiry": "2026-02-01T00:00:00Z"},
            {"name": "password2", "value": "tok-pw-2", "expiry": "2026-02-01T00:00:00Z"},
        ],
    }
    logged_in.answer("POST", f"{REG_ID}/generateCredentials", (200, generated))
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
    assert scope_map.body["properties"]["actions"] == [
        "repositories/team/*/content/read",
        "repositories/team/*/metadata/read",
    ]
    assert token.body == {
        "properties": {
            "scopeMapId": f"{REG_ID}/scopeMaps/team-puller-scope-map",
            "status": "enabled",
        }
    }
    [generate] = logged_in.seen("POST", "/generateCredentials")
    assert generate.body["tokenId"] == f"{REG_ID}/tokens/team-puller"
    assert generate.body["expiry"].endswith("Z") and "name" not in generate.body
    assert "Created scope map 'team-puller-scope-map'." in result.stderr
    assert "The passwords are shown only this once" in result.stderr
    assert "Username: team-puller" in result.stdout
    assert "password1      tok-pw-1" in result.stdout and "tok-pw-2" in result.stdout

    shown = json.loads(
        ok(
            "registry",
            "token",
            "create",
            "-r",
            "myregistry",
            "-n",
            "team-puller",
            "--scope-map",
            "_repositories_pull",
            "-o",
            "json",
        ).stdout
    )
    assert shown["name"] == "team-puller"
    assert shown["properties"]["credentials"]["passwords"][0]["value"] == "tok-pw-1"
    assert (
        logged_in.seen("PUT")[-1]
        .body["properties"]["scopeMapId"]
        .endswith("/scopeMaps/_repositories_pull")
    )
    assert "expiry" not in logged_in.seen("POST", "/generateCredentials")[-1].body

    posts = len(logged_in.seen("POST", "/generateCredentials"))
    result = ok(
        "registry",
        "token",
        "create",
        "-r",
        "myregistry",
        "-n",
        "team-puller",
        "--scope-map",
        "m",
        "--no-passwords",
        "--status",
        "disabled",
    )
    assert len(logged_in.seen("POST", "/generateCredentials")) == posts
    assert logged_in.seen("PUT")[-1].body["properties"]["status"] == "disabled"

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


def test_token_list_show_update_delete_and_generate(logged_in: FakeService) -> None:
    token = token_answer(
        "ci-pusher",
        "_repositories_push",
        [
            {
                "name": "password1",
                "creationTime": "2026-01-01T00:00:00Z",
                "expiry": "2026-03-01T00:00:00Z",
            }
        ],
    )
    logged_in.answer("GET", f"{REG_ID}/tokens", (200, {"value": [token]}))
    lines = ok("registry", "token", "list", "-r", "myregistry").stdout.splitlines()
    assert lines[1].split() == [
        "ci-pusher",
        "_repositories_push",
        "enabled",
        "2026-01-02T03:04:05Z",
        "password1",
        "(expires",
        "2026-03-01T00:00:00Z)",
    ]
    logged_in.answer("GET", f"{REG_ID}/tokens/ci-pusher", (200, token))
    assert (
        json.loads(
            ok(
                "registry", "token", "show", "-r", "myregistry", "-n", "ci-pusher", "-o", "json"
            ).stdout
        )
        == token
    )

    logged_in.answer("PUT", f"{REG_ID}/tokens/ci-pusher", (200, token))
    ok("registry", "token", "update", "-r", "myregistry", "-n", "ci-pusher", "--status", "disabled")
    assert logged_in.seen("PUT")[-1].body == {
        "properties": {"scopeMapId": f"{REG_ID}/scopeMaps/_repositories_push", "status": "disabled"}
    }

    logged_in.answer(
        "POST",
        f"{REG_ID}/generateCredentials",
        (
            200,
            {
                "username": "ci-pusher",
                "passwords": [{"name": "password2", "value": "new-pw", "expiry": None}],
            },
        ),
    )
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
    assert logged_in.seen("POST", "/generateCredentials")[-1].body == {
        "tokenId": f"{REG_ID}/tokens/ci-pusher",
        "name": "password2",
    }
    assert "new-pw" in result.stdout and "never" in result.stdout
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

    logged_in.answer("DELETE", f"{REG_ID}/tokens/ci-pusher", (200, None), (204, None))
    assert ok(
        "registry", "token", "delete", "-r", "myregistry", "-n", "ci-pusher", "-y"
    ).stdout == ("Deleted token 'ci-pusher'.\n")
    assert (
        "did not exist"
        in ok("registry", "token", "delete", "-r", "myregistry", "-n", "ci-pusher", "-y").stdout
    )


def test_commands_use_the_registry_of_another_resource_group(logged_in: FakeService) -> None:
    other = arm_id("myregistry", "other-rg")
    logged_in.registries["myregistry"] = registry_resource("myregistry", group="other-rg")
    logged_in.answer("GET", f"{other}/tokens", (200, {"value": []}))
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


def test_the_credential_of_the_login_is_never_printed(logged_in: FakeService) -> None:
    """`run` asserts the login's secret is absent from every output; this exercises a
    failing and a succeeding command once more with the owner's client id visible."""
    result = run("registry", "list")
    assert result.exit_code == 0 and CLIENT_ID not in result.output
