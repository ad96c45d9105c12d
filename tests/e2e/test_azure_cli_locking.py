"""Image locking with the real ``az``: ``az acr repository update`` and ``az acr manifest
update-metadata`` set changeable attributes, ``az acr repository show`` and ``az acr
manifest show-metadata`` report them, and a locked tag, manifest or repository refuses a
skopeo push, ``az acr import --force``, ``az acr manifest delete`` and ``az acr repository
delete`` with a message naming the lock, until it is unlocked.

One service and one ``az`` serve the module, shared with other Azure CLI modules
(``cli_env``, see :mod:`tests.e2e.azure_env`); each test
works on a repository of its own, imported once by the module's fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.azure_env import AzureEnv
from tests.peers.clients import Skopeo, docker_ref

# Messages, locking and registry parity share one service (``cli_env`` in
# tests/e2e/conftest.py; registries of their own), so they run on one worker.
pytestmark = [
    pytest.mark.peers,
    pytest.mark.heavy,
    pytest.mark.slow(seconds=60),  # the whole group
    pytest.mark.xdist_group("azure-cli-shared"),
]

REGISTRY = "lockreg"
ZERO_USER = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def env(cli_env: AzureEnv) -> AzureEnv:
    """The shared service, with this module's registry and the images its tests lock."""
    cli_env.az.run("acr", "create", "-n", REGISTRY, "-g", "default", "--sku", "Premium")
    cli_env.az.run(
        "acr", "import", "-n", REGISTRY,
        "--source", "docker.io/library/hello-world:latest",
        "--image", "tagged:v1", "--image", "whole:v1",
        output="none",
    )  # fmt: skip
    return cli_env


def fails(env: AzureEnv, *args: str) -> str:
    """Run ``az args…``, which must fail with exit 1; return its stderr."""
    result = env.az.run(*args, check=False)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    return result.stderr


def show_image(env: AzureEnv, image: str) -> dict[str, Any]:
    shown: dict[str, Any] = env.az.json(
        "acr", "repository", "show", "-n", REGISTRY, "--image", image
    )
    return shown


def test_a_locked_tag_refuses_push_import_and_delete_until_unlocked(
    env: AzureEnv, tmp_path: Path
) -> None:
    az, login_server = env.az, env.login_server(REGISTRY)
    before = show_image(env, "tagged:v1")
    assert before["changeableAttributes"]["writeEnabled"] is True

    updated = az.json(
        "acr", "repository", "update", "-n", REGISTRY, "--image", "tagged:v1",
        "--write-enabled", "false",
    )  # fmt: skip
    assert updated["name"] == "v1" and updated["digest"] == before["digest"]
    assert updated["changeableAttributes"] == {
        "deleteEnabled": True,
        "writeEnabled": False,
        "readEnabled": True,
        "listEnabled": True,
    }
    assert show_image(env, "tagged:v1")["changeableAttributes"]["writeEnabled"] is False

    # A push with skopeo (signed in the `az acr login --expose-token` way) is refused.
    token = az.json("acr", "login", "-n", REGISTRY, "--expose-token")["accessToken"]
    skopeo = Skopeo(tmp_path / "skopeo")
    hub = env.hub.url.removeprefix("http://")
    source = docker_ref(hub, "library/hello-world", "v2")
    target = docker_ref(login_server, "tagged", "v1")
    creds = {"src_creds": f"{env.hub.username}:{env.hub.password}"}
    pushed = skopeo.copy(source, target, dest_creds=f"{ZERO_USER}:{token}", check=False, **creds)
    assert pushed.returncode != 0
    refusal = pushed.stderr.decode()
    assert "disallowed" in refusal and "tagged:v1" in refusal, refusal

    # `--force` does not override a lock, and the import says why.
    stderr = fails(
        env, "acr", "import", "-n", REGISTRY,
        "--source", "docker.io/library/hello-world:v2", "--image", "tagged:v1", "--force",
    )  # fmt: skip
    assert "OperationDisallowed" in stderr and "tagged:v1 is locked" in stderr, stderr
    assert "--write-enabled true" in stderr, stderr

    # Nor can the repository holding it be deleted (and nothing of it is).
    stderr = fails(
        env, "acr", "repository", "delete", "-n", REGISTRY, "--repository", "tagged", "--yes"
    )
    assert "disallowed" in stderr and "tagged:v1" in stderr, stderr
    assert show_image(env, "tagged:v1")["digest"] == before["digest"]

    # Unlocked, the same push works and moves the tag.
    unlocked = az.json(
        "acr", "repository", "update", "-n", REGISTRY, "--image", "tagged:v1",
        "--write-enabled", "true",
    )  # fmt: skip
    assert unlocked["changeableAttributes"]["writeEnabled"] is True
    skopeo.copy(source, target, dest_creds=f"{ZERO_USER}:{token}", **creds)
    moved = show_image(env, "tagged:v1")["digest"]
    assert moved == env.images["hello-world:v2"].digest != before["digest"]
    az.run(
        "acr", "import", "-n", REGISTRY,
        "--source", "docker.io/library/hello-world:latest", "--image", "tagged:v1", "--force",
        output="none",
    )  # fmt: skip
    assert show_image(env, "tagged:v1")["digest"] == before["digest"]


def test_a_locked_repository_and_manifest_refuse_deletion_until_unlocked(
    env: AzureEnv,
) -> None:
    az, login_server = env.az, env.login_server(REGISTRY)
    updated = az.json(
        "acr", "repository", "update", "-n", REGISTRY, "--repository", "whole",
        "--delete-enabled", "false",
    )  # fmt: skip
    assert updated["imageName"] == "whole"
    assert updated["changeableAttributes"]["deleteEnabled"] is False
    shown = az.json("acr", "repository", "show", "-n", REGISTRY, "--repository", "whole")
    assert shown["changeableAttributes"] == updated["changeableAttributes"]
    assert (shown["tagCount"], shown["manifestCount"]) == (1, updated["manifestCount"])

    digest = show_image(env, "whole:v1")["digest"]
    manifest = f"{login_server}/whole@{digest}"
    locked = az.json("acr", "manifest", "update-metadata", manifest, "--write-enabled", "false")
    assert locked["digest"] == digest
    assert locked["changeableAttributes"]["writeEnabled"] is False
    assert locked["tags"] == ["v1"]
    metadata = az.json("acr", "manifest", "show-metadata", "-r", REGISTRY, "-n", f"whole@{digest}")
    assert metadata["changeableAttributes"] == locked["changeableAttributes"]

    # The repository's lock answers first, naming it; then the manifest's.
    stderr = fails(env, "acr", "manifest", "delete", manifest, "--yes")
    assert "repository whole is locked (deleteEnabled is false)" in stderr, stderr
    az.run(
        "acr", "repository", "update", "-n", REGISTRY, "--repository", "whole",
        "--delete-enabled", "true", output="none",
    )  # fmt: skip
    stderr = fails(
        env, "acr", "repository", "delete", "-n", REGISTRY, "--repository", "whole", "--yes"
    )
    assert f"manifest whole@{digest} is locked (writeEnabled is false)" in stderr, stderr
    assert "whole" in az.json("acr", "repository", "list", "-n", REGISTRY)

    az.run("acr", "manifest", "update-metadata", manifest, "--write-enabled", "true", output="none")
    az.run(
        "acr",
        "repository",
        "delete",
        "-n",
        REGISTRY,
        "--repository",
        "whole",
        "--yes",
        output="none",
    )
    assert "whole" not in az.json("acr", "repository", "list", "-n", REGISTRY)
