"""The client commands (login, registry, import, repository) against a fake Transship server
(tests/unit/cli/fake_service.py), which records every request so the tests can assert
exactly what the CLI sent."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from tests.unit.cli.fake_service import (
    CLIENT_ID,
    GROUP,
    LOCATION,
    PROVIDER,
    RG,
    SECRET,
    SUB,
    SUCCEEDED,
    SUFFIX,
    TENANT,
    FakeService,
    arm_id,
    basic,
    operation,
    owner_file,
    profile_file,
    run,
)
from transship.cli import commands_import
from transship.cli.main import main
from transship.cli.progress import ImportProgress

DIGEST = "sha256:" + "ab" * 32

# -- login / logout ------------------------------------------------------------------------


def test_login_with_the_credential_file_saves_a_private_profile(
    service: FakeService, config_home: Path, tmp_path: Path
) -> None:
    result = run("login", "--server", service.url, "--credential-file", str(owner_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert (
        f"Logged in to {service.url} as service principal transship-owner ({CLIENT_ID}), tenant {TENANT}."
        in result.stdout
    )

    path = profile_file(config_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved == {
        "server": service.url,
        "type": "servicePrincipal",
        "tenantId": TENANT,
        "username": CLIENT_ID,
        "password": SECRET,
        "subscriptionId": SUB,
        "resourceGroup": RG,
        "location": LOCATION,
        "loginServerSuffix": SUFFIX,
        "version": "0.1.0",
    }
    [token] = service.token_requests()
    assert token.path == f"/{TENANT}/oauth2/v2.0/token"
    assert token.body == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "scope": f"{service.url}/.default",
    }
    [info] = service.seen("GET", "/transship/v1/info")
    assert info.headers["Authorization"] == "Bearer entra-1"


def test_login_reads_the_password_from_stdin_and_prints_json_without_it(
    service: FakeService, config_home: Path
) -> None:
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        CLIENT_ID,
        "--tenant",
        TENANT,
        "--password-stdin",
        "-o",
        "json",
        input=SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["server"] == service.url and shown["subscriptionId"] == SUB
    assert shown["type"] == "servicePrincipal" and shown["caller"]["name"] == "transship-owner"
    assert "password" not in shown
    assert json.loads(profile_file(config_home).read_text())["password"] == SECRET


def test_a_service_principal_without_tenant_learns_it_from_the_server(
    service: FakeService, config_home: Path
) -> None:
    result = run(
        "login", "--server", service.url, "--service-principal", "-u", CLIENT_ID, "-p", SECRET
    )
    assert result.exit_code == 0, result.output
    first, second = service.seen("GET", "/transship/v1/info")
    assert first.headers["Authorization"] == basic(CLIENT_ID, SECRET)  # to learn the tenant
    assert second.headers["Authorization"] == "Bearer entra-1"
    assert [t.path for t in service.token_requests()] == [f"/{TENANT}/oauth2/v2.0/token"]
    assert json.loads(profile_file(config_home).read_text())["tenantId"] == TENANT


def test_a_user_logs_in_with_the_password_grant(service: FakeService, config_home: Path) -> None:
    result = run(
        "login",
        "--server",
        service.url,
        "-u",
        "alice",
        "--tenant",
        TENANT,
        input="alice-Pa55word-123\n",
    )
    assert result.exit_code == 0, result.output
    assert "Password:" in result.stderr
    assert f"as user alice, tenant {TENANT}" in result.stdout
    [token] = service.token_requests()
    assert token.body == {
        "grant_type": "password",
        "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        "username": "alice",
        "password": "alice-Pa55word-123",
        "scope": f"{service.url}/.default",
    }
    saved = json.loads(profile_file(config_home).read_text())
    assert (saved["type"], saved["username"], saved["tenantId"]) == ("user", "alice", TENANT)
    service.requests.clear()
    result = run("registry", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    assert service.token_requests()[0].body["grant_type"] == "password"


def test_login_with_a_wrong_secret_fails_clearly_and_saves_nothing(
    service: FakeService, config_home: Path
) -> None:
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        CLIENT_ID,
        "--tenant",
        TENANT,
        "--password",
        "wrong-password",
    )
    assert result.exit_code == 1
    assert (
        f"ERROR: (invalid_client) the server refused the credential of '{CLIENT_ID}': AADSTS7000215"
        in result.stderr
    )
    assert "wrong-password" not in result.output
    result = run(
        "login", "--server", service.url, "-u", "alice", "--tenant", TENANT, "-p", "wrong-password"
    )
    assert result.exit_code == 1
    assert "(invalid_grant) the server refused the credential of 'alice'" in result.stderr
    result = run(
        "login", "--server", service.url, "-u", "alice", "--tenant", "nosuchtenant", "-p", "x"
    )
    assert result.exit_code == 1
    assert "ERROR: (invalid_tenant) the server has no tenant 'nosuchtenant'" in result.stderr
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        CLIENT_ID,
        "-p",
        "wrong-password",
    )
    assert result.exit_code == 1
    assert "(AuthenticationFailed) the server refused the credential" in result.stderr
    assert not profile_file(config_home).exists()


def test_login_prompts_for_the_secret_without_echoing_it(
    service: FakeService, config_home: Path
) -> None:
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "--username",
        CLIENT_ID,
        "--tenant",
        TENANT,
        input=SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "Client secret:" in result.stderr
    assert profile_file(config_home).exists()


def test_login_checks_the_secret_even_when_info_is_public(
    service: FakeService, config_home: Path
) -> None:
    service.info_requires_auth = False
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        CLIENT_ID,
        "--tenant",
        TENANT,
        "--password",
        "wrong-password",
    )
    assert result.exit_code == 1
    assert "(invalid_client)" in result.stderr
    assert not profile_file(config_home).exists()


def test_login_usage_errors(service: FakeService, config_home: Path, tmp_path: Path) -> None:
    def usage(*args: str, input: str | None = None) -> str:
        result = run("login", "--server", service.url, *args, input=input)
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "use only one of --password, --password-stdin" in usage(
        "-u", "a", "-p", "x", "--password-stdin", input="y\n"
    )
    assert "give --credential-file, or --username" in usage("-p", "x")
    assert "a user's login needs --tenant" in usage("-u", "alice", "-p", "x")
    assert "--credential-file names the client id" in usage(
        "-u", "x", "--credential-file", str(owner_file(tmp_path))
    )
    assert "differs from the tenant" in usage(
        "--tenant", "other", "--credential-file", str(owner_file(tmp_path))
    )
    assert "--password-stdin: stdin held no password" in usage(
        "-u", "a", "--tenant", "t", "--password-stdin", input="\n"
    )
    assert not service.requests
    result = run("login", "--server", "ftp://host", "-u", "a", "--tenant", "t", "--password", "x")
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.stderr
    result = run(
        "login", "--server", "http://127.0.0.1:1", "-u", "a", "--tenant", "t", "--password", "x"
    )
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:1" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"username": "admin", "password": "x"}, "servers now write owner-credential.json"),
        ({"clientId": "x"}, 'lacks a client id and secret ("clientId" and "clientSecret"'),
        ([1, 2], "does not hold a JSON object"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_unusable_credential_files_are_refused(
    service: FakeService, config_home: Path, tmp_path: Path, content: Any, message: str
) -> None:
    path = tmp_path / "credential.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    result = run("login", "--server", service.url, "--credential-file", str(path))
    assert result.exit_code == 1
    assert message in result.stderr
    assert not service.requests


def test_login_takes_what_sp_create_prints(
    service: FakeService, config_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "sp.json"
    path.write_text(
        json.dumps({"appId": CLIENT_ID, "password": SECRET, "tenant": TENANT, "displayName": "x"})
    )
    result = run("login", "--server", service.url, "--credential-file", str(path))
    assert result.exit_code == 0, result.output
    assert service.token_requests()[0].body["client_id"] == CLIENT_ID


def test_logout_removes_the_profile(logged_in: FakeService, config_home: Path) -> None:
    assert profile_file(config_home).exists()
    result = run("logout")
    assert result.exit_code == 0 and "Logged out" in result.stdout
    assert not profile_file(config_home).exists()
    assert run("logout").stdout.strip() == "Not logged in."
    result = run("registry", "list")
    assert result.exit_code == 1
    assert "not logged in: run `transship login --server URL …`" in result.stderr


def test_a_profile_of_an_older_version_asks_for_a_new_login(config_home: Path) -> None:
    path = profile_file(config_home)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps({"server": "http://localhost:5000", "username": "admin", "password": "x"})
    )
    result = run("registry", "list")
    assert result.exit_code == 1
    assert (
        "the saved profile is from an older transship (an admin password); run `transship login` again"
        in result.stderr
    )


def test_environment_variables_replace_the_profile(
    service: FakeService, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSSHIP_SERVER", service.url)
    monkeypatch.setenv("TRANSSHIP_USERNAME", CLIENT_ID)
    monkeypatch.setenv("TRANSSHIP_PASSWORD", SECRET)
    result = run("registry", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    assert {r["name"] for r in json.loads(result.stdout)} == {
        "myregistry",
        "mysourceregistry",
        "default",
    }
    # Without a profile the tenant and the subscription come from the info endpoint.
    assert [r.path for r in service.requests] == [
        "/transship/v1/info",
        f"/{TENANT}/oauth2/v2.0/token",
        "/transship/v1/info",
        f"/subscriptions/{SUB}{PROVIDER}/registries",
    ]
    service.requests.clear()
    monkeypatch.setenv("TRANSSHIP_TENANT", TENANT)
    assert run("registry", "list").exit_code == 0
    assert service.requests[0].path == f"/{TENANT}/oauth2/v2.0/token"

    monkeypatch.setenv("TRANSSHIP_USER_TYPE", "user")
    monkeypatch.setenv("TRANSSHIP_USERNAME", "alice")
    monkeypatch.setenv("TRANSSHIP_PASSWORD", "alice-Pa55word-123")
    assert run("registry", "list").exit_code == 0
    assert service.token_requests()[-1].body["grant_type"] == "password"
    monkeypatch.delenv("TRANSSHIP_TENANT")
    result = run("registry", "list")
    assert (
        result.exit_code == 1
        and "a user's login needs its tenant: set TRANSSHIP_TENANT" in result.stderr
    )
    monkeypatch.setenv("TRANSSHIP_USER_TYPE", "robot")
    result = run("registry", "list")
    assert (
        result.exit_code == 1
        and "TRANSSHIP_USER_TYPE: 'robot' is not one of servicePrincipal, user" in result.stderr
    )


def test_a_saved_secret_is_never_sent_to_another_server_or_for_another_name(
    logged_in: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSSHIP_SERVER", logged_in.url.replace("127.0.0.1", "localhost"))
    result = run("registry", "list")
    assert result.exit_code == 1
    assert "no credential for http://localhost" in result.stderr
    monkeypatch.delenv("TRANSSHIP_SERVER")
    monkeypatch.setenv("TRANSSHIP_USERNAME", "someone-else")
    result = run("registry", "list")
    assert result.exit_code == 1
    assert (
        f"no credential for {logged_in.url}: set TRANSSHIP_USERNAME and TRANSSHIP_PASSWORD"
        in result.stderr
    )
    assert not logged_in.requests


def test_one_token_serves_a_command_and_a_refused_token_is_renewed(
    logged_in: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run("registry", "list")
    assert result.exit_code == 0, result.output
    assert len(logged_in.token_requests()) == 1
    logged_in.requests.clear()
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "-o", "json")
    assert result.exit_code == 0, result.output
    assert len(logged_in.token_requests()) == 1  # one token for the POST and every poll
    authorizations = {
        r.headers.get("Authorization") for r in logged_in.requests if "/oauth2/" not in r.path
    }
    assert authorizations == {"Bearer entra-3"}

    # The server refuses a token (expired, revoked): a new one is fetched, the call repeated.
    logged_in.requests.clear()
    logged_in.script = [operation("InProgress", "running"), SUCCEEDED]

    def expire(seconds: float) -> None:
        if not logged_in.expired - {"entra-1", "entra-2", "entra-3"}:
            logged_in.expire_tokens()  # once, while the import is polled

    monkeypatch.setattr(commands_import, "sleep", expire)
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 0, result.output
    assert len(logged_in.token_requests()) == 2
    refused = [r for r in logged_in.requests if r.headers.get("Authorization") == "Bearer entra-4"]
    retried = [r for r in logged_in.requests if r.headers.get("Authorization") == "Bearer entra-5"]
    assert refused and retried and retried[0].path == refused[-1].path


def test_a_new_token_refused_is_an_error_not_a_retry(logged_in: FakeService) -> None:
    logged_in.answer(
        "GET",
        f"/subscriptions/{SUB}/resourcegroups",
        (401, {"error": {"code": "InvalidAuthenticationTokenTenant", "message": "wrong issuer"}}),
    )
    result = run("group", "list")
    assert result.exit_code == 1
    assert result.stderr == "ERROR: (InvalidAuthenticationTokenTenant) wrong issuer\n"
    assert len(logged_in.token_requests()) == 1
    assert len(logged_in.seen("GET", "/resourcegroups")) == 1


def test_tokens_are_renewed_before_they_expire(service: FakeService, config_home: Path) -> None:
    from transship.cli.client import ManagementApi
    from transship.cli.profile import Profile

    now = [1000.0]
    service.token_lifetime = 600
    management = ManagementApi(Profile(service.url, CLIENT_ID, SECRET, tenant=TENANT))
    management.auth._clock = lambda: now[0]
    assert management.auth.header() == "Bearer entra-1"
    now[0] += 539  # a minute before expiry it is still good
    assert management.auth.header() == "Bearer entra-1"
    now[0] += 2
    assert management.auth.header() == "Bearer entra-2"
    assert len(service.token_requests()) == 2


# -- registry ------------------------------------------------------------------------------


def test_registry_create_list_show_delete(logged_in: FakeService) -> None:
    result = run(
        "registry",
        "create",
        "newregistry",
        "--location",
        "west",
    )
    assert result.exit_code == 0, result.output
    [put] = logged_in.seen("PUT")
    assert put.path == f"{GROUP}{PROVIDER}/registries/newregistry"
    assert put.query["api-version"] == "2025-04-01"
    # The login server is the service's to derive: the command never sends one.
    assert put.body == {"sku": {"name": "Premium"}, "location": "west"}
    assert f"newregistry.{SUFFIX}" in result.stdout

    result = run("registry", "list")
    assert result.exit_code == 0
    for header in ("NAME", "RESOURCE GROUP", "LOGIN SERVER"):
        assert header in result.stdout
    assert f"mysourceregistry.{SUFFIX}" in result.stdout

    result = run("registry", "list", "-g", RG, "-o", "json")
    assert len(json.loads(result.stdout)) == 4
    assert logged_in.requests[-1].path == f"{GROUP}{PROVIDER}/registries"

    result = run("registry", "show", "newregistry", "-o", "json")
    assert json.loads(result.stdout)["properties"]["loginServer"] == f"newregistry.{SUFFIX}"

    result = run("registry", "delete", "newregistry", input="n\n")
    assert result.exit_code == 1
    assert not logged_in.seen("DELETE")
    result = run("registry", "delete", "newregistry", input="y\n")
    assert result.exit_code == 0 and "Deleted registry 'newregistry'" in result.stdout
    result = run("registry", "delete", "newregistry", "--yes", "-o", "json")
    assert json.loads(result.stdout) == {"name": "newregistry", "deleted": False}


def test_registry_errors(logged_in: FakeService) -> None:
    result = run("registry", "create", "newregistry", "--login-server", "new.example.com")
    assert result.exit_code == 2 and "--login-server" in result.stderr
    assert not logged_in.seen("PUT")
    result = run("registry", "create", "ab")
    assert result.exit_code == 2
    assert "5-50 alphanumeric" in result.stderr
    result = run("registry", "show", "missing")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "ERROR: (ResourceNotFound) The Resource 'Microsoft.ContainerRegistry/registries/missing' "
        f"under resource group '{RG}' was not found."
    )
    assert result.stdout == ""


# -- import: the request body, form by form ------------------------------------------------

SOURCE_ID = arm_id("mysourceregistry")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--source", "docker.io/library/hello-world:latest", "--image", "hello-world:latest"],
            {
                "source": {"registryUri": "docker.io", "sourceImage": "library/hello-world:latest"},
                "targetTags": ["hello-world:latest"],
                "mode": "NoForce",
            },
            id="docker-hub",
        ),
        pytest.param(
            [
                "--source",
                "docker.io/tensorflow/tensorflow:latest-gpu",
                "--image",
                "tensorflow:latest-gpu",
                "--username",
                "U",
                "--password",
                "P",
            ],
            {
                "source": {
                    "registryUri": "docker.io",
                    "credentials": {"username": "U", "password": "P"},
                    "sourceImage": "tensorflow/tensorflow:latest-gpu",
                },
                "targetTags": ["tensorflow:latest-gpu"],
                "mode": "NoForce",
            },
            id="docker-hub-credentials",
        ),
        pytest.param(
            [
                "--source",
                "mcr.microsoft.com/windows/servercore:ltsc2019",
                "--image",
                "servercore:ltsc2019",
            ],
            {
                "source": {
                    "registryUri": "mcr.microsoft.com",
                    "sourceImage": "windows/servercore:ltsc2019",
                },
                "targetTags": ["servercore:ltsc2019"],
                "mode": "NoForce",
            },
            id="mcr",
        ),
        pytest.param(
            [
                "--source",
                f"mysourceregistry.{SUFFIX}/aci-helloworld:latest",
                "--image",
                "aci-helloworld:latest",
            ],
            {
                "source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="login-server-of-the-service",
        ),
        pytest.param(
            ["--source", f"MySourceRegistry.{SUFFIX.upper()}/aci-helloworld:latest"],
            {
                "source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="login-server-any-case",
        ),
        pytest.param(
            [
                "--source",
                "aci-helloworld:latest",
                "--image",
                "aci-helloworld:latest",
                "--registry",
                SOURCE_ID,
            ],
            {
                "source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="registry-arm-id",
        ),
        pytest.param(
            [
                "--source",
                "samples/aci-helloworld:latest",
                "--image",
                "aci-hello-world:latest",
                "--registry",
                arm_id("mysourceregistry", "sourceResourceGroup"),
            ],
            {
                "source": {
                    "resourceId": arm_id("mysourceregistry", "sourceResourceGroup"),
                    "sourceImage": "samples/aci-helloworld:latest",
                },
                "targetTags": ["aci-hello-world:latest"],
                "mode": "NoForce",
            },
            id="registry-arm-id-other-group",
        ),
        pytest.param(
            ["--source", f"mysourceregistry.{SUFFIX}/aci-helloworld@{DIGEST}"],
            {
                "source": {"resourceId": SOURCE_ID, "sourceImage": f"aci-helloworld@{DIGEST}"},
                "targetTags": ["aci-helloworld"],
                "mode": "NoForce",
            },
            id="by-digest-no-image",
        ),
        pytest.param(
            ["--source", "mysourceregistry.azurecr.io/aci-helloworld@sha256:123456abcdefg"],
            {
                "source": {
                    "registryUri": "mysourceregistry.azurecr.io",
                    "sourceImage": "aci-helloworld@sha256:123456abcdefg",
                },
                "targetTags": ["aci-helloworld"],
                "mode": "NoForce",
            },
            id="article-digest-sent-as-written",
        ),
        pytest.param(
            [
                "--source",
                "sourceregistry.example/sourcerepo:tag",
                "--image",
                "targetimage:tag",
                "--username",
                "id",
                "--password",
                "secret",
            ],
            {
                "source": {
                    "registryUri": "sourceregistry.example",
                    "credentials": {"username": "id", "password": "secret"},
                    "sourceImage": "sourcerepo:tag",
                },
                "targetTags": ["targetimage:tag"],
                "mode": "NoForce",
            },
            id="private-registry-service-principal",
        ),
        pytest.param(
            ["--source", "docker.io/hello-world", "--password", "token-only"],
            {
                "source": {
                    "registryUri": "docker.io",
                    "credentials": {"password": "token-only"},
                    "sourceImage": "hello-world",
                },
                "targetTags": ["hello-world"],
                "mode": "NoForce",
            },
            id="password-without-username-and-no-library-prefix",
        ),
        pytest.param(
            ["--source", f"mysourceregistry.{SUFFIX}/app:1", "--username", "u", "--password", "p"],
            {
                "source": {
                    "registryUri": f"mysourceregistry.{SUFFIX}",
                    "credentials": {"username": "u", "password": "p"},
                    "sourceImage": "app:1",
                },
                "targetTags": ["app:1"],
                "mode": "NoForce",
            },
            id="login-server-with-credentials-stays-a-uri",
        ),
        pytest.param(
            [
                "--source",
                "localhost:5001/team/app:v1",
                "-t",
                "app:v1",
                "-t",
                "app:stable",
                "-t",
                "app:latest",
            ],
            {
                "source": {"registryUri": "localhost:5001", "sourceImage": "team/app:v1"},
                "targetTags": ["app:v1", "app:stable", "app:latest"],
                "mode": "NoForce",
            },
            id="repeated-image",
        ),
        pytest.param(
            [
                "--source",
                "docker.io/library/alpine:3.20",
                "--repository",
                "alpine",
                "--repository",
                "mirror/alpine",
            ],
            {
                "source": {"registryUri": "docker.io", "sourceImage": "library/alpine:3.20"},
                "untaggedTargetRepositories": ["alpine", "mirror/alpine"],
                "mode": "NoForce",
            },
            id="untagged-repositories",
        ),
        pytest.param(
            [
                "--source",
                "docker.io/library/alpine:3.20",
                "-t",
                "alpine:3.20",
                "--repository",
                "archive",
            ],
            {
                "source": {"registryUri": "docker.io", "sourceImage": "library/alpine:3.20"},
                "targetTags": ["alpine:3.20"],
                "untaggedTargetRepositories": ["archive"],
                "mode": "NoForce",
            },
            id="tags-and-repositories",
        ),
        pytest.param(
            ["--source", "docker.io/library/hello-world:latest", "--force"],
            {
                "source": {"registryUri": "docker.io", "sourceImage": "library/hello-world:latest"},
                "targetTags": ["library/hello-world:latest"],
                "mode": "Force",
            },
            id="force",
        ),
        pytest.param(
            [
                "--source",
                f"mysourceregistry.{SUFFIX}/aci-helloworld:latest",
                "--registry",
                "mysourceregistry",
            ],
            {
                "source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="registry-name-strips-login-server",
        ),
        pytest.param(
            ["--source", "aci-helloworld:latest", "--registry", f"mysourceregistry.{SUFFIX}"],
            {
                "source": {"resourceId": SOURCE_ID, "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="registry-login-server",
        ),
    ],
)
def test_import_sends_the_parameters_az_acr_import_sends(
    logged_in: FakeService, args: list[str], expected: dict[str, Any]
) -> None:
    result = run("import", "--name", "myregistry", *args)
    assert result.exit_code == 0, result.output
    assert logged_in.import_bodies() == [expected]
    [post] = logged_in.seen("POST", "/importImage")
    assert post.path == f"{GROUP}{PROVIDER}/registries/myregistry/importImage"
    assert post.query == {"api-version": "2025-04-01"}
    for secret in ("secret", "token-only"):
        assert secret not in result.output


def test_the_registry_list_is_read_only_when_a_name_must_be_resolved(
    logged_in: FakeService,
) -> None:
    run("import", "-n", "myregistry", "--source", "a:1", "--registry", SOURCE_ID)
    run("import", "-n", "myregistry", "--source", "x.example/a:1", "-u", "u", "-p", "p")
    assert not logged_in.seen("GET", f"{PROVIDER}/registries")
    run("import", "-n", "myregistry", "--source", "x.example/a:1")
    assert len(logged_in.seen("GET", f"{PROVIDER}/registries")) == 1


def test_credentials_are_not_sent_with_registry_as_az_does(logged_in: FakeService) -> None:
    result = run(
        "import",
        "-n",
        "myregistry",
        "--source",
        "a:1",
        "--registry",
        SOURCE_ID,
        "-u",
        "u",
        "-p",
        "p",
    )
    assert result.exit_code == 0
    assert "credentials" not in logged_in.import_bodies()[0]["source"]
    assert "--username/--password are not sent" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "docker.io/library/x:1", "--username", "u"], "--username needs --password"),
        (
            ["--source", "hello-world:latest"],
            "--source 'hello-world:latest' names no source registry",
        ),
        (
            ["--source", "library/hello-world:latest"],
            "'library' is not a fully qualified domain name",
        ),
        (
            ["--source", "team/app:1", "-u", "u", "-p", "p"],
            "'team' is not a fully qualified domain name",
        ),
        (["--source", "docker.io/"], "names no source registry"),
        ([], "missing --source"),
    ],
)
def test_import_usage_errors_exit_2_before_any_import(
    logged_in: FakeService, args: list[str], message: str
) -> None:
    result = run("import", "--name", "myregistry", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not logged_in.import_bodies()


def test_import_from_an_unknown_registry_name_fails(logged_in: FakeService) -> None:
    result = run(
        "import", "--name", "myregistry", "--source", "a:1", "--registry", "nosuchregistry"
    )
    assert result.exit_code == 1
    assert (
        "(ResourceNotFound) The source registry 'nosuchregistry' is not a registry of this service"
        in result.stderr
    )
    assert not logged_in.import_bodies()


def test_a_rejected_import_prints_the_code_message_and_target(logged_in: FakeService) -> None:
    logged_in.post_error = (
        400,
        {
            "error": {
                "code": "InvalidParameter",
                "message": "invalid tag 'a:-x'",
                "target": "targetTags",
            }
        },
    )
    result = run(
        "import", "--name", "myregistry", "--source", "docker.io/library/a:1", "-t", "a:-x"
    )
    assert result.exit_code == 1
    assert "ERROR: (InvalidParameter) invalid tag 'a:-x'\nTarget: targetTags" in result.stderr
    result = run("import", "--name", "nosuch", "--source", "docker.io/library/a:1")
    assert result.exit_code == 1
    assert "(ResourceNotFound)" in result.stderr


# -- import: waiting, progress, outcome ----------------------------------------------------

PROGRESS_SCRIPT = [
    operation("InProgress", "running", bytes_total=3000, blobs=(0, 4), manifests=(0, 2)),
    operation(
        "InProgress", "running", bytes_done=1500, bytes_total=3000, blobs=(2, 4), manifests=(1, 2)
    ),
    operation(
        "InProgress", "running", bytes_done=3000, bytes_total=3000, blobs=(4, 4), manifests=(2, 2)
    ),
    SUCCEEDED,
]


def test_import_waits_with_progress_and_summarises(logged_in: FakeService) -> None:
    logged_in.script = PROGRESS_SCRIPT
    result = run(
        "import",
        "-n",
        "myregistry",
        "--source",
        "docker.io/library/hello-world:latest",
        "--image",
        "hello-world:latest",
    )
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 4
    polls = logged_in.seen("GET", "/operationStatuses/op-1")
    assert all(p.headers["Authorization"].startswith("Bearer ") for p in polls)
    lines = result.stderr.splitlines()
    assert lines[0] == "Importing docker.io/library/hello-world:latest"
    assert any("running" in line and "  0%" in line and "blobs 0/4" in line for line in lines)
    assert any(
        " 50%" in line and "1.5 kB / 3.0 kB" in line and "blobs 2/4  manifests 1/2" in line
        for line in lines
    )
    assert any(
        "succeeded" in line and "100%" in line and "blobs 4/4  manifests 2/2" in line
        for line in lines
    )
    assert result.stdout == (
        "Imported docker.io/library/hello-world:latest into myregistry: hello-world:latest\n"
        "2 manifests, 4 blobs, 3.0 kB in 4.5 s (operation op-1)\n"
    )


def test_import_json_output_is_the_final_operation(logged_in: FakeService) -> None:
    logged_in.script = PROGRESS_SCRIPT
    result = run(
        "import",
        "-n",
        "myregistry",
        "--source",
        "docker.io/library/hello-world:latest",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)
    assert final["name"] == "op-1" and final["status"] == "Succeeded"
    assert final["properties"]["progress"]["blobsDone"] == 4
    assert " 50%" in result.stderr  # progress never pollutes stdout


def test_a_failed_import_prints_code_message_step_and_exits_1(logged_in: FakeService) -> None:
    logged_in.script = [
        operation("InProgress", "running", bytes_total=10, blobs=(0, 1), manifests=(0, 1)),
        operation(
            "Failed",
            "failed",
            end=True,
            error={
                "code": "UpstreamUnauthorized",
                "message": "the source registry refused the credential",
            },
            failure={
                "step": "authenticate",
                "object": "docker.io/library/private",
                "upstreamStatus": 401,
            },
        ),
    ]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/private:1")
    assert result.exit_code == 1
    assert (
        "ERROR: (UpstreamUnauthorized) the source registry refused the credential\n"
        "Step: authenticate\nObject: docker.io/library/private\nUpstream status: 401\n"
        "Operation: op-1 (transship import show --name myregistry op-1)"
    ) in result.stderr
    assert result.stdout == ""

    result = run(
        "import", "-n", "myregistry", "--source", "docker.io/library/private:1", "-o", "json"
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "UpstreamUnauthorized"


def test_a_tag_conflict_and_a_cancel_are_failures(logged_in: FakeService) -> None:
    logged_in.script = [
        operation(
            "Failed",
            "failed",
            error={
                "code": "TagAlreadyExists",
                "message": "Tag hello-world:latest already exists in target registry.",
            },
            failure={"step": "commit", "object": "hello-world:latest", "upstreamStatus": None},
        ),
    ]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/hello-world:latest")
    assert result.exit_code == 1
    assert (
        "(TagAlreadyExists) Tag hello-world:latest already exists in target registry.\nStep: commit"
        in result.stderr
    )
    assert "Upstream status" not in result.stderr
    logged_in.script = [operation("Canceled", "canceled", end=True)]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/hello-world:latest")
    assert result.exit_code == 1
    assert "(OperationCanceled) The import was canceled." in result.stderr


def test_no_wait_prints_the_operation_and_does_not_poll(logged_in: FakeService) -> None:
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "Import started: operation op-1 (InProgress)" in result.stdout
    assert (
        f"Status: {logged_in.url}/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}"
        "/operationStatuses/op-1?api-version=2025-04-01\n"
    ) in result.stdout
    assert "transship import show --name myregistry op-1" in result.stdout
    result = run(
        "import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait", "-o", "json"
    )
    shown = json.loads(result.stdout)
    assert shown["name"] == "op-2" and shown["status"] == "InProgress"
    assert shown["azureAsyncOperation"].endswith("/operationStatuses/op-2?api-version=2025-04-01")
    assert shown["location"].endswith("/operationResults/op-2?api-version=2025-04-01")
    assert not logged_in.seen("GET", "/operationStatuses/")


def test_ctrl_c_stops_waiting_but_leaves_the_import_running(
    logged_in: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_in.script = [operation("InProgress", "running", bytes_total=10)]
    calls = []

    def interrupted(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(commands_import, "sleep", interrupted)
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 130
    assert "Stopped waiting; the import op-1 continues on the server." in result.stderr
    assert "Follow it with: transship import show --name myregistry op-1" in result.stderr
    assert not logged_in.seen("POST", "/cancel")


def test_polling_survives_transient_errors_and_stays_on_the_configured_server(
    logged_in: FakeService,
) -> None:
    logged_in.status_url_origin = "https://elsewhere.example"
    logged_in.transient_failures = 2
    logged_in.script = PROGRESS_SCRIPT
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 4


def test_without_azure_async_operation_the_body_id_is_followed(logged_in: FakeService) -> None:
    logged_in.send_async_header = False
    logged_in.script = PROGRESS_SCRIPT
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 4


def test_with_only_a_location_the_operation_result_is_followed(logged_in: FakeService) -> None:
    logged_in.send_async_header = False
    logged_in.bare_post_body = True
    logged_in.script = [operation(), operation(), SUCCEEDED]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 0, result.output
    assert logged_in.polls["op-1"] == 3
    assert len(logged_in.seen("GET", "/operationResults/op-1")) == 3
    assert "Imported" in result.stdout and "(operation op-1)" in result.stdout

    logged_in.script = [
        operation(),
        operation(
            "Failed",
            "failed",
            error={
                "code": "TagAlreadyExists",
                "message": "Tag a:1 already exists in target registry.",
            },
        ),
    ]
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 1
    assert "ERROR: (TagAlreadyExists) Tag a:1 already exists in target registry." in result.stderr


def test_poll_delay_honours_retry_after_up_to_two_seconds() -> None:
    assert commands_import.poll_delay(None) == 0.5
    assert commands_import.poll_delay(0.1) == 0.5
    assert commands_import.poll_delay(1) == 1
    assert commands_import.poll_delay(30) == 2.0


def test_the_live_progress_bar_shows_bytes_items_and_rate() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    with ImportProgress(console, "docker.io/library/hello-world:latest") as progress:
        assert progress.live
        for snapshot in PROGRESS_SCRIPT:
            progress.update(snapshot)
    text = buffer.getvalue()
    assert "hello-world:latest succeeded" in text
    assert "100%" in text
    assert "3.0/3.0 kB" in text
    assert "blobs 4/4  manifests 2/2" in text


# -- import list / show / cancel -----------------------------------------------------------


def test_import_list_show_and_cancel(logged_in: FakeService) -> None:
    run("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait")
    run("import", "-n", "mysourceregistry", "--source", "docker.io/library/b:1", "--no-wait")

    result = run("import", "list", "--name", "myregistry")
    assert result.exit_code == 0, result.output
    assert "OPERATION" in result.stdout and "op-1" in result.stdout and "op-2" not in result.stdout
    assert (
        logged_in.requests[-1].path == f"{GROUP}{PROVIDER}/registries/myregistry/importOperations"
    )
    listed = json.loads(run("import", "list", "--name", "myregistry", "-o", "json").stdout)
    assert [o["name"] for o in listed] == ["op-1"]

    logged_in.script = [
        operation(
            "Failed",
            "failed",
            error={"code": "DIGEST_INVALID", "message": "bad layer"},
            failure={"step": "copy", "object": DIGEST, "upstreamStatus": 200},
        )
    ]
    result = run("import", "show", "--name", "myregistry", "op-1")
    assert result.exit_code == 0, result.output
    assert "Error: (DIGEST_INVALID) bad layer" in result.stdout
    assert f"Object: {DIGEST}" in result.stdout
    assert (
        logged_in.requests[-1].path
        == f"/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}/operationStatuses/op-1"
    )
    assert (
        json.loads(run("import", "show", "-n", "myregistry", "op-1", "-o", "json").stdout)["status"]
        == "Failed"
    )

    result = run("import", "show", "--name", "myregistry", "op-2")
    assert result.exit_code == 1
    assert (
        "(OperationNotFound) Operation op-2 is an import into registry 'mysourceregistry'"
        in result.stderr
    )
    result = run("import", "show", "--name", "myregistry", "op-9")
    assert (
        result.exit_code == 1
        and "(OperationNotFound) Operation op-9 was not found." in result.stderr
    )

    result = run("import", "cancel", "--name", "myregistry", "op-1", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "Canceled"
    [cancel] = logged_in.seen("POST", "/cancel")
    assert (
        cancel.path
        == f"/subscriptions/{SUB}{PROVIDER}/locations/{LOCATION}/operationStatuses/op-1/cancel"
    )
    result = run("import", "cancel", "--name", "myregistry", "op-2")
    assert result.exit_code == 1
    assert len(logged_in.seen("POST", "/cancel")) == 1


# -- repository ----------------------------------------------------------------------------

LOGIN = f"myregistry.{SUFFIX}"


def tag(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "digest": DIGEST,
        "createdTime": "2026-01-01T00:00:00Z",
        "lastUpdateTime": "2026-01-02T00:00:00Z",
        "signed": False,
        "changeableAttributes": {
            "deleteEnabled": True,
            "writeEnabled": True,
            "readEnabled": True,
            "listEnabled": True,
        },
    }


def manifest(index: int, tags: list[str]) -> dict[str, Any]:
    return {
        "digest": f"sha256:{index:064x}",
        "imageSize": 1234 * index,
        "createdTime": "2026-01-01T00:00:00Z",
        "lastUpdateTime": "2026-01-02T00:00:00Z",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "architecture": "amd64",
        "os": "linux",
        "tags": tags,
        "changeableAttributes": {},
    }


def test_repository_list_follows_link_pages_on_the_login_server(logged_in: FakeService) -> None:
    names = [f"repo{i:03d}" for i in range(250)]
    logged_in.catalog[LOGIN] = names
    logged_in.catalog["other.example"] = ["nope"]
    result = run("repository", "list", "--name", "myregistry", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == names
    pages = logged_in.seen("GET", "/acr/v1/_catalog")
    assert [p.query.get("last") for p in pages] == [None, "repo099", "repo199"]
    assert {p.headers["Host"] for p in pages} == {LOGIN}
    assert all("Authorization" not in p.headers for p in pages)
    assert logged_in.seen(
        "GET", "/registries/myregistry"
    )  # the login server came from registry show

    logged_in.requests.clear()
    result = run("repository", "list", "--name", "myregistry", "--top", "150")
    assert result.stdout.splitlines()[0].strip() == "REPOSITORY"
    assert len(result.stdout.splitlines()) == 151
    assert [p.query["n"] for p in logged_in.seen("GET", "/acr/v1/_catalog")] == ["100", "50"]


def test_a_registry_without_login_server_is_reached_by_the_server_host(
    logged_in: FakeService,
) -> None:
    logged_in.registries["default"]["properties"]["loginServer"] = None
    host = logged_in.url.removeprefix("http://")
    logged_in.catalog[host] = ["library/hello-world"]
    result = run("repository", "list", "--name", "default", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["library/hello-world"]


def test_repository_show_tags_and_manifests(logged_in: FakeService) -> None:
    logged_in.tags[(LOGIN, "team/app")] = [tag(f"v{i:03d}") for i in range(120)]
    logged_in.manifests[(LOGIN, "team/app")] = [manifest(1, ["v1"]), manifest(2, [])]

    result = run(
        "repository", "show-tags", "-n", "myregistry", "--repository", "team/app", "-o", "json"
    )
    assert json.loads(result.stdout) == [f"v{i:03d}" for i in range(120)]
    pages = logged_in.seen("GET", "/acr/v1/team/app/_tags")
    assert len(pages) == 2

    logged_in.requests.clear()
    result = run(
        "repository",
        "show-tags",
        "-n",
        "myregistry",
        "--repository",
        "team/app",
        "--detail",
        "--orderby",
        "time_desc",
        "--top",
        "3",
        "-o",
        "json",
    )
    shown = json.loads(result.stdout)
    assert [t["name"] for t in shown] == ["v000", "v001", "v002"] and shown[0]["digest"] == DIGEST
    [page] = logged_in.seen("GET", "/_tags")
    assert page.query == {"orderby": "timedesc", "n": "3"}

    result = run(
        "repository",
        "show-tags",
        "-n",
        "myregistry",
        "--repository",
        "team/app",
        "--detail",
        "--top",
        "2",
    )
    assert "NAME" in result.stdout and "DIGEST" in result.stdout and DIGEST in result.stdout

    result = run(
        "repository", "show-manifests", "-n", "myregistry", "--repository", "team/app", "-o", "json"
    )
    assert json.loads(result.stdout) == [
        {"digest": f"sha256:{1:064x}", "tags": ["v1"], "timestamp": "2026-01-02T00:00:00Z"},
        {"digest": f"sha256:{2:064x}", "tags": [], "timestamp": "2026-01-02T00:00:00Z"},
    ]
    result = run(
        "repository", "show-manifests", "-n", "myregistry", "--repository", "team/app", "--detail"
    )
    assert "linux/amd64" in result.stdout and "2.5 kB" in result.stdout
    result = run(
        "repository",
        "show-manifests",
        "-n",
        "myregistry",
        "--repository",
        "team/app",
        "--detail",
        "-o",
        "json",
    )
    assert json.loads(result.stdout)[0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    result = run("repository", "show-tags", "-n", "myregistry", "--repository", "missing")
    assert result.exit_code == 1
    assert "ERROR: (NAME_UNKNOWN) repository name not known to registry" in result.stderr


def test_repository_delete(logged_in: FakeService) -> None:
    logged_in.tags[(LOGIN, "hello-world")] = [tag("latest")]
    logged_in.manifests[(LOGIN, "hello-world")] = [manifest(1, ["latest"]), manifest(2, [])]
    result = run(
        "repository", "delete", "-n", "myregistry", "--repository", "hello-world", input="n\n"
    )
    assert result.exit_code == 1
    assert not logged_in.seen("DELETE")
    result = run("repository", "delete", "-n", "myregistry", "--repository", "hello-world", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted repository 'hello-world': 2 manifests, 1 tag.\n"
    [delete] = logged_in.seen("DELETE")
    assert delete.path == "/acr/v1/hello-world" and delete.headers["Host"] == LOGIN
    result = run("repository", "delete", "-n", "myregistry", "--repository", "hello-world", "--yes")
    assert result.exit_code == 1 and "(NAME_UNKNOWN)" in result.stderr


def test_the_data_plane_answers_a_bearer_challenge_with_the_login(logged_in: FakeService) -> None:
    logged_in.require_bearer = True
    logged_in.catalog[LOGIN] = ["a", "b"]
    result = run("repository", "list", "--name", "myregistry", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["a", "b"]
    [token] = logged_in.seen("GET", "/oauth2/token")
    assert token.headers["Host"] == LOGIN
    assert token.query == {"service": LOGIN, "scope": "registry:catalog:*"}
    assert token.headers["Authorization"] == basic(CLIENT_ID, SECRET)  # the login's credential


def test_without_read_on_the_registry_its_login_server_comes_from_the_suffix(
    logged_in: FakeService,
) -> None:
    """A login with AcrPull alone may pull but not read the registry's settings (as az acr
    does, the login server is then `<name>.<suffix>`)."""
    logged_in.unreadable.add("myregistry")
    logged_in.catalog[LOGIN] = ["a"]
    result = run("repository", "list", "--name", "myregistry", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["a"]
    result = run("repository", "list", "--name", "nosuch")
    assert result.exit_code == 1 and "(ResourceNotFound)" in result.stderr


# -- help and layering ---------------------------------------------------------------------

COMMANDS = [
    ["login"],
    ["logout"],
    ["registry", "create"],
    ["registry", "list"],
    ["registry", "show"],
    ["registry", "delete"],
    ["import"],
    ["import", "list"],
    ["import", "show"],
    ["import", "cancel"],
    ["repository", "list"],
    ["repository", "show-tags"],
    ["repository", "show-manifests"],
    ["repository", "delete"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert "transship " + " ".join(command) in result.output
    if command != ["logout"]:
        assert "--output" in result.output


def test_profile_mode_holds_even_with_a_permissive_umask(
    service: FakeService, config_home: Path
) -> None:
    previous = os.umask(0)
    try:
        result = run(
            "login",
            "--server",
            service.url,
            "--service-principal",
            "-u",
            CLIENT_ID,
            "--tenant",
            TENANT,
            "--password-stdin",
            input=SECRET,
        )
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(profile_file(config_home).stat().st_mode) == 0o600
    assert stat.S_IMODE(profile_file(config_home).parent.stat().st_mode) == 0o700
