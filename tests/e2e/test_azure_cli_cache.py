"""``az acr credential-set create|list|show|update|delete`` and
``az acr cache create|list|show|update|delete`` with the real, unmodified Azure CLI against
Transship: ACR's resource shapes, the credential health as the secret store fills, the
refusals az users meet (a credential set in use, an overlapping wildcard rule), and the
teardown.

One service for the module (see :mod:`tests.e2e.azure_env`); the steps run in order in one
test, as an administrator would set a cache up and tear it down.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.azure_env import AzureEnv, start_azure_env
from tests.peers.clients import Skopeo, docker_ref
from tests.peers.images import OciLayout
from tests.support.identity import IdentityClient

pytestmark = [pytest.mark.peers, pytest.mark.heavy]

REGISTRY = "cachereg"
VAULT = "https://myvault.vault.azure.net/secrets"
USER_ID, PASSWORD_ID = f"{VAULT}/hub-user", f"{VAULT}/hub-password"
PASSWORD = "Hub-Pa55word-never-shown"
ZERO_USER = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureEnv]:
    env = start_azure_env(tmp_path_factory.mktemp("azure-cache"))
    try:
        env.az.run("acr", "create", "-n", REGISTRY, "-g", "default", "--sku", "Standard")
        yield env
    finally:
        env.close()


def fails(env: AzureEnv, *args: str) -> str:
    result = env.az.run(*args, check=False)
    assert result.returncode != 0, (result.stdout, result.stderr)
    return str(result.stderr)


def _set_secret(env: AzureEnv, identifier: str, value: str) -> None:
    async def put(client: IdentityClient) -> Any:
        return await client.ok(
            "PUT", "/transship/v1/secrets", {"identifier": identifier, "value": value}
        )

    answer = env.owner_api(put)
    assert answer["identifier"] == identifier and value not in str(answer)


def test_credential_set_and_cache_rule_lifecycle(env: AzureEnv) -> None:
    az = env.az
    registry_id = env.registry_id(REGISTRY)
    creds = ["-r", REGISTRY, "-n", "hubcreds"]

    created = az.json(
        "acr", "credential-set", "create", *creds,
        "-l", "docker.io", "-u", USER_ID, "-p", PASSWORD_ID,
    )  # fmt: skip
    set_id = f"{registry_id}/credentialSets/hubcreds"
    assert created["id"] == set_id and created["name"] == "hubcreds"
    assert created["type"] == "Microsoft.ContainerRegistry/registries/credentialSets"
    assert created["identity"]["type"] == "SystemAssigned"
    assert created["identity"]["principalId"]
    # az shows the properties flattened into the resource.
    assert created["loginServer"] == "docker.io"
    assert created["provisioningState"] == "Succeeded"
    (credential,) = created["authCredentials"]
    assert credential["name"] == "Credential1"
    assert credential["usernameSecretIdentifier"] == USER_ID
    assert credential["passwordSecretIdentifier"] == PASSWORD_ID
    assert credential["credentialHealth"]["status"] == "Unhealthy"

    _set_secret(env, USER_ID, "hubuser")
    _set_secret(env, PASSWORD_ID, PASSWORD)
    shown = az.json("acr", "credential-set", "show", *creds)
    assert shown["authCredentials"][0]["credentialHealth"]["status"] == "Healthy"
    listed = az.json("acr", "credential-set", "list", "-r", REGISTRY)
    assert [s["name"] for s in listed] == ["hubcreds"]

    updated = az.json(
        "acr", "credential-set", "update", *creds, "-p", f"{VAULT}/hub-password2"
    )  # fmt: skip
    credential = updated["authCredentials"][0]
    assert credential["passwordSecretIdentifier"] == f"{VAULT}/hub-password2"
    assert credential["usernameSecretIdentifier"] == USER_ID
    assert credential["credentialHealth"]["status"] == "Unhealthy"
    az.json("acr", "credential-set", "update", *creds, "-p", PASSWORD_ID)

    # cache rules
    rule = ["-r", REGISTRY, "-n", "hublibrary"]
    made = az.json(
        "acr", "cache", "create", *rule,
        "-s", "docker.io/library/*", "-t", "library/*", "-c", "hubcreds",
    )  # fmt: skip
    assert made["id"] == f"{registry_id}/cacheRules/hublibrary"
    assert made["type"] == "Microsoft.ContainerRegistry/registries/cacheRules"
    assert made["sourceRepository"] == "docker.io/library/*"
    assert made["targetRepository"] == "library/*"
    assert made["credentialSetResourceId"] == set_id
    assert made["provisioningState"] == "Succeeded"
    az.json(
        "acr", "cache", "create", "-r", REGISTRY, "-n", "mcrdotnet",
        "-s", "mcr.microsoft.com/dotnet/sdk", "-t", "dotnet/sdk",
    )  # fmt: skip
    listed = az.json("acr", "cache", "list", "-r", REGISTRY)
    assert sorted(r["name"] for r in listed) == ["hublibrary", "mcrdotnet"]
    shown = az.json("acr", "cache", "show", *rule)
    assert shown["credentialSetResourceId"] == set_id

    # Refusals: an overlapping wildcard rule, a credential set in use.
    stderr = fails(
        env, "acr", "cache", "create", "-r", REGISTRY, "-n", "quaylibrary",
        "-s", "quay.io/library/*", "-t", "library/*",
    )  # fmt: skip
    assert "targetRepository" in stderr and "hublibrary" in stderr
    stderr = fails(env, "acr", "credential-set", "delete", *creds, "--yes")
    assert "hublibrary" in stderr and "(Conflict)" in stderr

    removed = az.json("acr", "cache", "update", *rule, "--remove-cred-set")
    assert removed.get("credentialSetResourceId") is None
    again = az.json("acr", "cache", "update", *rule, "-c", "hubcreds")
    assert again["credentialSetResourceId"] == set_id

    # Teardown: rules, then the credential set it no longer protects.
    az.run("acr", "cache", "delete", *rule, "--yes")
    az.run("acr", "cache", "delete", "-r", REGISTRY, "-n", "mcrdotnet", "--yes")
    assert az.json("acr", "cache", "list", "-r", REGISTRY) == []
    stderr = fails(env, "acr", "cache", "show", *rule)
    assert "ResourceNotFound" in stderr or "not found" in stderr.lower()
    az.run("acr", "credential-set", "delete", *creds, "--yes")
    assert az.json("acr", "credential-set", "list", "-r", REGISTRY) == []


def test_a_pull_through_the_rule_fetches_from_the_upstream(env: AzureEnv, tmp_path: Path) -> None:
    """A rule made with az (`docker.io/library/*` → `library/*`, with a credential set whose
    secrets hold the token upstream's account): skopeo, signed in the `az acr login
    --expose-token` way, copies `library/hello-world:latest` from Transship on its first
    pull, byte for byte, and the cached repository is then an ordinary one that
    `az acr repository list` shows."""
    az = env.az
    user_id, password_id = f"{VAULT}/pull-user", f"{VAULT}/pull-password"
    _set_secret(env, user_id, env.hub.username)
    _set_secret(env, password_id, env.hub.password)
    az.json(
        "acr", "credential-set", "create", "-r", REGISTRY, "-n", "pullcreds",
        "-l", "docker.io", "-u", user_id, "-p", password_id,
    )  # fmt: skip
    az.json(
        "acr", "cache", "create", "-r", REGISTRY, "-n", "pulllibrary",
        "-s", "docker.io/library/*", "-t", "library/*", "-c", "pullcreds",
    )  # fmt: skip
    assert "library/hello-world" not in az.json("acr", "repository", "list", "-n", REGISTRY)

    token = az.json("acr", "login", "-n", REGISTRY, "--expose-token")["accessToken"]
    creds = f"{ZERO_USER}:{token}"
    skopeo = Skopeo(tmp_path / "skopeo")
    source = docker_ref(env.login_server(REGISTRY), "library/hello-world", "latest")
    out = OciLayout(tmp_path / "out")
    skopeo.copy(source, out.skopeo_ref("latest"), src_creds=creds, preserve_digests=True)

    image = env.images["hello-world:latest"]
    assert out.resolve("latest").digest == image.digest
    for digest in image.blob_digests:
        blob = out.root / "blobs" / "sha256" / digest.split(":", 1)[1]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    assert skopeo.inspect_raw(source, creds=creds) == image.index_bytes
    deadline = time.monotonic() + 60  # the fill's import job commits the tag
    while "latest" not in _tags(env):
        assert time.monotonic() < deadline, "the cached tag never appeared"
        time.sleep(0.5)
    assert "library/hello-world" in az.json("acr", "repository", "list", "-n", REGISTRY)


def _tags(env: AzureEnv) -> list[str]:
    result = env.az.run(
        "acr", "repository", "show-tags", "-n", REGISTRY, "--repository", "library/hello-world",
        check=False,
    )  # fmt: skip
    return list(result.json() or []) if result.returncode == 0 else []
