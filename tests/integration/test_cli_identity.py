"""The real CLI against a real in-process server with identity and access control: login
with the owner credential, service principals and users, role assignments and a custom role,
registry tokens and scope maps, access settings and network rules — outputs, exit codes and
the server's own error messages."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from tests.support.app import (
    OCI_MANIFEST,
    RunningRegistry,
    image_manifest,
    make_settings,
    registry_in_thread,
    sha256,
)
from transship.cli.main import main

T = TypeVar("T")
REGISTRY = "myregistry"
LOGIN_SERVER = f"{REGISTRY}.localhost:5000"  # the default suffix: localhost:<configured port>
IMPORT_ACTION = "Microsoft.ContainerRegistry/registries/importImage/action"


@dataclass
class Live:
    """A server running on its own event loop in a background thread."""

    reg: RunningRegistry
    loop: asyncio.AbstractEventLoop
    data_dir: Path

    @property
    def url(self) -> str:
        return self.reg.url

    @property
    def owner(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.data_dir / "owner-credential.json").read_text())
        return data

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def data_plane(
        self,
        method: str,
        path: str,
        authorization: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[int, bytes]:
        """One request to the registry's data plane (Host = its login server)."""
        headers = {"Host": LOGIN_SERVER}
        if authorization:
            headers["Authorization"] = authorization
        if content_type:
            headers["Content-Type"] = content_type

        async def send() -> tuple[int, bytes]:
            async with self.reg.http.request(
                method, self.url + path, headers=headers, data=body, allow_redirects=False
            ) as response:
                return response.status, await response.read()

        return self.run(send())

    def push_image(self, repository: str, tag: str, authorization: str) -> None:
        config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repository}).encode()
        layer = b"layer of " + repository.encode()
        for blob in (config, layer):
            status, body = self.data_plane(
                "POST",
                f"/v2/{repository}/blobs/uploads/?digest={sha256(blob)}",
                authorization,
                blob,
            )
            assert status == 201, body
        status, body = self.data_plane(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            authorization,
            image_manifest(config, [layer]),
            OCI_MANIFEST,
        )
        assert status == 201, body


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, None, data_plane_auth=True)
    with registry_in_thread(settings) as (reg, loop):
        yield Live(reg, loop, data_dir)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("SERVER", "USERNAME", "PASSWORD", "TENANT", "USER_TYPE"):
        monkeypatch.delenv(f"TRANSSHIP_{name}", raising=False)
    yield


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, f"transship {' '.join(args)}:\n{result.output}"
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "-o", "json").stdout)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def owner_login(live: Live) -> None:
    result = ok(
        "login",
        "--server",
        live.url,
        "--credential-file",
        str(live.data_dir / "owner-credential.json"),
    )
    assert f"Logged in to {live.url} as service principal transship-owner" in result.stdout
    assert live.owner["clientSecret"] not in result.output


def registry_id(live: Live) -> str:
    owner = live.owner
    return (
        f"/subscriptions/{owner['subscriptionId']}/resourceGroups/{owner['resourceGroup']}"
        f"/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}"
    )


# -- tests -----------------------------------------------------------------------------------


def test_an_acrpull_service_principal_lists_repositories_and_may_change_nothing(
    live: Live, cli: None, tmp_path: Path
) -> None:
    owner_login(live)
    assert ok_json("registry", "create", REGISTRY)["properties"]["loginServer"] == LOGIN_SERVER
    owner_basic = basic(live.owner["clientId"], live.owner["clientSecret"])
    live.push_image("a/app", "v1", owner_basic)
    live.push_image("b/other", "v1", owner_basic)

    credential_file = tmp_path / "ci.json"
    result = ok(
        "identity",
        "sp",
        "create",
        "--display-name",
        "ci",
        "--credential-file",
        str(credential_file),
    )
    ci = json.loads(credential_file.read_text())
    assert ci["tenantId"] == live.owner["tenantId"] and ci["clientId"] in result.stdout
    assert ci["clientSecret"] not in result.output  # it went to the file only
    assert (credential_file.stat().st_mode & 0o777) == 0o600
    listed = ok_json("identity", "sp", "list")
    assert {sp["displayName"] for sp in listed} == {"ci", "transship-owner"}

    assigned = ok_json(
        "role",
        "assignment",
        "create",
        "--assignee",
        ci["clientId"],
        "--role",
        "AcrPull",
        "--registry",
        REGISTRY,
    )
    assert assigned["properties"]["scope"] == registry_id(live)
    assert assigned["properties"]["roleDefinitionId"].endswith(
        "7f951dda-4ed3-4680-a7ca-43fe172d538d"
    )
    table = ok("role", "assignment", "list", "--registry", REGISTRY).stdout
    assert any(
        line.split()[:3] == ["ci", "ServicePrincipal", "AcrPull"] for line in table.splitlines()
    )
    assert any(
        line.split()[:3] == ["transship-owner", "ServicePrincipal", "Owner"]
        for line in table.splitlines()
    )
    mine = ok_json("role", "assignment", "list", "--assignee", ci["clientId"])
    assert [a["properties"]["scope"] for a in mine] == [registry_id(live)]

    # The service principal logs in with -u/-p and lists repositories on the data plane.
    result = ok(
        "login",
        "--server",
        live.url,
        "--service-principal",
        "-u",
        ci["clientId"],
        "--password-stdin",
        "--tenant",
        ci["tenantId"],
        input=ci["clientSecret"] + "\n",
    )
    assert "as service principal ci" in result.stdout
    assert ok_json("repository", "list", "--name", REGISTRY) == ["a/app", "b/other"]
    assert ok_json("repository", "show-tags", "--name", REGISTRY, "--repository", "a/app") == ["v1"]

    # …but may not change the registry, nor read its settings, nor delete images.
    result = run("registry", "update", "-n", REGISTRY, "--admin-enabled", "true")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"ERROR: (AuthorizationFailed) The client '{ci['clientId']}' with object id "
    )
    assert (
        "perform action 'Microsoft.ContainerRegistry/registries/write' "
        f"over scope '{registry_id(live)}'" in result.stderr
    )
    result = run("registry", "show", REGISTRY)
    assert (
        result.exit_code == 1 and "'Microsoft.ContainerRegistry/registries/read'" in result.stderr
    )
    result = run("repository", "delete", "-n", REGISTRY, "--repository", "a/app", "--yes")
    assert result.exit_code == 1 and "UNAUTHORIZED" in result.stderr
    result = run("identity", "sp", "create", "-n", "sneaky")
    assert result.exit_code == 1 and "(AuthorizationFailed)" in result.stderr

    # A wrong secret is refused by the token endpoint, and nothing is saved.
    result = run(
        "login",
        "--server",
        live.url,
        "--service-principal",
        "-u",
        ci["clientId"],
        "-p",
        "not-the-secret",
        "--tenant",
        ci["tenantId"],
    )
    assert result.exit_code == 1
    assert (
        f"(invalid_client) the server refused the credential of '{ci['clientId']}'" in result.stderr
    )
    assert ok_json("repository", "list", "--name", REGISTRY) == ["a/app", "b/other"]  # still ci

    # The owner resets the secret: the old one stops working, a new login works.
    owner_login(live)
    reset = ok_json("identity", "sp", "credential", "reset", "--id", ci["clientId"])
    assert reset["appId"] == ci["clientId"] and reset["password"] != ci["clientSecret"]
    ok(
        "role",
        "assignment",
        "delete",
        "--assignee",
        ci["clientId"],
        "--role",
        "AcrPull",
        "--registry",
        REGISTRY,
    )
    assert ok_json("role", "assignment", "list", "--assignee", ci["clientId"]) == []
    result = run(
        "role",
        "assignment",
        "delete",
        "--assignee",
        ci["clientId"],
        "--role",
        "AcrPull",
        "--registry",
        REGISTRY,
    )
    assert result.exit_code == 1 and "No matched assignments were found to delete." in result.stderr
    ok("identity", "sp", "delete", "--id", ci["clientId"], "--yes")
    assert [sp["displayName"] for sp in ok_json("identity", "sp", "list")] == ["transship-owner"]


def test_a_user_logs_in_with_a_password_and_gets_a_role(live: Live, cli: None) -> None:
    owner_login(live)
    tenant = live.owner["tenantId"]
    created = ok_json(
        "identity", "user", "create", "--user-name", "alice", "--password", "alice-password-1"
    )
    assert created["userName"] == "alice" and "password" not in created
    result = run("identity", "user", "create", "--user-name", "bob", "--password", "short")
    assert (
        result.exit_code == 1
        and "(InvalidParameter) password must have at least 12 characters" in result.stderr
    )
    ok("group", "create", "--name", "team-a")
    assert {g["name"] for g in ok_json("group", "list")} == {"default", "team-a"}
    ok(
        "role",
        "assignment",
        "create",
        "--assignee",
        "alice",
        "--role",
        "Contributor",
        "--resource-group",
        "team-a",
    )

    result = run(
        "login",
        "--server",
        live.url,
        "-u",
        "alice",
        "--password",
        "wrong-password",
        "--tenant",
        tenant,
    )
    assert (
        result.exit_code == 1
        and "(invalid_grant) the server refused the credential of 'alice'" in result.stderr
    )
    result = run("login", "--server", live.url, "-u", "alice", "--password", "x")
    assert result.exit_code == 2 and "a user's login needs --tenant" in result.stderr
    result = ok(
        "login", "--server", live.url, "-u", "alice", "--tenant", tenant, input="alice-password-1\n"
    )
    assert "as user alice" in result.stdout
    created = ok_json("registry", "create", "teamregistry", "-g", "team-a")
    assert created["id"].endswith(
        "/resourceGroups/team-a/providers/Microsoft.ContainerRegistry/registries/teamregistry"
    )
    assert [r["name"] for r in ok_json("registry", "list")] == ["teamregistry"]
    result = run("registry", "create", "otherregistry")  # in the default group: not hers
    assert result.exit_code == 1 and "(AuthorizationFailed)" in result.stderr
    result = run(
        "role",
        "assignment",
        "create",
        "--assignee",
        "alice",
        "--role",
        "Owner",
        "--resource-group",
        "team-a",
    )
    assert result.exit_code == 1
    assert "'Microsoft.Authorization/roleAssignments/write'" in result.stderr

    owner_login(live)
    ok("registry", "delete", "teamregistry", "-g", "team-a", "--yes")
    ok("identity", "user", "delete", "--id", "alice", "--yes")
    assert ok_json("identity", "user", "list") == []
    ok("group", "delete", "--name", "team-a", "--yes")


def test_a_token_for_a_repository_pattern(live: Live, cli: None) -> None:
    owner_login(live)
    ok("registry", "create", REGISTRY)
    owner_basic = basic(live.owner["clientId"], live.owner["clientSecret"])
    live.push_image("a/app", "v1", owner_basic)
    live.push_image("b/other", "v1", owner_basic)

    result = ok(
        "registry",
        "token",
        "create",
        "-r",
        REGISTRY,
        "-n",
        "a-reader",
        "--repository",
        "a/*",
        "content/read",
        "metadata/read",
        "--expiration-in-days",
        "30",
    )
    assert "Created scope map 'a-reader-scope-map'." in result.stderr
    assert "The passwords are shown only this once" in result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["a-reader", "a-reader-scope-map", "enabled"] for line in lines)
    assert "Username: a-reader" in result.stdout
    passwords = {line.split()[0]: line.split()[1] for line in lines if line.startswith("password")}
    assert set(passwords) == {"password1", "password2"}

    scope_map = ok_json("registry", "scope-map", "show", "-r", REGISTRY, "-n", "a-reader-scope-map")
    assert scope_map["properties"]["actions"] == [
        "repositories/a/*/content/read",
        "repositories/a/*/metadata/read",
    ]
    token = ok_json("registry", "token", "show", "-r", REGISTRY, "-n", "a-reader")
    assert token["properties"]["scopeMapId"].endswith("/scopeMaps/a-reader-scope-map")
    assert [p["name"] for p in token["properties"]["credentials"]["passwords"]] == [
        "password1",
        "password2",
    ]
    assert all(p["expiry"] for p in token["properties"]["credentials"]["passwords"])
    assert "value" not in json.dumps(token)

    # The token pulls under a/, nothing else.
    for password in passwords.values():
        status, _ = live.data_plane("GET", "/v2/a/app/tags/list", basic("a-reader", password))
        assert status == 200
    status, _ = live.data_plane(
        "GET", "/v2/b/other/tags/list", basic("a-reader", passwords["password1"])
    )
    assert status == 403

    # Rotating password2 leaves password1 working.
    generated = ok_json(
        "registry",
        "token",
        "credential",
        "generate",
        "-r",
        REGISTRY,
        "-n",
        "a-reader",
        "--password2",
    )
    assert [p["name"] for p in generated["passwords"]] == ["password2"]
    assert (
        live.data_plane("GET", "/v2/a/app/tags/list", basic("a-reader", passwords["password2"]))[0]
        == 401
    )
    assert (
        live.data_plane(
            "GET", "/v2/a/app/tags/list", basic("a-reader", generated["passwords"][0]["value"])
        )[0]
        == 200
    )
    assert (
        live.data_plane("GET", "/v2/a/app/tags/list", basic("a-reader", passwords["password1"]))[0]
        == 200
    )

    # A scope map of its own, widened with update; a token on a system scope map.
    ok(
        "registry",
        "scope-map",
        "create",
        "-r",
        REGISTRY,
        "-n",
        "both-read",
        "--repository",
        "a/app",
        "content/read",
        "--description",
        "read a/app",
    )
    updated = ok_json(
        "registry",
        "scope-map",
        "update",
        "-r",
        REGISTRY,
        "-n",
        "both-read",
        "--add-repository",
        "b/other",
        "content/read",
        "metadata/read",
    )
    assert updated["properties"]["actions"] == [
        "repositories/a/app/content/read",
        "repositories/b/other/content/read",
        "repositories/b/other/metadata/read",
    ]
    assert updated["properties"]["description"] == "read a/app"
    names = [m["name"] for m in ok_json("registry", "scope-map", "list", "-r", REGISTRY)]
    assert {"_repositories_pull", "a-reader-scope-map", "both-read"} <= set(names)
    ok(
        "registry",
        "token",
        "create",
        "-r",
        REGISTRY,
        "-n",
        "puller",
        "--scope-map",
        "_repositories_pull",
        "--no-passwords",
    )
    assert {t["name"] for t in ok_json("registry", "token", "list", "-r", REGISTRY)} == {
        "a-reader",
        "puller",
    }
    disabled = ok_json(
        "registry", "token", "update", "-r", REGISTRY, "-n", "a-reader", "--status", "disabled"
    )
    assert disabled["properties"]["status"] == "disabled"
    assert (
        live.data_plane("GET", "/v2/a/app/tags/list", basic("a-reader", passwords["password1"]))[0]
        == 401
    )

    result = run(
        "registry", "scope-map", "delete", "-r", REGISTRY, "-n", "a-reader-scope-map", "--yes"
    )
    assert result.exit_code == 1 and "(ScopeMapInUse)" in result.stderr
    ok("registry", "token", "delete", "-r", REGISTRY, "-n", "a-reader", "--yes")
    ok("registry", "scope-map", "delete", "-r", REGISTRY, "-n", "a-reader-scope-map", "--yes")
    result = run(
        "registry",
        "token",
        "create",
        "-r",
        REGISTRY,
        "-n",
        "bad-token",
        "--repository",
        "a/app",
        "content/eat",
    )
    assert result.exit_code == 2 and "'content/eat' is not one of content/read" in result.stderr


def test_network_and_admin_settings_show_in_registry_show(live: Live, cli: None) -> None:
    owner_login(live)
    ok("registry", "create", REGISTRY)
    updated = ok(
        "registry",
        "update",
        "-n",
        REGISTRY,
        "--admin-enabled",
        "true",
        "--anonymous-pull-enabled",
        "true",
        "--allow-trusted-services",
        "false",
    )
    assert "ADMIN ENABLED" in updated.stdout
    ok("registry", "network-rule", "add", "-n", REGISTRY, "--ip-address", "10.0.0.0/24")
    rules = ok_json("registry", "network-rule", "add", "-n", REGISTRY, "--ip-address", "192.0.2.7")
    assert rules["ipRules"] == [
        {"action": "Allow", "value": "10.0.0.0/24"},
        {"action": "Allow", "value": "192.0.2.7/32"},
    ]
    ok(
        "registry",
        "update",
        "-n",
        REGISTRY,
        "--default-action",
        "Deny",
        "--public-network-enabled",
        "true",
    )
    # A rule added after Deny keeps Deny.
    rules = ok_json(
        "registry", "network-rule", "add", "-n", REGISTRY, "--ip-address", "2001:db8::/64"
    )
    assert rules["defaultAction"] == "Deny" and len(rules["ipRules"]) == 3
    rules = ok_json(
        "registry", "network-rule", "remove", "-n", REGISTRY, "--ip-address", "10.0.0.0/24"
    )
    assert [r["value"] for r in rules["ipRules"]] == ["192.0.2.7/32", "2001:db8::/64"]
    result = run(
        "registry", "network-rule", "remove", "-n", REGISTRY, "--ip-address", "10.0.0.0/24"
    )
    assert result.exit_code == 1 and "has no IP rule 10.0.0.0/24" in result.stderr
    result = run("registry", "network-rule", "add", "-n", REGISTRY, "--ip-address", "not-an-ip")
    assert (
        result.exit_code == 2 and "'not-an-ip' is not an IP address or CIDR range" in result.stderr
    )
    assert "192.0.2.7/32" in ok("registry", "network-rule", "list", "-n", REGISTRY).stdout

    shown = ok_json("registry", "show", REGISTRY)["properties"]
    assert shown["adminUserEnabled"] is True and shown["anonymousPullEnabled"] is True
    assert shown["publicNetworkAccess"] == "Enabled" and shown["networkRuleBypassOptions"] == "None"
    assert shown["networkRuleSet"] == {
        "defaultAction": "Deny",
        "ipRules": [
            {"action": "Allow", "value": "192.0.2.7/32"},
            {"action": "Allow", "value": "2001:db8::/64"},
        ],
    }
    # 127.0.0.1 matches no rule: the data plane refuses it, naming the address.
    status, body = live.data_plane("GET", "/v2/")
    assert status == 403 and b"127.0.0.1" in body

    credentials = ok_json("registry", "credential", "show", "-n", REGISTRY)
    assert credentials["username"] == REGISTRY
    before = {p["name"]: p["value"] for p in credentials["passwords"]}
    renewed = ok_json(
        "registry", "credential", "renew", "-n", REGISTRY, "--password-name", "password2"
    )
    after = {p["name"]: p["value"] for p in renewed["passwords"]}
    assert after["password"] == before["password"] and after["password2"] != before["password2"]
    ok("registry", "update", "-n", REGISTRY, "--admin-enabled", "false")
    result = run("registry", "credential", "show", "-n", REGISTRY)
    assert result.exit_code == 1 and "(AdminUserDisabled)" in result.stderr


def test_a_custom_role_that_may_only_import(live: Live, cli: None, tmp_path: Path) -> None:
    owner_login(live)
    ok("registry", "create", REGISTRY)
    live.push_image("a/app", "v1", basic(live.owner["clientId"], live.owner["clientSecret"]))
    importer = ok_json("identity", "sp", "create", "-n", "importer")

    definition = tmp_path / "importer.json"
    definition.write_text(
        json.dumps(
            {
                "Name": "Importer",
                "Description": "Imports images, nothing else.",
                "Actions": [IMPORT_ACTION],
                "NotActions": [],
                "DataActions": [],
                "NotDataActions": [],
                "AssignableScopes": [f"/subscriptions/{live.owner['subscriptionId']}"],
            }
        )
    )
    created = ok_json("role", "definition", "create", "--role-definition", str(definition))
    assert (
        created["properties"]["roleName"] == "Importer"
        and created["properties"]["type"] == "CustomRole"
    )
    assert created["properties"]["permissions"][0]["actions"] == [IMPORT_ACTION]
    [listed] = ok_json("role", "definition", "list", "--name", "Importer")
    assert listed["name"] == created["name"]
    assert [
        r["properties"]["roleName"]
        for r in ok_json("role", "definition", "list", "--custom-role-only")
    ] == ["Importer"]
    result = run(
        "role",
        "definition",
        "create",
        "--role-definition",
        json.dumps({"Name": "Importer", "Actions": [IMPORT_ACTION]}),
    )
    assert result.exit_code == 1 and "already exists" in result.stderr

    result = run(
        "role",
        "assignment",
        "create",
        "--assignee",
        importer["appId"],
        "--role",
        "NoSuchRole",
        "--registry",
        REGISTRY,
    )
    assert result.exit_code == 1 and "ERROR: Role 'NoSuchRole' doesn't exist." in result.stderr
    result = run(
        "role",
        "assignment",
        "create",
        "--assignee",
        "nobody",
        "--role",
        "Importer",
        "--registry",
        REGISTRY,
    )
    assert (
        result.exit_code == 1
        and "Cannot find a user or service principal 'nobody'" in result.stderr
    )
    assigned = ok_json(
        "role",
        "assignment",
        "create",
        "--assignee",
        importer["appId"],
        "--role",
        "Importer",
        "--registry",
        REGISTRY,
    )
    assert assigned["properties"]["principalId"] == importer["objectId"]

    ok(
        "login",
        "--server",
        live.url,
        "--service-principal",
        "-u",
        importer["appId"],
        "-p",
        importer["password"],
    )
    source = [
        "--source",
        "a/app:v1",
        "--registry",
        registry_id(live),
        "--image",
        "copy/app:v1",
        "--no-wait",
    ]
    # importImage is allowed on the target; pulling the source (the same registry) is not.
    result = run("import", "-n", REGISTRY, *source)
    assert result.exit_code == 1
    assert "(AuthorizationFailed)" in result.stderr and "(the import source)" in result.stderr
    result = run("registry", "show", REGISTRY)
    assert result.exit_code == 1
    assert (
        "does not have authorization to perform action "
        "'Microsoft.ContainerRegistry/registries/read'" in result.stderr
    )

    owner_login(live)
    ok(
        "role",
        "assignment",
        "create",
        "--assignee",
        importer["appId"],
        "--role",
        "AcrPull",
        "--registry",
        REGISTRY,
    )
    result = run("role", "definition", "delete", "--name", "Importer")
    assert result.exit_code == 1 and "(RoleDefinitionHasAssignments)" in result.stderr
    ok(
        "login",
        "--server",
        live.url,
        "--service-principal",
        "-u",
        importer["appId"],
        "-p",
        importer["password"],
    )
    started = ok_json("import", "-n", REGISTRY, *source)
    assert started["status"] in ("InProgress", "Succeeded")

    owner_login(live)
    ok(
        "role",
        "assignment",
        "delete",
        "--assignee",
        importer["appId"],
        "--role",
        "Importer",
        "--registry",
        REGISTRY,
    )
    ok("role", "definition", "delete", "--name", "Importer")
    result = run("role", "definition", "delete", "--name", "Importer")
    assert result.exit_code == 1 and "Role 'Importer' doesn't exist." in result.stderr


def test_a_tenant_of_its_own(live: Live, cli: None, tmp_path: Path) -> None:
    owner_login(live)
    owner_file = tmp_path / "team-owner.json"
    result = ok(
        "identity",
        "tenant",
        "create",
        "--display-name",
        "Team B",
        "--credential-file",
        str(owner_file),
    )
    team = json.loads(owner_file.read_text())
    assert set(team) == {"tenantId", "subscriptionId", "resourceGroup", "clientId", "clientSecret"}
    assert team["tenantId"] in result.stdout and team["clientSecret"] not in result.output
    sub = ok_json(
        "identity",
        "subscription",
        "create",
        "--display-name",
        "Team B staging",
        "--tenant",
        team["tenantId"],
    )
    assert sub["tenantId"] == team["tenantId"]

    result = ok("login", "--server", live.url, "--credential-file", str(owner_file))
    assert f"tenant {team['tenantId']}" in result.stdout
    assert ok_json("identity", "sp", "list")[0]["tenantId"] == team["tenantId"]
    ok("registry", "create", "teambregistry")
    assert [r["name"] for r in ok_json("registry", "list")] == ["teambregistry"]
    result = run("identity", "tenant", "create", "--display-name", "Team C")
    assert result.exit_code == 1
    assert "(AuthorizationFailed)" in result.stderr
    assert "'Microsoft.Directory/tenants/write' over scope '/'" in result.stderr
