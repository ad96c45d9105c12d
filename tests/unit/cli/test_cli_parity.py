"""Issue 12's client-side parity and messages, against the real application in-process
(tests/unit/cli/live_service.py): `-n/--name` for `registry create|show|delete`, `--query`
and `-o tsv`, `repository show|untag`, and the messages a newcomer met (a URL as --source, a
tag conflict, a digest import, a wrong secret without --tenant, a server that is not
Transship, a network-rule denial)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from tests.peers.ports import LOOPBACK, free_port
from tests.unit.cli.live_service import SUFFIX, Handler, LiveService, profile_file, run
from transship.cli import profile as profiles
from transship.cli.client import ApiError, ManagementApi, unchecked
from transship.cli.main import main
from transship.wire.bodies import ImportImageParameters, ImportSource

LOGIN = f"myregistry.{SUFFIX}"
SOURCE_LOGIN = f"mysourceregistry.{SUFFIX}"


def ok(*args: str, input: str | None = None) -> Any:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "-o", "json").stdout)


def registry_names() -> list[str]:
    return [r["name"] for r in ok_json("registry", "list")]


# -- -n/--name on registry create|show|delete ---------------------------------------------------


def test_registry_create_show_delete_take_name_as_az_does(logged_in: LiveService) -> None:
    created = ok_json("registry", "create", "-n", "firstregistry")
    assert created["name"] == "firstregistry"
    assert created["properties"]["loginServer"] == f"firstregistry.{SUFFIX}"
    ok("registry", "create", "--name", "secondregistry")
    assert {"firstregistry", "secondregistry"} <= set(registry_names())

    shown = ok_json("registry", "show", "--name", "secondregistry")
    assert shown["name"] == "secondregistry"
    assert shown["properties"]["loginServer"] == f"secondregistry.{SUFFIX}"
    assert ok_json("registry", "show", "-n", "firstregistry")["name"] == "firstregistry"

    result = ok("registry", "delete", "-n", "firstregistry", "--yes")
    assert "Deleted registry 'firstregistry'." in result.stdout
    assert "firstregistry" not in registry_names()


def test_the_positional_name_still_works(logged_in: LiveService) -> None:
    ok("registry", "create", "oldstyleregistry")
    assert ok_json("registry", "show", "oldstyleregistry")["name"] == "oldstyleregistry"
    # The same name both ways is one name.
    assert ok_json("registry", "show", "oldstyleregistry", "-n", "oldstyleregistry")["name"] == (
        "oldstyleregistry"
    )
    ok("registry", "delete", "oldstyleregistry", "-y")
    assert "oldstyleregistry" not in registry_names()


def test_a_registry_name_is_required_once(logged_in: LiveService) -> None:
    result = run("registry", "show")
    assert result.exit_code == 2
    assert "missing the registry's name: give -n/--name REGISTRY" in result.stderr
    result = run("registry", "delete", "oneregistry", "--name", "tworegistry", "-y")
    assert result.exit_code == 2
    assert "two registry names: NAME 'oneregistry' and --name 'tworegistry'" in result.stderr
    result = run("registry", "create", "-n", "ab")
    assert result.exit_code == 2 and "5-50 alphanumeric" in result.stderr
    assert not logged_in.seen("PUT") and not logged_in.seen("DELETE")


# -- --query and -o tsv -------------------------------------------------------------------------


def test_query_selects_from_the_json_answer(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    result = ok("registry", "show", "-n", "myregistry", "--query", "properties.loginServer")
    # With the default -o table, a scalar result is a one-column table.
    assert result.stdout.split() == ["Result", LOGIN]
    result = ok(
        "registry", "show", "-n", "myregistry", "--query", "properties.loginServer", "-o", "tsv"
    )
    assert result.stdout == f"{LOGIN}\n"
    result = ok("registry", "list", "--query", "[].name", "-o", "json")
    assert sorted(json.loads(result.stdout)) == ["default", "myregistry"]
    result = ok(
        "registry",
        "list",
        "--query",
        "[?name=='myregistry'].{name: name, sku: sku.name, admin: properties.adminUserEnabled}",
        "-o",
        "tsv",
    )
    assert result.stdout == "myregistry\tPremium\tFalse\n"
    result = ok("registry", "list", "--query", "[?name=='myregistry'].{name: name, sku: sku.name}")
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["Name", "Sku"],
        ["myregistry", "Premium"],
    ]


def test_query_works_on_every_kind_of_client_command(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    logged_in.push_images(LOGIN, [("team/app", "v1"), ("team/app", "v2")])
    # A data-plane listing, a nested answer, and a command whose table is its own text.
    result = ok(
        "repository",
        "show-tags",
        "-n",
        "myregistry",
        "--repository",
        "team/app",
        "--query",
        "length(@)",
        "-o",
        "tsv",
    )
    assert result.stdout == "2\n"
    result = ok("registry", "network-rule", "list", "-n", "myregistry", "--query", "defaultAction")
    assert result.stdout.split() == ["Result", "Allow"]
    result = ok("registry", "delete", "-n", "myregistry", "-y", "--query", "deleted", "-o", "json")
    assert json.loads(result.stdout) is True


def test_tsv_without_a_query_prints_the_answers_scalar_fields(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    logged_in.push_images(LOGIN, [("app", "v1")])
    result = ok("repository", "show-tags", "-n", "myregistry", "--repository", "app", "-o", "tsv")
    assert result.stdout == "v1\n"
    result = ok("registry", "show", "-n", "myregistry", "-o", "tsv")
    [line] = result.stdout.splitlines()
    fields = line.split("\t")
    shown = ok_json("registry", "show", "-n", "myregistry")
    # One field per top-level value, in the answer's order; objects are left empty.
    assert len(fields) == len(shown)
    assert fields[list(shown).index("name")] == "myregistry"
    assert fields[list(shown).index("properties")] == ""


def test_a_bad_query_is_a_usage_error_before_any_request(logged_in: LiveService) -> None:
    result = run("registry", "list", "--query", "[?name=='x'")
    assert result.exit_code == 2
    assert "Invalid value for '--query': \"[?name=='x'\" is not a valid JMESPath expression" in (
        result.stderr
    )
    assert logged_in.requests == []
    result = run("repository", "list", "-n", "myregistry", "--query", "a..b")
    assert result.exit_code == 2 and "is not a valid JMESPath expression" in result.stderr
    assert logged_in.requests == []


def test_a_query_that_fails_on_the_answer_is_a_usage_error(logged_in: LiveService) -> None:
    result = run("registry", "list", "--query", "abs(@)")
    assert result.exit_code == 2
    assert "Error: --query: " in result.stderr and "abs()" in result.stderr
    assert result.stdout == ""


# -- repository show|untag ----------------------------------------------------------------------


def test_repository_show_a_repository_a_tag_and_a_manifest(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    [digest] = logged_in.push_images(LOGIN, [("team/app", "v1")])
    logged_in.push_images(LOGIN, [("team/app", "v2")], seed="2")

    shown = ok_json("repository", "show", "-n", "myregistry", "--repository", "team/app")
    assert shown["registry"] == LOGIN and shown["imageName"] == "team/app"
    assert (shown["manifestCount"], shown["tagCount"]) == (2, 2)

    tag = ok_json("repository", "show", "-n", "myregistry", "--image", "team/app:v1")
    assert (tag["name"], tag["digest"]) == ("v1", digest)  # the tag itself, as az prints it

    manifest = ok_json("repository", "show", "-n", "myregistry", "-t", f"team/app@{digest}")
    assert manifest["digest"] == digest and manifest["tags"] == ["v1"]

    result = ok("repository", "show", "-n", "myregistry", "-t", "team/app:v1")
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines()[1:])
    assert rows["digest"] == digest
    assert rows["changeableAttributes.deleteEnabled"] == "true"

    result = ok(
        "repository",
        "show",
        "-n",
        "myregistry",
        "-t",
        "team/app:v1",
        "--query",
        "digest",
        "-o",
        "tsv",
    )
    assert result.stdout == f"{digest}\n"


def test_repository_show_errors(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    logged_in.push_images(LOGIN, [("app", "v1")])
    result = run("repository", "show", "-n", "myregistry", "--repository", "nosuchrepo")
    assert result.exit_code == 1
    assert result.stderr.startswith("ERROR: (NAME_UNKNOWN)")
    assert "nosuchrepo" in result.stderr and result.stdout == ""
    result = run("repository", "show", "-n", "myregistry", "--image", "app:nosuchtag")
    assert result.exit_code == 1
    assert "ERROR: (TAG_UNKNOWN) tag nosuchtag is not in repository app" in result.stderr
    result = run("repository", "show", "-n", "myregistry", "--image", f"app@sha256:{'0' * 64}")
    assert result.exit_code == 1 and "(MANIFEST_UNKNOWN)" in result.stderr
    for args in ((), ("--repository", "app", "--image", "app:v1")):
        result = run("repository", "show", "-n", "myregistry", *args)
        assert result.exit_code == 2
        assert "give one of --repository REPO, --image REPO:TAG|REPO@DIGEST" in result.stderr
    result = run("repository", "show", "-n", "myregistry", "--image", "@sha256:00")
    assert result.exit_code == 2 and "is not REPO:TAG or REPO@DIGEST" in result.stderr


def test_repository_untag_removes_the_tag_and_keeps_the_manifest(
    logged_in: LiveService,
) -> None:
    ok("registry", "create", "-n", "myregistry")
    [digest] = logged_in.push_images(LOGIN, [("app", "v1")])
    ok("import", "-n", "myregistry", "--source", f"{LOGIN}/app:v1", "-t", "app:v2")
    logged_in.requests.clear()

    result = ok("repository", "untag", "-n", "myregistry", "--image", "app:v1")
    assert result.stdout == "Untagged app:v1 in myregistry.\n"
    # Sent bare first, then again with the token the challenge asked for.
    deletes = logged_in.seen("DELETE")
    assert [(r.path, r.status) for r in deletes][-1] == ("/acr/v1/app/_tags/v1", 202)
    assert {r.path for r in deletes} == {"/acr/v1/app/_tags/v1"}
    assert json.loads(
        ok(
            "repository", "show-tags", "-n", "myregistry", "--repository", "app", "-o", "json"
        ).stdout
    ) == ["v2"]
    manifests = ok_json("repository", "show-manifests", "-n", "myregistry", "--repository", "app")
    assert [(m["digest"], m["tags"]) for m in manifests] == [(digest, ["v2"])]

    result = ok("repository", "untag", "-n", "myregistry", "-t", "app:v2", "-o", "json")
    assert json.loads(result.stdout) == {"repository": "app", "tag": "v2", "untagged": True}
    manifests = ok_json("repository", "show-manifests", "-n", "myregistry", "--repository", "app")
    assert [(m["digest"], m["tags"]) for m in manifests] == [(digest, [])]


def test_repository_untag_errors(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    logged_in.push_images(LOGIN, [("app", "v1")])
    logged_in.requests.clear()
    result = run("repository", "untag", "-n", "myregistry", "--image", "app")
    assert result.exit_code == 2
    assert "'app' names no tag: give REPO:TAG" in result.stderr
    result = run("repository", "untag", "-n", "myregistry", "--image", f"app@sha256:{'0' * 64}")
    assert result.exit_code == 2 and "is not REPO:TAG" in result.stderr
    assert not logged_in.seen("DELETE")
    result = run("repository", "untag", "-n", "myregistry", "--image", "app:nosuchtag")
    assert result.exit_code == 1
    assert "ERROR: (TAG_UNKNOWN) tag nosuchtag is not in repository app" in result.stderr
    result = run("repository", "untag", "-n", "myregistry", "--image", "nosuchrepo:v1")
    assert result.exit_code == 1 and result.stderr.startswith("ERROR: (")
    assert json.loads(
        ok(
            "repository", "show-tags", "-n", "myregistry", "--repository", "app", "-o", "json"
        ).stdout
    ) == ["v1"]


def test_repository_delete_image_deletes_one_manifest_with_its_tags(
    logged_in: LiveService,
) -> None:
    ok("registry", "create", "-n", "myregistry")
    [first] = logged_in.push_images(LOGIN, [("app", "v1")])
    [second] = logged_in.push_images(LOGIN, [("app", "v2")], seed="2")
    ok("import", "-n", "myregistry", "--source", f"{LOGIN}/app:v1", "-t", "app:stable")
    logged_in.requests.clear()

    # Refused at the prompt: nothing deleted; the prompt names the digest and its tags.
    result = run("repository", "delete", "-n", "myregistry", "--image", "app:v1", input="n\n")
    assert result.exit_code == 1
    assert f"This deletes the manifest app@{first} and its tags stable, v1" in result.stderr
    assert not [d for d in logged_in.seen("DELETE") if d.status != 401]

    result = ok("repository", "delete", "-n", "myregistry", "--image", "app:v1", "--yes")
    assert result.stdout == f"Deleted app@{first} (2 tags).\n"
    manifests = ok_json("repository", "show-manifests", "-n", "myregistry", "--repository", "app")
    assert [(m["digest"], m["tags"]) for m in manifests] == [(second, ["v2"])]

    result = ok(
        "repository", "delete", "-n", "myregistry", "-t", f"app@{second}", "-y", "-o", "json"
    )
    assert json.loads(result.stdout) == {
        "repository": "app",
        "digest": second,
        "tagsDeleted": ["v2"],
    }
    assert ok_json("repository", "show-manifests", "-n", "myregistry", "--repository", "app") == []

    result = run("repository", "delete", "-n", "myregistry", "-t", "app:v1", "-y")
    assert result.exit_code == 1 and "(TAG_UNKNOWN)" in result.stderr
    result = run("repository", "delete", "-n", "myregistry", "-t", "app:v1", "--repository", "a")
    assert result.exit_code == 2
    assert "give one of --repository REPO, --image REPO:TAG|REPO@DIGEST" in result.stderr


# -- import messages ------------------------------------------------------------------------------


def test_a_url_as_source_says_a_scheme_is_not_part_of_an_image(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    logged_in.requests.clear()
    result = run("import", "-n", "myregistry", "--source", "https://registry.example.com/app:1")
    assert result.exit_code == 2
    assert (
        "--source 'https://registry.example.com/app:1' starts with 'https://': a URL scheme is "
        "not part of an image reference. Write --source 'registry.example.com/app:1'."
    ) in result.stderr.replace("\n", " ").replace("  ", " ")
    assert not logged_in.import_bodies()


def test_the_server_refuses_a_url_as_source_image_naming_the_field(
    logged_in: LiveService,
) -> None:
    ok("registry", "create", "-n", "myregistry")
    ok("registry", "create", "-n", "mysourceregistry")
    management = ManagementApi(profiles.resolve())
    # As an SDK or az would send it with --registry: the URL as sourceImage.
    parameters = unchecked(
        ImportImageParameters,
        source=unchecked(
            ImportSource,
            resource_id=logged_in.arm_id("mysourceregistry"),
            source_image="https://mysourceregistry.localhost:5000/app:1",
        ),
        target_tags=["app:1"],
        mode="NoForce",
    )
    with pytest.raises(ApiError) as caught:
        management.import_image("myregistry", parameters)
    assert (caught.value.status, caught.value.code) == (400, "InvalidParameter")
    assert caught.value.target == "source.sourceImage"
    assert caught.value.message == (
        "source.sourceImage 'https://mysourceregistry.localhost:5000/app:1' starts with the "
        "URL scheme 'https://': a URL scheme is not part of an image reference. Write the "
        "image as 'mysourceregistry.localhost:5000/app:1'."
    )
    assert ok_json("import", "list", "-n", "myregistry") == []


def test_a_tag_conflict_says_to_use_force(logged_in: LiveService) -> None:
    for name in ("myregistry", "mysourceregistry"):
        ok("registry", "create", "-n", name)
    logged_in.push_images(SOURCE_LOGIN, [("app", "1"), ("other", "1")])
    ok("import", "-n", "myregistry", "--source", f"{SOURCE_LOGIN}/app:1")
    result = run(
        "import", "-n", "myregistry", "--source", f"{SOURCE_LOGIN}/other:1", "--image", "app:1"
    )
    assert result.exit_code == 1
    assert (
        "ERROR: (TagAlreadyExists) Tag app:1 already exists in target registry. Import with "
        "--force (mode Force) to overwrite it."
    ) in result.stderr
    ok(
        "import",
        "-n",
        "myregistry",
        "--source",
        f"{SOURCE_LOGIN}/other:1",
        "-t",
        "app:1",
        "--force",
    )
    other = ok_json("repository", "show", "-n", "myregistry", "-t", "app:1")["digest"]
    assert (
        other == ok_json("repository", "show", "-n", "mysourceregistry", "-t", "other:1")["digest"]
    )


def test_a_digest_import_is_untagged_as_the_help_says(logged_in: LiveService) -> None:
    for name in ("myregistry", "mysourceregistry"):
        ok("registry", "create", "-n", name)
    [digest] = logged_in.push_images(SOURCE_LOGIN, [("app", "1")])
    help_text = ok("import", "--help").stdout
    assert "Import by manifest digest, untagged" in help_text
    assert "defaults to the repository name" not in help_text

    ok("import", "-n", "myregistry", "--source", f"{SOURCE_LOGIN}/app@{digest}")
    manifests = ok_json("repository", "show-manifests", "-n", "myregistry", "--repository", "app")
    assert [(m["digest"], m["tags"]) for m in manifests] == [(digest, [])]


# -- login messages -------------------------------------------------------------------------------


def test_a_wrong_secret_gets_the_same_answer_with_or_without_tenant(
    service: LiveService, config_home: Path
) -> None:
    client_id = service.client_id
    base = ("login", "--server", service.url, "--service-principal", "-u", client_id)
    with_tenant = run(*base, "--tenant", service.tenant, "-p", "wrong-password")
    without_tenant = run(*base, "-p", "wrong-password")
    for result in (with_tenant, without_tenant):
        assert result.exit_code == 1
        assert result.stderr.startswith(
            f"ERROR: (invalid_client) the server refused the credential of '{client_id}': "
            f"AADSTS7000215: Invalid client secret provided for application '{client_id}'"
        ), result.stderr
    assert not profile_file(config_home).exists()


class _NotTransship(BaseHTTPRequestHandler):
    """A web server that is not Transship: every path answers `status` with an HTML page."""

    status = 404

    def _answer(self) -> None:
        body = b"<html><body><h1>Not Found</h1></body></html>"
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=[404, 200])
def web_server(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_NotTransship,), {"status": request.param})
    server = ThreadingHTTPServer((LOOPBACK, free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_proxy_error_page_is_not_called_another_server(
    service: LiveService, config_home: Path
) -> None:
    # A reverse proxy whose Transship is down: its 502 page is reported as it came.
    service.intercept("POST", f"/{service.tenant}/oauth2/v2.0/token", _bad_gateway)
    result = run(
        "login", "--server", service.url, "--credential-file", str(service.credential_file)
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("ERROR: (HTTP502) Bad Gateway: <html>")
    assert "NotTransship" not in result.stderr
    assert not profile_file(config_home).exists()


async def _bad_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")


@pytest.mark.parametrize("tenant", [(), ("--tenant", "t1")], ids=["no tenant", "tenant"])
def test_login_to_a_server_that_is_not_transship_says_so(
    web_server: str, config_home: Path, tenant: tuple[str, ...]
) -> None:
    result = CliRunner().invoke(
        main,
        ["login", "--server", web_server, "--service-principal", "-u", "app", "-p", "x", *tenant],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"ERROR: (NotTransship) {web_server} is not a Transship server (or not its base URL)"
    ), result.stderr
    assert "Give the URL that `transship serve` listens on" in result.stderr
    assert "Traceback" not in result.output
    assert not profile_file(config_home).exists()


# -- the network-rule denial ---------------------------------------------------------------------


def test_a_network_denial_points_at_transships_own_command(logged_in: LiveService) -> None:
    ok("registry", "create", "-n", "myregistry")
    logged_in.push_images(LOGIN, [("app", "v1")])
    ok("registry", "update", "-n", "myregistry", "--default-action", "Deny")
    result = run("repository", "show-tags", "-n", "myregistry", "--repository", "app")
    assert result.exit_code == 1
    message = result.stderr.replace("\n", " ")
    assert "ERROR: (DENIED) client with IP '127.0.0.1' is not allowed access." in message
    assert "`transship registry network-rule add -n myregistry --ip-address 127.0.0.1`" in message
    assert "aka.ms" not in message
    # The advice works: the rule lets the client back in.
    ok("registry", "network-rule", "add", "-n", "myregistry", "--ip-address", "127.0.0.1")
    tags = ok("repository", "show-tags", "-n", "myregistry", "--repository", "app", "-o", "tsv")
    assert tags.stdout == "v1\n"


# -- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["repository", "show"], ["repository", "untag"], ["registry", "show"], ["registry", "list"]],
    ids=" ".join,
)
def test_help_shows_name_query_and_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output and "--query JMESPATH" in result.output
    assert "table|json|tsv" in result.output
    if command != ["registry", "list"]:
        assert "-n, --name" in result.output
