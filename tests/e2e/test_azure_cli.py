"""The real, unmodified Azure CLI (``az``) against Transship over TLS, set up as a user would.

Every ``az acr import`` scenario of the ACR import article (Docker Hub, with and without
credentials; Microsoft Container Registry; a registry of the same subscription by login
server; one whose public access is disabled, by ``--registry <resource id>``; by digest;
another subscription; a service principal's credentials; another tenant; a non-Azure
private registry), the options (``--force``, ``--no-wait``, repeated ``-t``,
``--repository``), the listing and deletion commands, and the failures, which must reach the
user as ACR's do: a non-zero exit and ``(Code) Message`` on stderr.

One service, one set of upstream registries and one ``az`` config dir serve the whole module
(see :mod:`tests.e2e.azure_env`); each test uses repositories of its own, so the tests do not
depend on each other's order. Each ``az`` invocation costs about a second. Secrets go in
one argument, ``--password=…``: a generated one may start with ``-``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.azure_env import AzureEnv, start_azure_env, wait_for_import
from tests.peers.azure import AzResult, AzureCli
from tests.support.identity import Credential, IdentityClient

pytestmark = [pytest.mark.peers, pytest.mark.heavy, pytest.mark.slow(seconds=70)]

SECOND_SUBSCRIPTION = "0b0b0b0b-1111-4222-8333-444455556666"
OTHER_TENANT = "7e7e7e7e-2222-4333-8444-555566667777"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureEnv]:
    env = start_azure_env(tmp_path_factory.mktemp("azure-cli"), mcr=True, private=True)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def registries(env: AzureEnv) -> dict[str, dict[str, Any]]:
    """``targetreg`` (``--sku Premium``) and ``sourcereg`` (``--sku Standard``), made with
    ``az acr create``; ``sourcereg`` holds ``aci-helloworld:latest`` (Docker Hub's hello-world)."""
    created = {
        name: env.az.json("acr", "create", "-n", name, "-g", "default", "--sku", sku)
        for name, sku in (("targetreg", "Premium"), ("sourcereg", "Standard"))
    }
    env.az.run(
        "acr", "import", "-n", "sourcereg",
        "--source", "docker.io/library/hello-world:latest",
        "--image", "aci-helloworld:latest",
    )  # fmt: skip
    return created


# -- helpers ----------------------------------------------------------------------------------


def fails(az: AzureCli, *args: str, exit_code: int = 1) -> str:
    """Run ``az args…``, which must fail with ``exit_code``; return its stderr."""
    result = az.run(*args, check=False)
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    return result.stderr


def tags(az: AzureCli, registry: str, repository: str) -> list[str]:
    found: list[str] = az.json(
        "acr", "repository", "show-tags", "-n", registry, "--repository", repository
    )
    return found


def manifests(az: AzureCli, registry: str, repository: str) -> dict[str, list[str]]:
    """``{digest: tags}`` from ``az acr repository show-manifests``."""
    listed = az.json(
        "acr", "repository", "show-manifests", "-n", registry, "--repository", repository
    )
    return {m["digest"]: m["tags"] for m in listed}


def do_import(az: AzureCli, *args: str) -> AzResult:
    return az.run("acr", "import", *args, output="none")


def login_as(env: AzureEnv, name: str, credential: Credential) -> AzureCli:
    other = env.new_az(name)
    other.setup_cloud()
    other.login_service_principal(credential.client_id, credential.secret, credential.tenant_id)
    return other


# -- set-up -----------------------------------------------------------------------------------


def test_cloud_register_and_login_as_a_user_would(env: AzureEnv) -> None:
    endpoints = env.cloud["endpoints"]
    assert endpoints["resourceManager"] == env.server.url + "/"
    assert endpoints["activeDirectory"].rstrip("/") == env.server.url
    assert env.cloud["suffixes"]["acrLoginServerEndpoint"] == f".transship.localhost:{env.port}"
    assert [s["id"] for s in env.subscriptions] == [env.subscription]
    assert env.subscriptions[0]["tenantId"] == env.owner.tenant_id
    assert env.subscriptions[0]["user"] == {"name": env.owner.client_id, "type": "servicePrincipal"}
    assert env.az.json("account", "show")["id"] == env.subscription


def test_acr_create_show_list(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    target = registries["targetreg"]
    assert target["id"] == env.registry_id("targetreg")
    assert target["loginServer"] == env.login_server("targetreg")
    assert target["sku"] == {"name": "Premium", "tier": "Premium"}
    assert target["provisioningState"] == "Succeeded"
    assert target["networkRuleBypassOptions"] == "AzureServices"
    assert registries["sourcereg"]["sku"] == {"name": "Standard", "tier": "Standard"}
    assert env.az.json("acr", "show", "-n", "targetreg")["id"] == target["id"]
    listed = {r["name"]: r["loginServer"] for r in env.az.json("acr", "list")}
    assert listed["targetreg"] == env.login_server("targetreg")
    assert listed["sourcereg"] == env.login_server("sourcereg")


# -- imports from public and private registries ---------------------------------------------


def test_import_from_docker_hub(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    hello = env.images["hello-world:latest"]
    started = time.monotonic()
    do_import(
        env.az, "--name", "targetreg",
        "--source", "docker.io/library/hello-world:latest",
        "--image", "hello-world:latest",
    )  # fmt: skip
    # The CLI polls as often as Retry-After says: a small import takes seconds, not 30.
    assert time.monotonic() - started < 15
    # Every platform of the multi-arch image came along (the article's show-manifests check).
    found = manifests(env.az, "targetreg", "hello-world")
    assert set(found) == set(hello.manifest_digests)
    assert found[hello.digest] == ["latest"]


def test_import_docker_hub_official_image_by_short_name(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    # The CLI sends registryUri docker.io and sourceImage "hello-world"; the service adds
    # library/ and the default tag, and the target is the source's name and tag.
    do_import(env.az, "-n", "sourcereg", "--source", "docker.io/hello-world")
    assert tags(env.az, "sourcereg", "hello-world") == ["latest"]


def test_import_from_docker_hub_with_credentials(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    assert env.hub.username is not None and env.hub.password is not None
    do_import(
        env.az, "--name", "targetreg",
        "--source", "docker.io/tensorflow/tensorflow:latest-gpu",
        "--image", "tensorflow:latest-gpu",
        "--username", env.hub.username,
        f"--password={env.hub.password}",
    )  # fmt: skip
    assert tags(env.az, "targetreg", "tensorflow") == ["latest-gpu"]

    stderr = fails(
        env.az, "acr", "import", "--name", "targetreg",
        "--source", "docker.io/tensorflow/tensorflow:latest-gpu",
        "--image", "tensorflow:wrong-password",
        "--username", env.hub.username, "--password", "not-the-password",
    )  # fmt: skip
    assert "(UpstreamUnauthorized)" in stderr and "docker.io" in stderr


def test_import_from_a_private_non_azure_registry(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    private = env.private
    assert private is not None and private.username and private.password
    do_import(
        env.az, "--name", "targetreg",
        "--source", "private.example.com/sourcerepo/sourceimage:tag",
        "--image", "sourceimage:tag",
        "--username", private.username, f"--password={private.password}",
    )  # fmt: skip
    assert tags(env.az, "targetreg", "sourceimage") == ["tag"]

    stderr = fails(
        env.az, "acr", "import", "--name", "targetreg",
        "--source", "private.example.com/sourcerepo/sourceimage:tag",
        "--image", "sourceimage:anonymous",
    )  # fmt: skip
    assert "(UpstreamUnauthorized)" in stderr and "private.example.com" in stderr


def test_import_windows_image_from_microsoft_container_registry(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    servercore = env.images["servercore:ltsc2019"]
    do_import(
        env.az, "--name", "targetreg",
        "--source", "mcr.microsoft.com/windows/servercore:ltsc2019",
        "--image", "servercore:ltsc2019",
    )  # fmt: skip
    metadata = env.az.json(
        "acr", "manifest", "list-metadata", "-r", "targetreg", "-n", "servercore"
    )
    platforms = {m["digest"]: (m.get("os"), m.get("architecture")) for m in metadata}
    assert set(platforms) == set(servercore.manifest_digests)
    assert {p for p in platforms.values() if p[0]} == {("windows", "amd64"), ("linux", "amd64")}


# -- imports from registries of the same service --------------------------------------------


def test_import_from_the_same_subscription_by_login_server(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    do_import(
        env.az, "--name", "targetreg",
        "--source", f"{env.login_server('sourcereg')}/aci-helloworld:latest",
        "--image", "aci-helloworld:latest",
    )  # fmt: skip
    assert tags(env.az, "targetreg", "aci-helloworld") == ["latest"]
    # --registry may also name the source registry (the CLI looks it up in the subscription).
    do_import(
        env.az, "--name", "targetreg",
        "--source", "aci-helloworld:latest",
        "--image", "aci-byname:latest",
        "--registry", "sourcereg",
    )  # fmt: skip
    assert tags(env.az, "targetreg", "aci-byname") == ["latest"]


def test_import_by_digest(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    digest = env.images["hello-world:latest"].digest
    # From a registry of the service by login server, without --image: copied untagged.
    do_import(
        env.az, "--name", "targetreg",
        "--source", f"{env.login_server('sourcereg')}/aci-helloworld@{digest}",
    )  # fmt: skip
    assert digest in manifests(env.az, "targetreg", "aci-helloworld")
    # From Docker Hub by digest, tagged on the way in.
    do_import(
        env.az, "--name", "targetreg",
        "--source", f"docker.io/library/hello-world@{digest}",
        "--image", "pinned:v1",
    )  # fmt: skip
    assert manifests(env.az, "targetreg", "pinned")[digest] == ["v1"]
    # By --registry <resource id> and a digest.
    do_import(
        env.az, "--name", "targetreg",
        "--source", f"aci-helloworld@{digest}",
        "--registry", env.registry_id("sourcereg"),
        "--image", "pinned:v2",
    )  # fmt: skip
    assert manifests(env.az, "targetreg", "pinned")[digest] == ["v1", "v2"]


def test_import_from_a_registry_whose_public_access_is_disabled(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    az = env.az
    az.run("acr", "create", "-n", "lockedreg", "-g", "default", "--sku", "Premium", output="none")
    do_import(
        az, "-n", "lockedreg",
        "--source", "docker.io/library/hello-world:latest", "--image", "aci-helloworld:latest",
    )  # fmt: skip
    updated = az.json("acr", "update", "-n", "lockedreg", "--public-network-enabled", "false")
    assert updated["publicNetworkAccess"] == "Disabled"
    assert updated["networkRuleSet"]["defaultAction"] == "Deny"
    assert updated["networkRuleBypassOptions"] == "AzureServices"  # trusted services: the default

    # The client itself is now refused by the registry's data plane...
    stderr = fails(az, "acr", "repository", "list", "-n", "lockedreg")
    assert "connectivity_forbidden_error" in stderr, stderr  # az's own text for ACR's 403
    # ...but the import service, a trusted service, still reads it, given its resource id.
    do_import(
        az, "--name", "targetreg",
        "--source", "aci-helloworld:latest",
        "--image", "aci-helloworld:from-locked",
        "--registry", env.registry_id("lockedreg"),
    )  # fmt: skip
    assert "from-locked" in tags(az, "targetreg", "aci-helloworld")

    # Without the trusted-service bypass, the import is refused.
    az.run("acr", "update", "-n", "lockedreg", "--allow-trusted-services", "false", output="none")
    stderr = fails(
        az, "acr", "import", "--name", "targetreg",
        "--source", "aci-helloworld:latest",
        "--image", "aci-helloworld:no-bypass",
        "--registry", env.registry_id("lockedreg"),
    )  # fmt: skip
    assert "(NetworkAccessDenied)" in stderr


def test_import_from_another_subscription(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    az = env.az

    async def create(client: IdentityClient) -> str:
        return await client.create_subscription(SECOND_SUBSCRIPTION, "Second subscription")

    env.owner_api(create)
    refreshed = az.json("account", "list", "--refresh")
    assert SECOND_SUBSCRIPTION in {s["id"] for s in refreshed}
    on_second = ("--subscription", SECOND_SUBSCRIPTION)
    az.run("group", "create", "-n", "OtherGroup", "-l", "local", *on_second, output="none")
    az.run(
        "acr", "create", "-n", "othersubreg", "-g", "OtherGroup", "--sku", "Standard", *on_second,
        output="none",
    )  # fmt: skip
    do_import(
        az, "-n", "othersubreg", *on_second,
        "--source", "docker.io/library/hello-world:latest",
        "--image", "samples/aci-helloworld:latest",
    )  # fmt: skip

    source_id = env.registry_id("othersubreg", "OtherGroup", SECOND_SUBSCRIPTION)
    do_import(
        az, "--name", "targetreg",
        "--source", "samples/aci-helloworld:latest",
        "--image", "aci-hello-world:latest",
        "--registry", source_id,
    )  # fmt: skip
    assert tags(az, "targetreg", "aci-hello-world") == ["latest"]


def test_import_with_service_principal_credentials(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    async def create(client: IdentityClient) -> Credential:
        return await client.create_service_principal("acr-puller")

    puller = env.owner_api(create)
    assignment = env.az.json(
        "role", "assignment", "create",
        "--assignee-object-id", puller.object_id,
        "--assignee-principal-type", "ServicePrincipal",
        "--role", "AcrPull",
        "--scope", env.registry_id("sourcereg"),
    )  # fmt: skip
    assert assignment["principalId"] == puller.object_id
    assert assignment["scope"] == env.registry_id("sourcereg")

    do_import(
        env.az, "--name", "targetreg",
        "--source", f"{env.login_server('sourcereg')}/aci-helloworld:latest",
        "--image", "targetimage:tag",
        "--username", puller.client_id, f"--password={puller.secret}",
    )  # fmt: skip
    assert tags(env.az, "targetreg", "targetimage") == ["tag"]

    stderr = fails(
        env.az, "acr", "import", "--name", "targetreg",
        "--source", f"{env.login_server('sourcereg')}/aci-helloworld:latest",
        "--image", "targetimage:bad-secret",
        "--username", puller.client_id, "--password", "not-the-secret",
    )  # fmt: skip
    assert "(InvalidSourceCredentials)" in stderr


def test_import_from_another_tenant(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    async def create_tenant(client: IdentityClient) -> Credential:
        return await client.create_tenant(OTHER_TENANT, "Contoso")

    contoso = env.owner_api(create_tenant)
    registry_id = env.registry_id("contosoreg", subscription=contoso.subscription_id)

    async def populate(client: IdentityClient) -> str:
        await client.create_registry(contoso.subscription_id, "default", "contosoreg")
        operation = await client.ok(
            "POST",
            f"{registry_id}/importImage",
            {
                "source": {"registryUri": "docker.io", "sourceImage": "library/hello-world:v2"},
                "targetTags": ["sourcerrepo:tag"],
            },
        )
        assert (await wait_for_import(client, operation))["status"] == "Succeeded"
        return await client.create_token(
            registry_id, "importer", ["repositories/sourcerrepo/content/read"]
        )

    token_password = env.api(contoso, populate)
    source = f"{env.login_server('contosoreg')}/sourcerrepo:tag"

    # The registry is not visible to this tenant's identity: credentials are needed.
    stderr = fails(
        env.az, "acr", "import", "-n", "targetreg", "--source", source, "--image", "xtenant:none"
    )
    assert "(CrossTenantImportNeedsCredentials)" in stderr
    # A service principal of the other tenant...
    do_import(
        env.az, "-n", "targetreg", "--source", source, "--image", "xtenant:sp",
        "--username", contoso.client_id, f"--password={contoso.secret}",
    )  # fmt: skip
    # ...or a repository-scoped token of the source registry.
    do_import(
        env.az, "-n", "targetreg", "--source", source, "--image", "xtenant:token",
        "--username", "importer", f"--password={token_password}",
    )  # fmt: skip
    v2 = env.images["hello-world:v2"].digest
    assert manifests(env.az, "targetreg", "xtenant")[v2] == ["sp", "token"]


# -- options ----------------------------------------------------------------------------------


def test_no_force_conflict_then_force(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    latest, v2 = env.images["hello-world:latest"].digest, env.images["hello-world:v2"].digest
    do_import(
        env.az, "-n", "targetreg", "--source", "docker.io/library/hello-world:latest",
        "--image", "conflict:v1",
    )  # fmt: skip
    stderr = fails(
        env.az, "acr", "import", "-n", "targetreg",
        "--source", "docker.io/library/hello-world:v2", "--image", "conflict:v1",
    )  # fmt: skip
    assert "(TagAlreadyExists)" in stderr
    assert "Tag conflict:v1 already exists in target registry." in stderr
    assert manifests(env.az, "targetreg", "conflict")[latest] == ["v1"]

    do_import(
        env.az, "-n", "targetreg", "--source", "docker.io/library/hello-world:v2",
        "--image", "conflict:v1", "--force",
    )  # fmt: skip
    found = manifests(env.az, "targetreg", "conflict")
    assert found[v2] == ["v1"] and found[latest] == []


def test_no_wait_repeated_tags_and_untagged_repositories(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    hello = env.images["hello-world:latest"]
    started = env.az.run(
        "acr", "import", "-n", "targetreg",
        "--source", "docker.io/library/hello-world:latest",
        "-t", "multi:a", "-t", "multi:b", "-t", "other/name:c",
        "--repository", "untagged-one", "--repository", "untagged-two",
        "--no-wait",
    )  # fmt: skip
    assert started.stdout.strip() == ""
    deadline = time.monotonic() + 30
    while True:
        listed = env.az.json("acr", "repository", "list", "-n", "targetreg")
        if {"multi", "other/name", "untagged-one", "untagged-two"} <= set(listed):
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)
    assert tags(env.az, "targetreg", "multi") == ["a", "b"]
    assert tags(env.az, "targetreg", "other/name") == ["c"]
    for repository in ("untagged-one", "untagged-two"):
        found = manifests(env.az, "targetreg", repository)
        assert set(found) == set(hello.manifest_digests)
        assert all(t == [] for t in found.values())


# -- failures ---------------------------------------------------------------------------------


def test_missing_source_image(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    stderr = fails(
        env.az, "acr", "import", "-n", "targetreg", "--source", "docker.io/library/nosuch:latest"
    )
    assert "(ManifestUnknown)" in stderr and "library/nosuch:latest" in stderr
    stderr = fails(
        env.az, "acr", "import", "-n", "targetreg",
        "--source", f"{env.login_server('sourcereg')}/aci-helloworld:nosuchtag",
    )  # fmt: skip
    assert "(ManifestUnknown)" in stderr


def test_missing_permission_on_the_target(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    async def create(client: IdentityClient) -> Credential:
        return await client.create_service_principal("target-reader")

    reader = env.owner_api(create)
    env.az.run(
        "role", "assignment", "create",
        "--assignee-object-id", reader.object_id,
        "--assignee-principal-type", "ServicePrincipal",
        "--role", "Reader",
        "--scope", env.registry_id("targetreg"),
        output="none",
    )  # fmt: skip
    az = login_as(env, "reader", reader)
    assert az.json("acr", "show", "-n", "targetreg")["name"] == "targetreg"  # Reader may read
    stderr = fails(
        az, "acr", "import", "-n", "targetreg",
        "--source", "docker.io/library/hello-world:latest", "--image", "denied:v1",
    )  # fmt: skip
    assert "(AuthorizationFailed)" in stderr
    assert "Microsoft.ContainerRegistry/registries/importImage/action" in stderr
    assert reader.client_id in stderr


def test_unknown_registry(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    # Without -g the CLI looks the registry up among the subscription's resources itself.
    stderr = fails(
        env.az, "acr", "import", "-n", "nosuchreg",
        "--source", "docker.io/library/hello-world:latest",
    )  # fmt: skip
    assert "nosuchreg" in stderr and "could not be found" in stderr
    # With -g it asks for the registry: ARM's ResourceNotFound (az exits 3 for it).
    stderr = fails(
        env.az, "acr", "import", "-n", "nosuchreg", "-g", "default",
        "--source", "docker.io/library/hello-world:latest", exit_code=3,
    )  # fmt: skip
    assert "(ResourceNotFound)" in stderr
    assert "Microsoft.ContainerRegistry/registries/nosuchreg" in stderr
    # An unknown source registry.
    stderr = fails(
        env.az, "acr", "import", "-n", "targetreg",
        "--source", "aci-helloworld:latest",
        "--registry", env.registry_id("nosuchsource"), exit_code=3,
    )  # fmt: skip
    assert "(ResourceNotFound)" in stderr and "nosuchsource" in stderr


# -- repositories, manifests, tokens, credentials ---------------------------------------------


def test_repository_list_show_untag_delete(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    az = env.az
    hello = env.images["hello-world:latest"]
    do_import(
        az, "-n", "targetreg", "--source", "docker.io/library/hello-world:latest",
        "-t", "todelete:a", "-t", "todelete:b", "-t", "todelete:c", "-t", "gone:x",
    )  # fmt: skip
    listed = az.json("acr", "repository", "list", "-n", "targetreg")
    assert {"todelete", "gone"} <= set(listed) and listed == sorted(listed)

    shown = az.json("acr", "repository", "show", "-n", "targetreg", "--repository", "todelete")
    assert shown["imageName"] == "todelete" and shown["registry"] == env.login_server("targetreg")
    assert shown["tagCount"] == 3 and shown["manifestCount"] == len(hello.manifest_digests)
    tag = az.json("acr", "repository", "show", "-n", "targetreg", "--image", "todelete:a")
    assert tag["name"] == "a" and tag["digest"] == hello.digest

    az.run("acr", "repository", "untag", "-n", "targetreg", "--image", "todelete:a", output="none")
    assert tags(az, "targetreg", "todelete") == ["b", "c"]

    # --image repo:tag deletes the manifest the tag names, and so every tag on it.
    az.run(
        "acr", "repository", "delete", "-n", "targetreg", "--image", "todelete:b", "--yes",
        output="none",
    )  # fmt: skip
    assert tags(az, "targetreg", "todelete") == []
    assert hello.digest not in manifests(az, "targetreg", "todelete")

    deleted = az.json(
        "acr", "repository", "delete", "-n", "targetreg", "--repository", "gone", "--yes"
    )
    assert deleted["tagsDeleted"] == ["x"]
    assert set(deleted["manifestsDeleted"]) == set(hello.manifest_digests)
    assert "gone" not in az.json("acr", "repository", "list", "-n", "targetreg")
    stderr = fails(
        az, "acr", "repository", "show-tags", "-n", "targetreg", "--repository", "gone"
    )  # fmt: skip
    assert "repository gone is not known" in stderr, stderr


def test_manifest_list_metadata(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    v2 = env.images["hello-world:v2"]
    do_import(
        env.az, "-n", "targetreg", "--source", "docker.io/library/hello-world:v2",
        "--image", "metadata:v2",
    )  # fmt: skip
    metadata = env.az.json("acr", "manifest", "list-metadata", "-r", "targetreg", "-n", "metadata")
    by_digest = {m["digest"]: m for m in metadata}
    assert set(by_digest) == set(v2.manifest_digests)
    assert by_digest[v2.digest]["tags"] == ["v2"]
    assert by_digest[v2.digest]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {
        (by_digest[d].get("os"), by_digest[d].get("architecture")) for d in v2.child_digests
    } == {
        ("linux", "amd64"),
        ("linux", "arm64"),
    }
    # The positional form takes <login server>/<repository>.
    again = env.az.json(
        "acr", "manifest", "list-metadata", f"{env.login_server('targetreg')}/metadata"
    )
    assert {m["digest"] for m in again} == set(by_digest)


def test_acr_login_expose_token(env: AzureEnv, registries: dict[str, dict[str, Any]]) -> None:
    exposed = env.az.json("acr", "login", "-n", "targetreg", "--expose-token")
    login_server = env.login_server("targetreg")
    assert exposed["loginServer"] == login_server
    assert exposed["username"] == "00000000-0000-0000-0000-000000000000"
    # The token is an ACR refresh token: trade it for an access token and list the catalog.
    with requests.Session() as http:
        http.trust_env = False
        http.verify = str(env.server.ca_certificate)
        answer = http.post(
            f"https://{login_server}/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "service": login_server,
                "scope": "registry:catalog:*",
                "refresh_token": exposed["accessToken"],
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        catalog = http.get(
            f"https://{login_server}/v2/_catalog",
            headers={"Authorization": "Bearer " + answer.json()["access_token"]},
            timeout=30,
        )
        assert catalog.status_code == 200, catalog.text
        assert isinstance(catalog.json()["repositories"], list)


def test_admin_credentials_show_and_renew(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    az = env.az
    az.run("acr", "update", "-n", "sourcereg", "--admin-enabled", "true", output="none")
    shown = az.json("acr", "credential", "show", "-n", "sourcereg")
    assert shown["username"] == "sourcereg"
    assert [p["name"] for p in shown["passwords"]] == ["password", "password2"]
    renewed = az.json(
        "acr", "credential", "renew", "-n", "sourcereg", "--password-name", "password2"
    )
    before = {p["name"]: p["value"] for p in shown["passwords"]}
    after = {p["name"]: p["value"] for p in renewed["passwords"]}
    assert after["password"] == before["password"] and after["password2"] != before["password2"]
    # The admin user works on the data plane, as `-u/-p` of the repository commands.
    listed = az.json(
        "acr", "repository", "list", "-n", "sourcereg",
        "-u", "sourcereg", f"--password={after['password2']}",
    )  # fmt: skip
    assert "aci-helloworld" in listed


def test_role_assignment_by_app_id_and_list(
    env: AzureEnv, registries: dict[str, dict[str, Any]]
) -> None:
    """``--assignee <appId>`` resolves the service principal through Microsoft Graph
    (``GET /v1.0/servicePrincipals?$filter=servicePrincipalNames/any(…)``), and ``list``
    names principals through ``POST /v1.0/directoryObjects/getByIds``."""

    async def create(client: IdentityClient) -> Credential:
        return await client.create_service_principal("graph-pusher")

    pusher = env.owner_api(create)
    scope = env.registry_id("targetreg")
    created = env.az.json(
        "role", "assignment", "create", "--assignee", pusher.client_id, "--role", "AcrPush",
        "--scope", scope,
    )  # fmt: skip
    assert created["principalId"] == pusher.object_id
    assert created["principalType"] == "ServicePrincipal"
    listed = env.az.json("role", "assignment", "list", "--scope", scope)
    mine = [a for a in listed if a["principalId"] == pusher.object_id]
    assert [a["roleDefinitionName"] for a in mine] == ["AcrPush"]
    assert mine[0]["principalName"] == pusher.client_id
    # Assigning it again: ARM answers 409 RoleAssignmentExists, and the CLI, idempotent,
    # shows the existing assignment (found through Graph's getByIds).
    again = env.az.json(
        "role", "assignment", "create", "--assignee", pusher.client_id, "--role", "AcrPush",
        "--scope", scope,
    )  # fmt: skip
    assert again["name"] == created["name"]
