"""The messages of issue 12 as the real, unmodified Azure CLI shows them: a tag conflict
names `--force`, a source written as a URL says a scheme is not part of an image reference,
and a network-rule denial names the Transship command that lets the client in (ACR's own
text sends the user to an Azure help page). Each command's effect is checked, not only its
exit code.

One service and one logged-in `az` serve the module, shared with other Azure CLI modules
(``cli_env``, see :mod:`tests.e2e.azure_env`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
import requests

from tests.e2e.azure_env import AzureEnv

# Messages, locking and registry parity share one service (``cli_env`` in
# tests/e2e/conftest.py; registries of their own), so they run on one worker.
pytestmark = [
    pytest.mark.peers,
    pytest.mark.heavy,
    pytest.mark.slow(seconds=60),  # the whole group
    pytest.mark.xdist_group("azure-cli-shared"),
]


@pytest.fixture
def env(cli_env: AzureEnv) -> AzureEnv:
    return cli_env


def fails(env: AzureEnv, *args: str) -> str:
    """`az args…`, which must exit 1; its stderr, lines joined (az wraps nothing, but a
    message must not depend on that)."""
    result = env.az.run(*args, check=False)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    return " ".join(result.stderr.split())


def tags(env: AzureEnv, registry: str, repository: str) -> list[str]:
    found: list[str] = env.az.json(
        "acr", "repository", "show-tags", "-n", registry, "--repository", repository
    )
    return found


def test_import_messages(env: AzureEnv) -> None:
    env.az.json("acr", "create", "-n", "msgtarget", "-g", "default", "--sku", "Premium")
    env.az.run(
        "acr", "import", "-n", "msgtarget",
        "--source", "docker.io/library/hello-world:latest", "--image", "app:1",
    )  # fmt: skip
    latest = env.images["hello-world:latest"].digest
    stderr = fails(
        env, "acr", "import", "-n", "msgtarget",
        "--source", "docker.io/library/hello-world:v2", "--image", "app:1",
    )  # fmt: skip
    assert (
        "(TagAlreadyExists) Tag app:1 already exists in target registry. Import with --force "
        "(mode Force) to overwrite it."
    ) in stderr
    shown: dict[str, Any] = env.az.json(
        "acr", "repository", "show", "-n", "msgtarget", "--image", "app:1"
    )
    assert shown["digest"] == latest  # the tag did not move

    # --registry names the source registry; --source is then the image, here as a URL.
    login = env.login_server("msgtarget")
    stderr = fails(
        env, "acr", "import", "-n", "msgtarget", "--registry", "msgtarget",
        "--source", f"https://{login}/app:1", "--image", "copy:1",
    )  # fmt: skip
    assert "a URL scheme is not part of an image reference" in stderr
    assert f"Write the image as '{login}/app:1'." in stderr
    assert "copy" not in env.az.json("acr", "repository", "list", "-n", "msgtarget")


def test_a_network_denial_names_the_transship_command(env: AzureEnv) -> None:
    env.az.json("acr", "create", "-n", "msgfenced", "-g", "default", "--sku", "Premium")
    env.az.run(
        "acr", "import", "-n", "msgfenced",
        "--source", "docker.io/library/hello-world:latest", "--image", "app:1",
    )  # fmt: skip
    env.az.json("acr", "network-rule", "add", "-n", "msgfenced", "--ip-address", "203.0.113.0/24")
    updated = env.az.json("acr", "update", "-n", "msgfenced", "--default-action", "Deny")
    assert updated["networkRuleSet"]["defaultAction"] == "Deny"

    result = env.az.run(
        "acr", "repository", "show-tags", "-n", "msgfenced", "--repository", "app", check=False
    )  # fmt: skip
    # az replaces the service's message with its own connectivity text (and link): what it
    # prints is az's, not Transship's.
    assert result.returncode == 1 and "don't have access" in result.stderr, result.stderr

    # Any other client (docker, podman, skopeo, curl) reads the service's own message.
    login = env.login_server("msgfenced")
    with requests.Session() as http:
        http.trust_env = False
        http.verify = str(env.server.ca_certificate)
        refused = http.get(f"https://{login}/v2/", timeout=30)
    assert refused.status_code == 403, refused.text
    [error] = refused.json()["errors"]
    assert error["code"] == "DENIED"
    # The client reaches the server over loopback, IPv4 or IPv6 as `*.localhost` resolves.
    found = re.fullmatch(
        r"client with IP '([0-9a-f.:]+)' is not allowed access\. To grant access, add a "
        r"network rule: `transship registry network-rule add -n msgfenced --ip-address "
        r"\1` \(or `az acr network-rule add`\), or set the default action to Allow: "
        r"`transship registry update -n msgfenced --default-action Allow`\.",
        error["message"],
    )
    assert found is not None, error["message"]
    address = found.group(1)
    assert ipaddress.ip_address(address).is_loopback

    # The advice, followed (with az's equivalent), lets the client back in.
    env.az.json("acr", "network-rule", "add", "-n", "msgfenced", "--ip-address", address)
    assert tags(env, "msgfenced", "app") == ["1"]
