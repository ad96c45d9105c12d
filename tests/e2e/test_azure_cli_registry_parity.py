"""The real Azure CLI (``az``) on the registry properties and commands of issue 12's "ACR
parity": SKU and ARM tags, the retention policy of untagged manifests (applied by garbage
collection), dedicated data endpoints (refused), ``check-name``, ``show-usage``,
``show-endpoints``, ACR's "not supported" answers (tasks, replications, soft delete…), and
every data-plane command of ``az acr repository`` and ``az acr manifest`` on a registry with
anonymous pull on, where anonymous ``GET /v2/`` must still be challenged.

One service and one ``az`` serve the module, shared with other Azure CLI modules
(``cli_env``, see :mod:`tests.e2e.azure_env`); the tests run
in file order on one worker and share the registry ``parityreg``. Every az command's effect
is checked through another command or the registry's HTTP API, not only its exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import requests

from tests.e2e.azure_env import AzureEnv
from tests.peers.azure import AzureCli
from tests.peers.procs import peer_env
from tests.peers.transship import SRC_DIR

# Messages, locking and registry parity share one service (``cli_env`` in
# tests/e2e/conftest.py; registries of their own), so they run on one worker.
pytestmark = [
    pytest.mark.peers,
    pytest.mark.heavy,
    pytest.mark.slow(seconds=60),  # the whole group
    pytest.mark.xdist_group("azure-cli-shared"),
]

REGISTRY = "parityreg"
HELLO = "docker.io/library/hello-world"


@pytest.fixture
def env(cli_env: AzureEnv) -> AzureEnv:
    return cli_env


def fails(az: AzureCli, *args: str, exit_code: int = 1) -> str:
    """Run ``az args…``, which must fail with ``exit_code``; return its stderr."""
    result = az.run(*args, check=False)
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    return result.stderr


def http(env: AzureEnv) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(env.server.ca_certificate)
    return session


def collect_garbage(env: AzureEnv) -> dict[str, Any]:
    """``transship gc`` on the running server's data, without a grace period."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "transship",
            "gc",
            "--data-dir",
            str(env.server.data_dir),
            "--grace-seconds",
            "0",
            "-o",
            "json",
        ],
        env=peer_env(
            {"PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")])}
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def blob_bytes(env: AzureEnv, key: str) -> int:
    image = env.images[key]
    return sum(image.layout.blob_path(d).stat().st_size for d in image.blob_digests)


# -- SKU, tags, data endpoints ------------------------------------------------------------------


def test_create_keeps_the_sku_and_tags_and_update_replaces_them(env: AzureEnv) -> None:
    created = env.az.json(
        "acr", "create", "-n", REGISTRY, "-g", "default", "--sku", "Standard",
        "--tags", "team=registry", "env=dev",
    )  # fmt: skip
    assert created["sku"] == {"name": "Standard", "tier": "Standard"}
    assert created["tags"] == {"team": "registry", "env": "dev"}
    # ARM's PATCH replaces the whole tags object; the SKU moves to Premium.
    updated = env.az.json("acr", "update", "-n", REGISTRY, "--tags", "env=prod", "--sku", "Premium")
    assert updated["tags"] == {"env": "prod"} and updated["sku"]["name"] == "Premium"
    shown = env.az.json("acr", "show", "-n", REGISTRY)
    assert shown["tags"] == {"env": "prod"}
    assert shown["sku"] == {"name": "Premium", "tier": "Premium"}
    assert shown["dataEndpointEnabled"] is False and shown["dataEndpointHostNames"] == []


def test_data_endpoints_are_refused_not_dropped(env: AzureEnv) -> None:
    stderr = fails(env.az, "acr", "update", "-n", REGISTRY, "--data-endpoint-enabled", "true")
    assert "(FeatureNotSupported)" in stderr and "data endpoints" in stderr
    assert env.az.json("acr", "show", "-n", REGISTRY)["dataEndpointEnabled"] is False


def test_show_endpoints(env: AzureEnv) -> None:
    endpoints = env.az.json("acr", "show-endpoints", "-n", REGISTRY)
    assert endpoints["loginServer"] == env.login_server(REGISTRY)
    # No dedicated data endpoint and no replication: az names the registry's own location.
    assert [e["region"] for e in endpoints["dataEndpoints"]] == ["local"]


# -- check-name, show-usage ---------------------------------------------------------------------


def test_check_name(env: AzureEnv) -> None:
    taken = env.az.json("acr", "check-name", "-n", REGISTRY)
    assert taken["nameAvailable"] is False and taken["reason"] == "AlreadyExists"
    assert REGISTRY in taken["message"]
    free = env.az.json("acr", "check-name", "-n", "nobodyhasthisname")
    assert free["nameAvailable"] is True and free["reason"] is None
    assert free["availableLoginServerName"] == env.login_server("nobodyhasthisname")
    invalid = env.az.json("acr", "check-name", "-n", "abc")
    assert invalid["nameAvailable"] is False and invalid["reason"] == "Invalid"


def test_show_usage_counts_distinct_blobs_scope_maps_and_tokens(env: AzureEnv) -> None:
    before = {u["name"]: u for u in env.az.json("acr", "show-usage", "-n", REGISTRY)["value"]}
    assert before["Size"]["currentValue"] == 0
    assert before["Size"]["limit"] == 500 * 1024**3  # Premium's included storage
    # The same image twice: its blobs are stored (and counted) once.
    for tag in ("one", "two"):
        env.az.run(
            "acr", "import", "-n", REGISTRY, "--source", f"{HELLO}:latest",
            "--image", f"usage:{tag}", output="none",
        )  # fmt: skip
    env.az.run(
        "acr", "token", "create", "-n", "usagetoken", "-r", REGISTRY,
        "--repository", "usage", "content/read", output="none",
    )  # fmt: skip
    after = {u["name"]: u for u in env.az.json("acr", "show-usage", "-n", REGISTRY)["value"]}
    assert after["Size"]["currentValue"] == blob_bytes(env, "hello-world:latest")
    assert after["Size"]["unit"] == "Bytes"
    assert after["ScopeMaps"]["currentValue"] == before["ScopeMaps"]["currentValue"] + 1
    assert after["Tokens"]["currentValue"] == before["Tokens"]["currentValue"] + 1


# -- retention ----------------------------------------------------------------------------------


def test_retention_collects_old_untagged_manifests_but_not_what_a_tagged_index_needs(
    env: AzureEnv,
) -> None:
    assert env.az.json("acr", "config", "retention", "show", "-r", REGISTRY)["status"] == "disabled"
    policy = env.az.json(
        "acr", "config", "retention", "update", "-r", REGISTRY,
        "--status", "enabled", "--days", "0", "--type", "UntaggedManifests",
    )  # fmt: skip
    assert policy["status"] == "enabled" and policy["days"] == 0
    shown = env.az.json("acr", "config", "retention", "show", "-r", REGISTRY)
    assert shown["status"] == "enabled" and shown["days"] == 0 and shown["lastUpdatedTime"]
    # v1 then v2 on the same tag: v1's index and its children are left untagged.
    old, new = env.images["hello-world:latest"], env.images["hello-world:v2"]
    for source in ("latest", "v2"):
        env.az.run(
            "acr", "import", "-n", REGISTRY, "--source", f"{HELLO}:{source}",
            "--image", "kept:v1", "--force", output="none",
        )  # fmt: skip
    report = collect_garbage(env)
    assert set(old.manifest_digests) <= set(report["expiredManifests"])
    assert not set(new.manifest_digests) & set(report["expiredManifests"])
    left = env.az.json("acr", "manifest", "list-metadata", "-r", REGISTRY, "-n", "kept")
    # The tagged index stays, and so do its (untagged) children.
    assert {m["digest"] for m in left} == set(new.manifest_digests)
    env.az.run(
        "acr", "config", "retention", "update", "-r", REGISTRY,
        "--status", "disabled", "--type", "UntaggedManifests", output="none",
    )  # fmt: skip
    assert env.az.json("acr", "config", "retention", "show", "-r", REGISTRY)["status"] == "disabled"


# -- not supported ------------------------------------------------------------------------------


def test_features_transship_lacks_answer_not_supported(env: AzureEnv) -> None:
    for args in (
        ("acr", "replication", "create", "-r", REGISTRY, "-l", "westus"),
        ("acr", "task", "list", "-r", REGISTRY),
    ):
        stderr = fails(env.az, *args)
        assert "(FeatureNotSupported)" in stderr and "not supported by Transship" in stderr, args
    assert env.az.json("acr", "replication", "list", "-r", REGISTRY) == []


def test_soft_delete_is_not_supported(env: AzureEnv) -> None:
    assert env.az.json("acr", "config", "soft-delete", "show", "-r", REGISTRY)["status"] == (
        "disabled"
    )
    stderr = fails(
        env.az, "acr", "config", "soft-delete", "update", "-r", REGISTRY, "--status", "enabled",
        "--yes",
    )  # fmt: skip
    assert "(FeatureNotSupported) Soft delete is not supported" in stderr
    for args in (
        ("acr", "manifest", "list-deleted", "-r", REGISTRY, "-n", "kept"),
        ("acr", "repository", "list-deleted", "-n", REGISTRY),
    ):
        stderr = fails(env.az, *args)
        assert "Soft delete is not supported by Transship" in stderr, args
        assert "is not granted" not in stderr


# -- anonymous pull -----------------------------------------------------------------------------


def test_anonymous_pull_keeps_the_v2_challenge_and_serves_content(env: AzureEnv) -> None:
    shown = env.az.json("acr", "update", "-n", REGISTRY, "--anonymous-pull-enabled", "true")
    assert shown["anonymousPullEnabled"] is True
    server = env.login_server(REGISTRY)
    with http(env) as session:
        base = session.get(f"https://{server}/v2/", timeout=30)
        assert base.status_code == 401
        assert base.headers["WWW-Authenticate"].startswith(
            f'Bearer realm="https://{server}/oauth2/token",service="{server}"'
        )
        # Content needs no credentials at all…
        digest = env.images["hello-world:v2"].digest
        direct = session.get(f"https://{server}/v2/kept/manifests/{digest}", timeout=30)
        assert direct.status_code == 200 and direct.headers["Docker-Content-Digest"] == digest
        # …and docker/podman's way works too: an anonymous token with pull, then the pull.
        token = session.get(
            f"https://{server}/oauth2/token",
            params={"service": server, "scope": "repository:kept:pull,push"},
            timeout=30,
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": "Bearer " + token.json()["access_token"]}
        pulled = session.get(f"https://{server}/v2/kept/manifests/v1", headers=bearer, timeout=30)
        assert pulled.status_code == 200
        pushed = session.put(
            f"https://{server}/v2/kept/manifests/anon", headers=bearer, data=b"{}", timeout=30
        )
        assert pushed.status_code == 401  # the token holds pull only


def test_every_data_plane_command_works_with_anonymous_pull_on(env: AzureEnv) -> None:
    az, r = env.az, REGISTRY
    new = env.images["hello-world:v2"]
    az.run(
        "acr", "import", "-n", r, "--source", f"{HELLO}:v2", "--image", "anon:a",
        "--image", "anon:b", output="none",
    )  # fmt: skip
    assert "anon" in az.json("acr", "repository", "list", "-n", r)
    assert az.json("acr", "repository", "show", "-n", r, "--repository", "anon")["tagCount"] == 2
    assert az.json("acr", "repository", "show-tags", "-n", r, "--repository", "anon") == ["a", "b"]
    listed = az.json("acr", "repository", "show-manifests", "-n", r, "--repository", "anon")
    assert {m["digest"]: sorted(m["tags"]) for m in listed}[new.digest] == ["a", "b"]
    az.run("acr", "repository", "untag", "-n", r, "--image", "anon:b", output="none")
    # `manifest list` answers the manifests themselves: the index and its children.
    contents = az.json("acr", "manifest", "list", "-r", r, "-n", "anon")
    assert len(contents) == len(new.manifest_digests)
    indexes = [m for m in contents if "manifests" in m]
    assert [[c["digest"] for c in i["manifests"]] for i in indexes] == [list(new.child_digests)]
    metadata = az.json("acr", "manifest", "list-metadata", "-r", r, "-n", "anon")
    assert {m["digest"] for m in metadata} == set(new.manifest_digests)
    shown = az.json("acr", "manifest", "show", "-r", r, "-n", "anon:a")
    assert [m["digest"] for m in shown["manifests"]] == list(new.child_digests)
    tag = az.json("acr", "manifest", "show-metadata", "-r", r, "-n", "anon:a")
    assert (tag["name"], tag["digest"]) == ("a", new.digest)
    meta = az.json("acr", "manifest", "show-metadata", "-r", r, "-n", f"anon@{new.digest}")
    assert meta["tags"] == ["a"]  # untag removed b
    az.run("acr", "manifest", "delete", "-r", r, "-n", f"anon@{new.digest}", "--yes", output=None)
    assert az.json("acr", "repository", "show-tags", "-n", r, "--repository", "anon") == []
    az.run("acr", "repository", "delete", "-n", r, "--repository", "kept", "--yes", output=None)
    assert "kept" not in az.json("acr", "repository", "list", "-n", r)
