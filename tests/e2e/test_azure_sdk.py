"""The real Azure SDK for Python (``azure-identity`` + ``azure-mgmt-containerregistry``)
against Transship over TLS: ``registries.begin_create`` and ``registries.begin_import_image``,
whose long-running operation must succeed, or fail with an ``HttpResponseError`` carrying the
service's error code, as it does against ACR.

The SDK lives in the az venv, so each check is a script run by
:meth:`~tests.peers.azure.AzureCli.run_python` that prints its outcomes as JSON. One service
and one Docker Hub stand-in serve the module (see :mod:`tests.e2e.azure_env`).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.e2e.azure_env import AzureEnv, run_sdk_steps

# Both SDK modules use one service (``sdk_env`` in tests/e2e/conftest.py; registries of their
# own), so they run on one worker.
pytestmark = [pytest.mark.peers, pytest.mark.heavy, pytest.mark.xdist_group("azure-sdk")]

# Signs in as the owner service principal against the service (authority and ARM both at its
# URL, no instance discovery), then runs the steps named in argv[2:] and prints
# {step: outcome}: "ok" plus details, or the HttpResponseError's class, status and code.
SCRIPT = r"""
import json, sys, time
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import (
    ImportImageParameters, ImportMode, ImportSource, Registry, Sku,
)

cfg = json.loads(sys.argv[1])
base = cfg["base"]
credential = ClientSecretCredential(
    cfg["tenant"], cfg["client"], cfg["secret"], authority=base, disable_instance_discovery=True
)
client = ContainerRegistryManagementClient(
    credential, cfg["subscription"], base_url=base, credential_scopes=[base + "/.default"]
)
registries = client.registries

def hub(image, tags, mode=None, **source):
    params = ImportImageParameters(
        source=ImportSource(registry_uri="docker.io", source_image=image, **source),
        target_tags=tags,
    )
    if mode is not None:
        params.mode = mode
    return params

def create():
    poller = registries.begin_create(
        "default", "sdkregistry", Registry(location="local", sku=Sku(name="Premium"))
    )
    made = poller.result()
    return {"loginServer": made.login_server, "id": made.id, "sku": made.sku.name,
            "state": made.provisioning_state}

def import_ok():
    started = time.monotonic()
    poller = registries.begin_import_image(
        "default", "sdkregistry", hub("library/hello-world:latest", ["sdk:one"])
    )
    poller.result()
    return {"status": poller.status(), "seconds": time.monotonic() - started}

def import_force():
    poller = registries.begin_import_image(
        "default", "sdkregistry", hub("library/hello-world:v2", ["sdk:one"], ImportMode.FORCE)
    )
    poller.result()
    return {"status": poller.status()}

def import_from_registry():
    registry_id = registries.get("default", "sdkregistry").id
    params = ImportImageParameters(
        source=ImportSource(resource_id=registry_id, source_image="sdk:one"),
        target_tags=["copy:one"],
        untagged_target_repositories=["copy-untagged"],
        mode=ImportMode.NO_FORCE,
    )
    poller = registries.begin_import_image("default", "sdkregistry", params)
    poller.result()
    return {"status": poller.status()}

def conflict():
    return registries.begin_import_image(
        "default", "sdkregistry", hub("library/hello-world:latest", ["sdk:one"])
    ).result()

def missing():
    return registries.begin_import_image(
        "default", "sdkregistry", hub("library/nosuch:latest", ["nosuch:latest"])
    ).result()

def unknown_registry():
    return registries.begin_import_image(
        "default", "nosuchregistry", hub("library/hello-world:latest", ["x:y"])
    ).result()

def invalid():
    return registries.begin_import_image(
        "default", "sdkregistry", hub("Not A Reference!", ["x:y"])
    ).result()

def bad_credentials():
    from azure.mgmt.containerregistry.models import ImportSourceCredentials
    params = hub("library/hello-world:latest", ["creds:bad"],
                 credentials=ImportSourceCredentials(username=cfg["hub_user"], password="wrong"))
    return registries.begin_import_image("default", "sdkregistry", params).result()

outcomes = {}
for step in sys.argv[2:]:
    try:
        outcomes[step] = {"ok": True, **(globals()[step]() or {})}
    except HttpResponseError as exc:
        outcomes[step] = {
            "ok": False,
            "type": type(exc).__name__,
            "status": exc.status_code,
            "code": exc.error.code if exc.error is not None else None,
            "message": exc.error.message if exc.error is not None else str(exc),
        }
print(json.dumps(outcomes))
"""


@pytest.fixture
def env(sdk_env: AzureEnv) -> AzureEnv:
    return sdk_env


def run_steps(env: AzureEnv, *steps: str) -> dict[str, dict[str, Any]]:
    return run_sdk_steps(env, SCRIPT, *steps)


def tags_of(env: AzureEnv, repository: str) -> list[str]:
    """The repository's tags, read over the data plane with the owner's client id and secret."""
    with requests.Session() as http:
        http.trust_env = False
        http.verify = str(env.server.ca_certificate)
        answer = http.get(
            f"https://{env.login_server('sdkregistry')}/v2/{repository}/tags/list",
            auth=(env.owner.client_id, env.owner.secret),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        tags: list[str] = answer.json()["tags"]
        return tags


def test_create_and_import_image(env: AzureEnv) -> None:
    outcomes = run_steps(
        env, "create", "import_ok", "conflict", "import_force", "import_from_registry"
    )

    created = outcomes["create"]
    assert created["ok"], created
    assert created["loginServer"] == env.login_server("sdkregistry")
    assert created["id"] == env.registry_id("sdkregistry")
    assert (created["sku"], created["state"]) == ("Premium", "Succeeded")

    assert outcomes["import_ok"]["ok"] and outcomes["import_ok"]["status"] == "Succeeded"
    assert outcomes["import_ok"]["seconds"] < 15  # polled as Retry-After says, not every 30 s

    # mode omitted (NoForce) on an existing tag: the operation fails with the service's code.
    conflict = outcomes["conflict"]
    assert conflict["ok"] is False, conflict
    assert conflict["type"] == "HttpResponseError"
    assert conflict["code"] == "TagAlreadyExists"
    assert conflict["message"] == (
        "Tag sdk:one already exists in target registry. Import with --force (mode Force) to "
        "overwrite it."
    )

    assert outcomes["import_force"] == {"ok": True, "status": "Succeeded"}
    assert outcomes["import_from_registry"] == {"ok": True, "status": "Succeeded"}
    assert tags_of(env, "sdk") == ["one"]
    assert tags_of(env, "copy") == ["one"]


def test_import_image_failures(env: AzureEnv) -> None:
    outcomes = run_steps(env, "create", "missing", "unknown_registry", "invalid", "bad_credentials")
    assert outcomes["create"]["ok"], outcomes["create"]

    # A failure of the running operation.
    missing = outcomes["missing"]
    assert (missing["ok"], missing["type"], missing["code"]) == (
        False,
        "HttpResponseError",
        "ManifestUnknown",
    )
    assert "library/nosuch:latest" in missing["message"]
    bad = outcomes["bad_credentials"]
    assert (bad["ok"], bad["code"]) == (False, "UpstreamUnauthorized"), bad

    # Failures of the initial request, raised before any polling.
    unknown = outcomes["unknown_registry"]
    assert (unknown["type"], unknown["status"], unknown["code"]) == (
        "ResourceNotFoundError",
        404,
        "ResourceNotFound",
    )
    invalid = outcomes["invalid"]
    assert (invalid["type"], invalid["status"], invalid["code"]) == (
        "HttpResponseError",
        400,
        "InvalidParameter",
    )
