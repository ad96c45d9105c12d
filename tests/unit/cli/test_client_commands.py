"""The client commands (login, registry, import, repository) against the real application
in-process (tests/unit/cli/live_service.py): outcomes are checked against the server's
state, and the recorder shows exactly what the CLI sent where that matters."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from rich.console import Console

from tests.unit.cli.live_service import (
    LOCATION,
    PROVIDER,
    RG,
    SUFFIX,
    USER,
    USER_PASSWORD,
    Handler,
    LiveService,
    basic,
    profile_file,
    run,
)
from transship import __version__
from transship.cli import client, commands_import
from transship.cli.main import main
from transship.cli.progress import ImportProgress
from transship.wire.arm import OperationStatus

DIGEST = "sha256:" + "ab" * 32


def ok(*args: str, input: str | None = None) -> Any:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def create_user(service: LiveService, role: str | None = "Reader") -> None:
    """The user alice (USER_PASSWORD), with `role` on the subscription, created by the
    owner; the CLI is left logged out."""
    ok("login", "--server", service.url, "--credential-file", str(service.credential_file))
    ok("identity", "user", "create", "-n", USER, "--password-stdin", input=USER_PASSWORD + "\n")
    if role is not None:
        ok(
            "role",
            "assignment",
            "create",
            "--assignee",
            USER,
            "--role",
            role,
            "--scope",
            f"/subscriptions/{service.sub}",
        )
    ok("logout")
    service.requests.clear()


def create_registries(service: LiveService, *names: str) -> None:
    for name in names:
        ok("registry", "create", name)
    service.requests.clear()


# -- login / logout ------------------------------------------------------------------------


def test_login_with_the_credential_file_saves_a_private_profile(
    service: LiveService, config_home: Path
) -> None:
    result = ok("login", "--server", service.url, "--credential-file", str(service.credential_file))
    assert (
        f"Logged in to {service.url} as service principal transship-owner "
        f"({service.client_id}), tenant {service.tenant}." in result.stdout
    )

    path = profile_file(config_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved == {
        "server": service.url,
        "type": "servicePrincipal",
        "tenantId": service.tenant,
        "username": service.client_id,
        "password": service.secret,
        "subscriptionId": service.sub,
        "resourceGroup": RG,
        "location": LOCATION,
        "loginServerSuffix": SUFFIX,
        "version": __version__,
    }
    [token] = service.token_requests()
    assert token.path == f"/{service.tenant}/oauth2/v2.0/token"
    assert token.body == {
        "grant_type": "client_credentials",
        "client_id": service.client_id,
        "client_secret": service.secret,
        "scope": f"{service.url}/.default",
    }
    [info] = service.seen("GET", "/transship/v1/info")
    assert info.headers["Authorization"] == f"Bearer {service.tokens()[0]}"


def test_login_reads_the_password_from_stdin_and_prints_json_without_it(
    service: LiveService, config_home: Path
) -> None:
    result = ok(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        service.client_id,
        "--tenant",
        service.tenant,
        "--password-stdin",
        "-o",
        "json",
        input=service.secret + "\n",
    )
    shown = json.loads(result.stdout)
    assert shown["server"] == service.url and shown["subscriptionId"] == service.sub
    assert shown["type"] == "servicePrincipal" and shown["caller"]["name"] == "transship-owner"
    assert "password" not in shown
    assert json.loads(profile_file(config_home).read_text())["password"] == service.secret


def test_a_service_principal_without_tenant_learns_it_from_the_server(
    service: LiveService, config_home: Path
) -> None:
    ok(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        service.client_id,
        "-p",
        service.secret,
    )
    first, second = service.seen("GET", "/transship/v1/info")
    # To learn the tenant: the server's info answers HTTP Basic with the client credential.
    assert first.headers["Authorization"] == basic(service.client_id, service.secret)
    assert first.status == 200
    assert second.headers["Authorization"] == f"Bearer {service.tokens()[0]}"
    assert [t.path for t in service.token_requests()] == [f"/{service.tenant}/oauth2/v2.0/token"]
    assert json.loads(profile_file(config_home).read_text())["tenantId"] == service.tenant


def test_a_user_logs_in_with_the_password_grant(service: LiveService, config_home: Path) -> None:
    create_user(service)
    result = ok(
        "login",
        "--server",
        service.url,
        "-u",
        USER,
        "--tenant",
        service.tenant,
        input=USER_PASSWORD + "\n",
    )
    assert "Password:" in result.stderr
    assert f"as user {USER}, tenant {service.tenant}" in result.stdout
    [token] = service.token_requests()
    assert token.body == {
        "grant_type": "password",
        "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        "username": USER,
        "password": USER_PASSWORD,
        "scope": f"{service.url}/.default",
    }
    saved = json.loads(profile_file(config_home).read_text())
    assert (saved["type"], saved["username"], saved["tenantId"]) == ("user", USER, service.tenant)
    service.requests.clear()
    result = ok("registry", "list", "-o", "json")
    assert [r["name"] for r in json.loads(result.stdout)] == ["default"]  # Reader sees it
    assert service.token_requests()[0].body["grant_type"] == "password"


def test_login_with_a_wrong_secret_fails_clearly_and_saves_nothing(
    service: LiveService, config_home: Path
) -> None:
    client_id, tenant = service.client_id, service.tenant
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        client_id,
        "--tenant",
        tenant,
        "--password",
        "wrong-password",
    )
    assert result.exit_code == 1
    assert (
        f"ERROR: (invalid_client) the server refused the credential of '{client_id}': AADSTS7000215"
        in result.stderr
    )
    assert "wrong-password" not in result.output
    result = run(
        "login", "--server", service.url, "-u", USER, "--tenant", tenant, "-p", "wrong-password"
    )
    assert result.exit_code == 1
    assert f"(invalid_grant) the server refused the credential of '{USER}'" in result.stderr
    result = run(
        "login", "--server", service.url, "-u", USER, "--tenant", "nosuchtenant", "-p", "x"
    )
    assert result.exit_code == 1
    assert "ERROR: (invalid_tenant) the server has no tenant 'nosuchtenant'" in result.stderr
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        client_id,
        "-p",
        "wrong-password",
    )
    assert result.exit_code == 1
    # Without --tenant the same answer as with one (test_cli_parity checks the whole text).
    assert "(invalid_client) the server refused the credential" in result.stderr
    assert "AADSTS7000215" in result.stderr
    assert not profile_file(config_home).exists()


def test_login_prompts_for_the_secret_without_echoing_it(
    service: LiveService, config_home: Path
) -> None:
    result = ok(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "--username",
        service.client_id,
        "--tenant",
        service.tenant,
        input=service.secret + "\n",
    )
    assert "Client secret:" in result.stderr
    assert profile_file(config_home).exists()


def test_login_checks_the_secret_even_when_info_is_public(
    service: LiveService, config_home: Path
) -> None:
    # A server whose info endpoint answers anyone: here, as the owner would be answered.
    owner = basic(service.client_id, service.secret)

    async def public(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request.clone(headers={**request.headers, "Authorization": owner}))

    service.intercept("GET", "/transship/v1/info", public)
    result = run(
        "login",
        "--server",
        service.url,
        "--service-principal",
        "-u",
        service.client_id,
        "--tenant",
        service.tenant,
        "--password",
        "wrong-password",
    )
    assert result.exit_code == 1
    assert "(invalid_client)" in result.stderr
    assert not profile_file(config_home).exists()


def test_login_usage_errors(service: LiveService, config_home: Path) -> None:
    credential_file = str(service.credential_file)

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
        "-u", "x", "--credential-file", credential_file
    )
    assert "differs from the tenant" in usage(
        "--tenant", "other", "--credential-file", credential_file
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
    service: LiveService, config_home: Path, tmp_path: Path, content: Any, message: str
) -> None:
    path = tmp_path / "credential.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    result = run("login", "--server", service.url, "--credential-file", str(path))
    assert result.exit_code == 1
    assert message in result.stderr
    assert not service.requests


def test_login_takes_what_sp_create_prints(
    service: LiveService, config_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "sp.json"
    path.write_text(
        json.dumps(
            {
                "appId": service.client_id,
                "password": service.secret,
                "tenant": service.tenant,
                "displayName": "x",
            }
        )
    )
    ok("login", "--server", service.url, "--credential-file", str(path))
    assert service.token_requests()[0].body["client_id"] == service.client_id


def test_logout_removes_the_profile(logged_in: LiveService, config_home: Path) -> None:
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
        "the saved profile is from an older transship (an admin password); "
        "run `transship login` again" in result.stderr
    )


def test_environment_variables_replace_the_profile(
    service: LiveService, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user(service)
    monkeypatch.setenv("TRANSSHIP_SERVER", service.url)
    monkeypatch.setenv("TRANSSHIP_USERNAME", service.client_id)
    monkeypatch.setenv("TRANSSHIP_PASSWORD", service.secret)
    result = ok("registry", "list", "-o", "json")
    assert {r["name"] for r in json.loads(result.stdout)} == {"default"}
    # Without a profile the tenant and the subscription come from the info endpoint.
    assert [r.path for r in service.requests] == [
        "/transship/v1/info",
        f"/{service.tenant}/oauth2/v2.0/token",
        "/transship/v1/info",
        f"/subscriptions/{service.sub}{PROVIDER}/registries",
    ]
    service.requests.clear()
    monkeypatch.setenv("TRANSSHIP_TENANT", service.tenant)
    assert run("registry", "list").exit_code == 0
    assert service.requests[0].path == f"/{service.tenant}/oauth2/v2.0/token"

    monkeypatch.setenv("TRANSSHIP_USER_TYPE", "user")
    monkeypatch.setenv("TRANSSHIP_USERNAME", USER)
    monkeypatch.setenv("TRANSSHIP_PASSWORD", USER_PASSWORD)
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
    logged_in: LiveService, monkeypatch: pytest.MonkeyPatch
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
    logged_in: LiveService,
) -> None:
    create_registries(logged_in, "myregistry", "mysourceregistry")
    logged_in.push_images(f"mysourceregistry.{SUFFIX}", [("a", "1")])
    ok("registry", "list")
    assert len(logged_in.token_requests()) == 1
    logged_in.requests.clear()
    source = f"mysourceregistry.{SUFFIX}/a:1"
    ok("import", "-n", "myregistry", "--source", source, "-o", "json")
    [token] = logged_in.tokens()  # one token for the POST and every poll
    authorizations = {
        r.headers.get("Authorization") for r in logged_in.requests if "/oauth2/" not in r.path
    }
    assert authorizations == {f"Bearer {token}"}

    # The server refuses a token (expired, revoked): a new one is fetched, the call repeated.
    logged_in.requests.clear()

    def expire(response: web.StreamResponse) -> None:
        # Once, as the import is accepted: the requests following it meet the refusal.
        if not logged_in.refused:
            logged_in.refuse_tokens(set(logged_in.tokens()))

    rewrite_import_answer(logged_in, expire)
    ok("import", "-n", "myregistry", "--source", source, "-t", "b:1")
    first, second = logged_in.tokens()
    refused = [r for r in logged_in.requests if r.headers.get("Authorization") == f"Bearer {first}"]
    retried = [
        r for r in logged_in.requests if r.headers.get("Authorization") == f"Bearer {second}"
    ]
    assert refused and retried and retried[0].path == refused[-1].path
    assert refused[-1].status == 401 and retried[0].status == 200


def test_a_new_token_refused_is_an_error_not_a_retry(logged_in: LiveService) -> None:
    logged_in.answer(
        "GET",
        f"/subscriptions/{logged_in.sub}/resourcegroups",
        (401, {"error": {"code": "InvalidAuthenticationTokenTenant", "message": "wrong issuer"}}),
    )
    result = run("group", "list")
    assert result.exit_code == 1
    assert result.stderr == "ERROR: (InvalidAuthenticationTokenTenant) wrong issuer\n"
    assert len(logged_in.token_requests()) == 1
    assert len(logged_in.seen("GET", "/resourcegroups")) == 1


def test_tokens_are_renewed_before_they_expire(service: LiveService, config_home: Path) -> None:
    from transship.cli.client import ManagementApi
    from transship.cli.profile import Profile

    now = [1000.0]
    management = ManagementApi(
        Profile(service.url, service.client_id, service.secret, tenant=service.tenant)
    )
    management.auth._clock = lambda: now[0]
    first = management.auth.header()
    lifetime = service.token_requests()[0].reply["expires_in"]
    now[0] += lifetime - 61  # a minute before expiry it is still good
    assert management.auth.header() == first
    now[0] += 2
    second = management.auth.header()
    assert len(service.token_requests()) == 2
    assert second == f"Bearer {service.tokens()[1]}"


# -- registry ------------------------------------------------------------------------------


def test_registry_create_list_show_delete(logged_in: LiveService) -> None:
    result = ok("registry", "create", "newregistry", "--location", "west")
    [put] = logged_in.seen("PUT")
    assert put.path == f"{logged_in.group}{PROVIDER}/registries/newregistry"
    assert put.query["api-version"] == "2025-04-01"
    # The login server is the service's to derive: the command never sends one.
    assert put.body == {"sku": {"name": "Premium"}, "location": "west"}
    assert f"newregistry.{SUFFIX}" in result.stdout

    result = ok("registry", "list")
    for header in ("NAME", "RESOURCE GROUP", "LOGIN SERVER"):
        assert header in result.stdout
    assert f"newregistry.{SUFFIX}" in result.stdout

    result = ok("registry", "list", "-g", RG, "-o", "json")
    assert {r["name"] for r in json.loads(result.stdout)} == {"default", "newregistry"}
    assert logged_in.requests[-1].path == f"{logged_in.group}{PROVIDER}/registries"

    result = ok("registry", "show", "newregistry", "-o", "json")
    shown = json.loads(result.stdout)
    assert shown["properties"]["loginServer"] == f"newregistry.{SUFFIX}"
    assert shown["location"] == "west"

    result = run("registry", "delete", "newregistry", input="n\n")
    assert result.exit_code == 1
    assert not logged_in.seen("DELETE")
    result = ok("registry", "delete", "newregistry", input="y\n")
    assert "Deleted registry 'newregistry'" in result.stdout
    assert run("registry", "show", "newregistry").exit_code == 1
    result = ok("registry", "delete", "newregistry", "--yes", "-o", "json")
    assert json.loads(result.stdout) == {"name": "newregistry", "deleted": False}


def test_registry_errors(logged_in: LiveService) -> None:
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


def placed(value: Any, service: LiveService) -> Any:
    """`value` with the server's ids in place of <SOURCE_ID> and <OTHER_GROUP_ID>."""
    text = json.dumps(value)
    text = text.replace("<SOURCE_ID>", service.arm_id("mysourceregistry"))
    text = text.replace(
        "<OTHER_GROUP_ID>", service.arm_id("mysourceregistry", "sourceResourceGroup")
    )
    return json.loads(text)


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
                "source": {"resourceId": "<SOURCE_ID>", "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="login-server-of-the-service",
        ),
        pytest.param(
            ["--source", f"MySourceRegistry.{SUFFIX.upper()}/aci-helloworld:latest"],
            {
                "source": {"resourceId": "<SOURCE_ID>", "sourceImage": "aci-helloworld:latest"},
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
                "<SOURCE_ID>",
            ],
            {
                "source": {"resourceId": "<SOURCE_ID>", "sourceImage": "aci-helloworld:latest"},
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
                "<OTHER_GROUP_ID>",
            ],
            {
                "source": {
                    "resourceId": "<OTHER_GROUP_ID>",
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
                "source": {"resourceId": "<SOURCE_ID>", "sourceImage": f"aci-helloworld@{DIGEST}"},
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
                "source": {"resourceId": "<SOURCE_ID>", "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="registry-name-strips-login-server",
        ),
        pytest.param(
            ["--source", "aci-helloworld:latest", "--registry", f"mysourceregistry.{SUFFIX}"],
            {
                "source": {"resourceId": "<SOURCE_ID>", "sourceImage": "aci-helloworld:latest"},
                "targetTags": ["aci-helloworld:latest"],
                "mode": "NoForce",
            },
            id="registry-login-server",
        ),
    ],
)
def test_import_sends_the_parameters_az_acr_import_sends(
    logged_in: LiveService, args: list[str], expected: dict[str, Any]
) -> None:
    create_registries(logged_in, "myregistry", "mysourceregistry")
    result = run("import", "--name", "myregistry", "--no-wait", *placed(args, logged_in))
    assert logged_in.import_bodies() == [placed(expected, logged_in)]
    [post] = logged_in.seen("POST", "/importImage")
    assert post.path == f"{logged_in.group}{PROVIDER}/registries/myregistry/importImage"
    assert post.query == {"api-version": "2025-04-01"}
    # The server starts the import, or refuses what it cannot take (a digest that is not
    # one, a registry that is not there) and the CLI says why.
    if post.status == 202:
        assert result.exit_code == 0, result.output
        assert f"Import started: operation {post.reply['name']}" in result.stdout
    else:
        assert result.exit_code == 1
        assert f"ERROR: ({post.reply['error']['code']}) " in result.stderr
    for secret in ("secret", "token-only"):
        assert secret not in result.output


def test_the_registry_list_is_read_only_when_a_name_must_be_resolved(
    logged_in: LiveService,
) -> None:
    create_registries(logged_in, "myregistry", "mysourceregistry")
    source_id = logged_in.arm_id("mysourceregistry")
    run("import", "-n", "myregistry", "--source", "a:1", "--registry", source_id, "--no-wait")
    run(
        "import", "-n", "myregistry", "--source", "x.example/a:1", "-u", "u", "-p", "p", "--no-wait"
    )
    assert len(logged_in.import_bodies()) == 2
    assert not logged_in.seen("GET", f"{PROVIDER}/registries")
    run("import", "-n", "myregistry", "--source", "x.example/a:1", "--no-wait")
    assert len(logged_in.seen("GET", f"{PROVIDER}/registries")) == 1


def test_credentials_are_not_sent_with_registry_as_az_does(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry", "mysourceregistry")
    result = ok(
        "import",
        "-n",
        "myregistry",
        "--source",
        "a:1",
        "--no-wait",
        "--registry",
        logged_in.arm_id("mysourceregistry"),
        "-u",
        "u",
        "-p",
        "p",
    )
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
    logged_in: LiveService, args: list[str], message: str
) -> None:
    result = run("import", "--name", "myregistry", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not logged_in.import_bodies()


def test_import_from_an_unknown_registry_name_fails(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    result = run(
        "import", "--name", "myregistry", "--source", "a:1", "--registry", "nosuchregistry"
    )
    assert result.exit_code == 1
    assert (
        "(ResourceNotFound) The source registry 'nosuchregistry' is not a registry of this service"
        in result.stderr
    )
    assert not logged_in.import_bodies()


def test_a_rejected_import_prints_the_code_message_and_target(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    result = run(
        "import", "--name", "myregistry", "--source", "docker.io/library/a:1", "-t", "a:-x"
    )
    assert result.exit_code == 1
    error = logged_in.seen("POST", "/importImage")[-1].reply["error"]
    assert error["code"] == "InvalidParameter" and "'a:-x'" in error["message"]
    # The server's code, message and target, as it said them.
    assert (
        f"ERROR: (InvalidParameter) {error['message']}\nTarget: {error['target']}" in result.stderr
    )
    result = run("import", "--name", "nosuch", "--source", "docker.io/library/a:1")
    assert result.exit_code == 1
    assert "(ResourceNotFound)" in result.stderr
    assert [post.status for post in logged_in.seen("POST", "/importImage")] == [400, 404]


# -- import: waiting, progress, outcome ----------------------------------------------------


def operation(
    status: str = "InProgress",
    state: str = "running",
    *,
    bytes_done: int = 0,
    bytes_total: int = 0,
    blobs: tuple[int, int] = (0, 0),
    manifests: tuple[int, int] = (0, 0),
    error: dict[str, str] | None = None,
    failure: dict[str, Any] | None = None,
    end: bool = False,
) -> dict[str, Any]:
    """What an operation status snapshot shows (laid over the real operation's)."""
    result: dict[str, Any] = {
        "status": status,
        "startTime": "2026-01-02T03:04:05+00:00",
        "properties": {
            "state": state,
            "progress": {
                "bytesTotal": bytes_total,
                "bytesDone": bytes_done,
                "bytesFetched": bytes_done,
                "blobsTotal": blobs[1],
                "blobsDone": blobs[0],
                "manifestsTotal": manifests[1],
                "manifestsDone": manifests[0],
            },
        },
    }
    if end:
        result["endTime"] = "2026-01-02T03:04:09.500000+00:00"
    if error:
        result["error"] = error
    if failure:
        result["properties"]["failure"] = failure
    return result


SUCCEEDED = operation(
    "Succeeded",
    "succeeded",
    bytes_done=3000,
    bytes_total=3000,
    blobs=(4, 4),
    manifests=(2, 2),
    end=True,
)
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


def follow_path(service: LiveService) -> str:
    """The prefix of the operations' follow (long poll) URLs."""
    return f"/transship/v1/subscriptions/{service.sub}/importOperations/"


def script_operations(service: LiveService, snapshots: list[dict[str, Any]]) -> list[str]:
    """The operation status URL and the follow URL answer with `snapshots` in turn (the
    last repeats, under the same ETag), each laid over the real operation (its id, name,
    source and targets stay the server's): a real import here runs too fast, and offline,
    to show progress or a chosen failure. Returns the operations polled, one entry per
    poll."""
    polls: list[str] = []

    async def scripted(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if response.status != 200:  # not found: the real answer
            return response
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        real = json.loads(response.body)
        index = min(len(polls), len(snapshots) - 1)
        snapshot = snapshots[index]
        polls.append(real["name"])
        merged = {k: v for k, v in real.items() if k not in ("endTime", "error")}
        merged.update({k: v for k, v in snapshot.items() if k != "properties"})
        properties = {k: v for k, v in real["properties"].items() if k != "failure"}
        merged["properties"] = {**properties, **snapshot["properties"]}
        return web.json_response(merged, headers={"ETag": f'"scripted-{index}"'})

    service.intercept(
        "GET",
        f"/subscriptions/{service.sub}{PROVIDER}/locations/{LOCATION}/operationStatuses/",
        scripted,
        prefix=True,
    )
    service.intercept("GET", follow_path(service), scripted, prefix=True)
    return polls


def started(service: LiveService) -> str:
    """The id of the operation the last import request started."""
    post = service.seen("POST", "/importImage")[-1]
    assert post.status == 202, post.reply
    return str(post.reply["name"])


def test_import_waits_with_progress_and_summarises(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    polls = script_operations(logged_in, PROGRESS_SCRIPT)
    result = ok(
        "import",
        "-n",
        "myregistry",
        "--source",
        "docker.io/library/hello-world:latest",
        "--image",
        "hello-world:latest",
    )
    op = started(logged_in)
    assert polls == [op] * 4
    statuses = logged_in.seen("GET", f"{follow_path(logged_in)}{op}")
    assert len(statuses) == 4
    assert all(p.headers["Authorization"].startswith("Bearer ") for p in statuses)
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
        f"2 manifests, 4 blobs, 3.0 kB in 4.5 s (operation {op})\n"
    )


def test_a_real_import_waits_and_summarises(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry", "mysourceregistry")
    logged_in.push_images(f"mysourceregistry.{SUFFIX}", [("app", "1")])
    result = ok("import", "-n", "myregistry", "--source", f"mysourceregistry.{SUFFIX}/app:1")
    op = started(logged_in)
    assert result.stdout.startswith(
        f"Imported mysourceregistry.{SUFFIX}/app:1 into myregistry: app:1\n1 manifest, 2 blobs,"
    )
    assert f"(operation {op})" in result.stdout
    tags = ok("repository", "show-tags", "-n", "myregistry", "--repository", "app", "-o", "json")
    assert json.loads(tags.stdout) == ["1"]


def test_import_json_output_is_the_final_operation(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    script_operations(logged_in, PROGRESS_SCRIPT)
    result = ok(
        "import",
        "-n",
        "myregistry",
        "--source",
        "docker.io/library/hello-world:latest",
        "-o",
        "json",
    )
    final = json.loads(result.stdout)
    assert final["name"] == started(logged_in) and final["status"] == "Succeeded"
    assert final["properties"]["progress"]["blobsDone"] == 4
    assert " 50%" in result.stderr  # progress never pollutes stdout


def test_a_failed_import_prints_code_message_step_and_exits_1(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    script_operations(
        logged_in,
        [
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
        ],
    )
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/private:1")
    assert result.exit_code == 1
    op = started(logged_in)
    assert (
        "ERROR: (UpstreamUnauthorized) the source registry refused the credential\n"
        "Step: authenticate\nObject: docker.io/library/private\nUpstream status: 401\n"
        f"Operation: {op} (transship import show --name myregistry {op})"
    ) in result.stderr
    assert result.stdout == ""

    result = run(
        "import", "-n", "myregistry", "--source", "docker.io/library/private:1", "-o", "json"
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "UpstreamUnauthorized"


def test_a_tag_conflict_and_a_cancel_are_failures(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry", "mysourceregistry")
    login = f"mysourceregistry.{SUFFIX}"
    logged_in.push_images(login, [("hello-world", "latest"), ("other", "latest")])
    ok("import", "-n", "myregistry", "--source", f"{login}/hello-world:latest")
    # The real server refuses to move a tag without --force.
    result = run(
        "import",
        "-n",
        "myregistry",
        "--source",
        f"{login}/other:latest",
        "-t",
        "hello-world:latest",
    )
    assert result.exit_code == 1
    assert (
        "(TagAlreadyExists) Tag hello-world:latest already exists in target registry. Import "
        "with --force (mode Force) to overwrite it.\nStep: " in result.stderr
    )
    assert "Upstream status" not in result.stderr
    script_operations(logged_in, [operation("Canceled", "canceled", end=True)])
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/hello-world:latest")
    assert result.exit_code == 1
    assert "(OperationCanceled) The import was canceled." in result.stderr


def test_no_wait_prints_the_operation_and_does_not_poll(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    result = ok("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait")
    op = started(logged_in)
    assert f"Import started: operation {op} (InProgress)" in result.stdout
    assert (
        f"Status: {logged_in.url}/subscriptions/{logged_in.sub}{PROVIDER}/locations/{LOCATION}"
        f"/operationStatuses/{op}?api-version=2025-04-01\n"
    ) in result.stdout
    assert f"transship import show --name myregistry {op}" in result.stdout
    result = ok(
        "import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait", "-o", "json"
    )
    shown = json.loads(result.stdout)
    op = started(logged_in)
    assert shown["name"] == op and shown["status"] == "InProgress"
    assert shown["azureAsyncOperation"].endswith(f"/operationStatuses/{op}?api-version=2025-04-01")
    assert shown["location"].endswith(f"/operationResults/{op}?api-version=2025-04-01")
    assert not logged_in.seen("GET", "/operationStatuses/")


def test_ctrl_c_stops_waiting_but_leaves_the_import_running(
    logged_in: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_registries(logged_in, "myregistry")
    script_operations(logged_in, [operation("InProgress", "running", bytes_total=10)])
    calls = []

    def interrupted(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(commands_import, "sleep", interrupted)
    result = run("import", "-n", "myregistry", "--source", "docker.io/library/a:1")
    assert result.exit_code == 130
    op = started(logged_in)
    assert f"Stopped waiting; the import {op} continues on the server." in result.stderr
    assert f"Follow it with: transship import show --name myregistry {op}" in result.stderr
    assert not logged_in.seen("POST", "/cancel")


def local_import(service: LiveService) -> list[str]:
    """Registries myregistry and mysourceregistry, an image app:1 in the latter; the
    arguments of its import into the former."""
    create_registries(service, "myregistry", "mysourceregistry")
    service.push_images(f"mysourceregistry.{SUFFIX}", [("app", "1")])
    return ["import", "-n", "myregistry", "--source", f"mysourceregistry.{SUFFIX}/app:1"]


def rewrite_import_answer(service: LiveService, change: Any) -> None:
    """The importImage answer as `change(response)` makes it."""

    async def changed(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        return change(response) or response

    service.intercept(
        "POST", f"{service.group}{PROVIDER}/registries/myregistry/importImage", changed
    )


def test_polling_survives_transient_errors_and_stays_on_the_configured_server(
    logged_in: LiveService,
) -> None:
    args = local_import(logged_in)

    def elsewhere(response: web.StreamResponse) -> None:
        for name in ("Azure-AsyncOperation", "Location"):
            if name not in response.headers:
                continue  # the server sends no Azure-AsyncOperation (as ACR)
            response.headers[name] = response.headers[name].replace(
                logged_in.url, "https://elsewhere.example"
            )

    rewrite_import_answer(logged_in, elsewhere)
    failures = [0]

    async def twice_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
        failures[0] += 1
        if failures[0] <= 2:
            return web.json_response(
                {"error": {"code": "ServiceUnavailable", "message": "try again"}}, status=503
            )
        return await handler(request)

    logged_in.intercept("GET", follow_path(logged_in), twice_unavailable, prefix=True)
    result = ok(*args)
    op = started(logged_in)
    polls = logged_in.seen("GET", f"{follow_path(logged_in)}{op}")
    assert [p.status for p in polls[:3]] == [503, 503, 200]
    assert polls[-1].reply["status"] == "Succeeded"
    assert f"(operation {op})" in result.stdout


def test_without_azure_async_operation_the_body_id_is_followed(logged_in: LiveService) -> None:
    args = local_import(logged_in)

    def without_header(response: web.StreamResponse) -> None:
        response.headers.popall("Azure-AsyncOperation", None)

    rewrite_import_answer(logged_in, without_header)
    result = ok(*args)
    op = started(logged_in)
    polls = logged_in.seen("GET", f"{follow_path(logged_in)}{op}")
    assert polls and polls[-1].reply["status"] == "Succeeded"
    assert f"(operation {op})" in result.stdout


def test_with_only_a_location_the_operation_result_is_followed(logged_in: LiveService) -> None:
    args = local_import(logged_in)

    def location_only(response: web.StreamResponse) -> web.StreamResponse:
        return web.Response(status=202, headers={"Location": response.headers["Location"]})

    rewrite_import_answer(logged_in, location_only)
    result = ok(*args)
    op = logged_in.seen("GET", "/operationResults/")[0].path.rsplit("/", 1)[1]
    assert not logged_in.seen("GET", "/operationStatuses/")
    assert [r.status for r in logged_in.seen("GET", f"/operationResults/{op}")][-1] == 200
    assert "Imported" in result.stdout

    # The same tag from another image: the real server refuses to move it without --force.
    logged_in.push_images(f"mysourceregistry.{SUFFIX}", [("other", "1")])
    result = run(
        "import",
        "-n",
        "myregistry",
        "--source",
        f"mysourceregistry.{SUFFIX}/other:1",
        "-t",
        "app:1",
    )
    assert result.exit_code == 1
    assert "ERROR: (TagAlreadyExists) Tag app:1 already exists in target registry." in result.stderr


def test_poll_delay_honours_retry_after_up_to_two_seconds() -> None:
    assert commands_import.poll_delay(None) == 0.5
    assert commands_import.poll_delay(0.1) == 0.5
    assert commands_import.poll_delay(1) == 1
    assert commands_import.poll_delay(30) == 2.0


def status_of_snapshot(snapshot: dict[str, Any]) -> OperationStatus:
    """A snapshot laid over an operation's other fields, as the server answers it."""
    properties = {
        "registry": "myregistry",
        "source": "docker.io/library/hello-world:latest",
        "targetTags": ["hello-world:latest"],
        "untaggedTargetRepositories": [],
        "mode": "NoForce",
        "attempts": 1,
        **snapshot["properties"],
    }
    return OperationStatus.model_validate(
        {"id": "/operationStatuses/op", "name": "op", **snapshot, "properties": properties}
    )


def test_the_live_progress_bar_shows_bytes_items_and_rate() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    with ImportProgress(console, "docker.io/library/hello-world:latest") as progress:
        assert progress.live
        for snapshot in PROGRESS_SCRIPT:
            progress.update(status_of_snapshot(snapshot))
    text = buffer.getvalue()
    assert "hello-world:latest succeeded" in text
    assert "100%" in text
    assert "3.0/3.0 kB" in text
    assert "blobs 4/4  manifests 2/2" in text


# -- import list / show / cancel -----------------------------------------------------------


def test_import_list_show_and_cancel(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry", "mysourceregistry")
    ok("import", "-n", "myregistry", "--source", "docker.io/library/a:1", "--no-wait")
    op1 = started(logged_in)
    ok("import", "-n", "mysourceregistry", "--source", "docker.io/library/b:1", "--no-wait")
    op2 = started(logged_in)

    result = ok("import", "list", "--name", "myregistry")
    assert "OPERATION" in result.stdout and op1 in result.stdout and op2 not in result.stdout
    assert (
        logged_in.requests[-1].path
        == f"{logged_in.group}{PROVIDER}/registries/myregistry/importOperations"
    )
    listed = json.loads(ok("import", "list", "--name", "myregistry", "-o", "json").stdout)
    assert [o["name"] for o in listed] == [op1]

    script_operations(
        logged_in,
        [
            operation(
                "Failed",
                "failed",
                error={"code": "DIGEST_INVALID", "message": "bad layer"},
                failure={"step": "copy", "object": DIGEST, "upstreamStatus": 200},
            )
        ],
    )
    result = ok("import", "show", "--name", "myregistry", op1)
    assert "Error: (DIGEST_INVALID) bad layer" in result.stdout
    assert f"Object: {DIGEST}" in result.stdout
    assert (
        logged_in.requests[-1].path
        == f"/subscriptions/{logged_in.sub}{PROVIDER}/locations/{LOCATION}/operationStatuses/{op1}"
    )
    shown = json.loads(ok("import", "show", "-n", "myregistry", op1, "-o", "json").stdout)
    assert shown["status"] == "Failed"

    result = run("import", "show", "--name", "myregistry", op2)
    assert result.exit_code == 1
    assert (
        f"(OperationNotFound) Operation {op2} is an import into registry 'mysourceregistry'"
        in result.stderr
    )
    result = run("import", "show", "--name", "myregistry", "op-9")
    error = logged_in.requests[-1].reply["error"]
    assert error["code"] == "OperationNotFound"
    assert result.exit_code == 1 and f"(OperationNotFound) {error['message']}" in result.stderr

    logged_in.overrides.clear()
    result = ok("import", "cancel", "--name", "myregistry", op1, "-o", "json")
    canceled = json.loads(result.stdout)
    # Canceled, or the state it reached first (this one fails at once: no egress).
    assert canceled["name"] == op1 and canceled["status"] in ("Canceled", "Failed")
    [cancel] = logged_in.seen("POST", "/cancel")
    assert (
        cancel.path == f"/subscriptions/{logged_in.sub}{PROVIDER}/locations/{LOCATION}"
        f"/operationStatuses/{op1}/cancel"
    )
    assert cancel.status == 200
    result = run("import", "cancel", "--name", "myregistry", op2)
    assert result.exit_code == 1
    assert len(logged_in.seen("POST", "/cancel")) == 1


# -- repository ----------------------------------------------------------------------------

LOGIN = f"myregistry.{SUFFIX}"


def test_repository_list_follows_link_pages_on_the_login_server(
    logged_in: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "PAGE_SIZE", 10)  # pages of 100 as the CLI asks, in small
    create_registries(logged_in, "myregistry", "mysourceregistry")
    names = [f"repo{i:03d}" for i in range(25)]
    logged_in.push_images(LOGIN, [(name, "1") for name in names])
    logged_in.push_images(f"mysourceregistry.{SUFFIX}", [("nope", "1")])
    logged_in.requests.clear()
    result = ok("repository", "list", "--name", "myregistry", "-o", "json")
    assert json.loads(result.stdout) == names
    pages = logged_in.seen("GET", "/acr/v1/_catalog")
    # The first page is challenged (no credential is sent before the server asks for one).
    assert "Authorization" not in pages[0].headers and pages[0].status == 401
    pages = [p for p in pages if p.status == 200]
    assert [p.query.get("last") for p in pages] == [None, "repo009", "repo019"]
    assert {p.headers["Host"] for p in logged_in.seen(contains="/acr/")} == {LOGIN}
    # The login server came from registry show.
    assert logged_in.seen("GET", "/registries/myregistry")

    logged_in.requests.clear()
    result = ok("repository", "list", "--name", "myregistry", "--top", "15")
    assert result.stdout.splitlines()[0].strip() == "REPOSITORY"
    assert len(result.stdout.splitlines()) == 16
    pages = [p for p in logged_in.seen("GET", "/acr/v1/_catalog") if p.status == 200]
    assert [p.query["n"] for p in pages] == ["10", "5"]


def test_a_registry_without_login_server_is_reached_by_the_server_host(
    logged_in: LiveService,
) -> None:
    host = logged_in.url.removeprefix("http://")
    logged_in.push_images(host, [("library/hello-world", "latest")])  # the default registry
    default = f"{logged_in.group}{PROVIDER}/registries/default"

    async def without_login_server(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        body = json.loads(response.body)
        body["properties"]["loginServer"] = None
        return web.json_response(body)

    logged_in.intercept("GET", default, without_login_server)
    result = ok("repository", "list", "--name", "default", "-o", "json")
    assert json.loads(result.stdout) == ["library/hello-world"]
    assert {p.headers["Host"] for p in logged_in.seen(contains="/acr/")} == {host}


def test_repository_show_tags_and_manifests(
    logged_in: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "PAGE_SIZE", 10)
    create_registries(logged_in, "myregistry")
    tags = [f"v{i:03d}" for i in range(12)]
    [digest, *_] = logged_in.push_images(LOGIN, [("team/app", t) for t in tags])
    [untagged] = logged_in.push_images(LOGIN, [("team/app", None)], seed="2")
    logged_in.requests.clear()

    result = ok(
        "repository", "show-tags", "-n", "myregistry", "--repository", "team/app", "-o", "json"
    )
    assert json.loads(result.stdout) == tags
    pages = [p for p in logged_in.seen("GET", "/acr/v1/team/app/_tags") if p.status == 200]
    assert len(pages) == 2

    logged_in.requests.clear()
    result = ok(
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
    assert len(shown) == 3 and {t["digest"] for t in shown} == {digest}
    times = [t["lastUpdateTime"] for t in shown]
    assert times == sorted(times, reverse=True)
    [page] = [p for p in logged_in.seen("GET", "/_tags") if p.status == 200]
    assert page.query == {"orderby": "timedesc", "n": "3"}

    result = ok(
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
    assert "NAME" in result.stdout and "DIGEST" in result.stdout and digest in result.stdout

    result = ok(
        "repository", "show-manifests", "-n", "myregistry", "--repository", "team/app", "-o", "json"
    )
    listed = json.loads(result.stdout)
    assert {m["digest"]: m["tags"] for m in listed} == {digest: tags, untagged: []}
    assert all(set(m) == {"digest", "tags", "timestamp"} for m in listed)
    result = ok(
        "repository", "show-manifests", "-n", "myregistry", "--repository", "team/app", "--detail"
    )
    assert "linux/amd64" in result.stdout and untagged in result.stdout
    result = ok(
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
    assert "ERROR: (NAME_UNKNOWN) " in result.stderr


def test_repository_delete(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    logged_in.push_images(LOGIN, [("hello-world", "latest")])
    logged_in.push_images(LOGIN, [("hello-world", None)], seed="2")
    result = run(
        "repository", "delete", "-n", "myregistry", "--repository", "hello-world", input="n\n"
    )
    assert result.exit_code == 1
    assert not logged_in.seen("DELETE")
    result = ok("repository", "delete", "-n", "myregistry", "--repository", "hello-world", "--yes")
    assert result.stdout == "Deleted repository 'hello-world': 2 manifests, 1 tag.\n"
    [delete] = [d for d in logged_in.seen("DELETE") if d.status != 401]
    assert delete.path == "/acr/v1/hello-world" and delete.headers["Host"] == LOGIN
    listed = ok("repository", "list", "-n", "myregistry", "-o", "json")
    assert json.loads(listed.stdout) == []
    result = run("repository", "delete", "-n", "myregistry", "--repository", "hello-world", "--yes")
    assert result.exit_code == 1 and "(NAME_UNKNOWN)" in result.stderr


def test_the_data_plane_answers_a_bearer_challenge_with_the_login(logged_in: LiveService) -> None:
    create_registries(logged_in, "myregistry")
    logged_in.push_images(LOGIN, [("a", "1"), ("b", "1")])
    logged_in.requests.clear()
    result = ok("repository", "list", "--name", "myregistry", "-o", "json")
    assert json.loads(result.stdout) == ["a", "b"]
    [token] = logged_in.seen("GET", "/oauth2/token")
    assert token.headers["Host"] == LOGIN
    assert token.query == {"service": LOGIN, "scope": "registry:catalog:*"}
    # The login's credential, to the realm on the configured server only.
    assert token.headers["Authorization"] == basic(logged_in.client_id, logged_in.secret)
    assert token.status == 200
    challenged, answered = logged_in.seen("GET", "/acr/v1/_catalog")
    assert challenged.status == 401
    assert answered.headers["Authorization"] == f"Bearer {token.reply['access_token']}"


def test_without_read_on_the_registry_its_login_server_comes_from_the_suffix(
    logged_in: LiveService, tmp_path: Path
) -> None:
    """A login with AcrPull alone may pull but not read the registry's settings (as az acr
    does, the login server is then `<name>.<suffix>`)."""
    create_registries(logged_in, "myregistry")
    logged_in.push_images(LOGIN, [("a", "1")])
    credential = tmp_path / "puller.json"
    ok("identity", "sp", "create", "-n", "puller", "--credential-file", str(credential))
    app_id = json.loads(credential.read_text())["clientId"]
    ok(
        "role",
        "assignment",
        "create",
        "--assignee",
        app_id,
        "--role",
        "AcrPull",
        "--registry",
        "myregistry",
    )
    ok("login", "--server", logged_in.url, "--credential-file", str(credential))
    logged_in.requests.clear()
    result = ok("repository", "list", "--name", "myregistry", "-o", "json")
    assert json.loads(result.stdout) == ["a"]
    assert logged_in.seen("GET", "/registries/myregistry")[0].status == 403
    result = run("repository", "list", "--name", "nosuch")
    assert result.exit_code == 1
    assert f"(NAME_UNKNOWN) no registry is reached at 'nosuch.{SUFFIX}'" in result.stderr


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
    service: LiveService, config_home: Path
) -> None:
    previous = os.umask(0)
    try:
        result = run(
            "login",
            "--server",
            service.url,
            "--service-principal",
            "-u",
            service.client_id,
            "--tenant",
            service.tenant,
            "--password-stdin",
            input=service.secret,
        )
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(profile_file(config_home).stat().st_mode) == 0o600
    assert stat.S_IMODE(profile_file(config_home).parent.stat().st_mode) == 0o700
