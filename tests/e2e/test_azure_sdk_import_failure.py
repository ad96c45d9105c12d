"""How a failed import reaches a user of the real Azure SDK (``azure-mgmt-containerregistry``):
the poller of ``begin_import_image`` follows the 202's ``Location`` (there is no
``Azure-AsyncOperation``, as with ACR) and ``result()`` raises ``HttpResponseError`` carrying
that URL's status and the service's error code and message; ``status()`` is then "Failed".
A source named by the resource id of a subscription outside the caller's tenant is refused by
the initial request, with the answer an existing registry of another tenant gets.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.azure_env import AzureEnv, run_sdk_steps

# Both SDK modules use one service (``sdk_env`` in tests/e2e/conftest.py; registries of their
# own), so they run on one worker.
pytestmark = [pytest.mark.peers, pytest.mark.heavy, pytest.mark.xdist_group("azure-sdk")]

# Prints {step: outcome}; a failure's outcome is what the SDK gives its caller, plus every
# request the client sent (method and path), so the test sees which URL the poller followed.
SCRIPT = r"""
import json, sys
from urllib.parse import urlsplit
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import (
    ImportImageParameters, ImportSource, Registry, Sku,
)

cfg = json.loads(sys.argv[1])
base = cfg["base"]
sent = []
def record(request):
    url = urlsplit(request.http_request.url)
    if "/oauth2/" not in url.path:
        sent.append(request.http_request.method + " " + url.path)
credential = ClientSecretCredential(
    cfg["tenant"], cfg["client"], cfg["secret"], authority=base, disable_instance_discovery=True
)
client = ContainerRegistryManagementClient(
    credential, cfg["subscription"], base_url=base, credential_scopes=[base + "/.default"],
    raw_request_hook=record, polling_interval=1,
)
registries = client.registries

def hub(image, tag):
    return ImportImageParameters(
        source=ImportSource(registry_uri="docker.io", source_image=image), target_tags=[tag]
    )

def create():
    registries.begin_create(
        "default", "sdkfailures", Registry(location="local", sku=Sku(name="Premium"))
    ).result()

def first():
    registries.begin_import_image(
        "default", "sdkfailures", hub("library/hello-world:latest", "taken:1")
    ).result()

def taken():
    return hub("library/hello-world:latest", "taken:1")

def missing():
    return hub("library/nosuch:latest", "nosuch:1")

def foreign():
    source = ("/subscriptions/99999999-8888-4777-8666-555555555555/resourceGroups/default"
              "/providers/Microsoft.ContainerRegistry/registries/elsewhere")
    return ImportImageParameters(
        source=ImportSource(resource_id=source, source_image="app:1"), target_tags=["app:1"]
    )

outcomes = {}
for step in sys.argv[2:]:
    sent.clear()
    poller = None
    try:
        if step in ("create", "first"):
            globals()[step]()
            outcomes[step] = {"ok": True}
            continue
        poller = registries.begin_import_image("default", "sdkfailures", globals()[step]())
        poller.result()
        outcomes[step] = {"ok": True}
    except HttpResponseError as exc:
        outcomes[step] = {
            "ok": False,
            "type": type(exc).__name__,
            "status": exc.status_code,
            "code": exc.error.code if exc.error is not None else None,
            "message": exc.error.message if exc.error is not None else None,
            "text": str(exc),
            "url": urlsplit(exc.response.request.url).path,
            "poller": None if poller is None else poller.status(),
            "sent": list(sent),
        }
print(json.dumps(outcomes))
"""


@pytest.fixture
def env(sdk_env: AzureEnv) -> AzureEnv:
    return sdk_env


def run_steps(env: AzureEnv, *steps: str) -> dict[str, dict[str, Any]]:
    return run_sdk_steps(env, SCRIPT, *steps)


def test_a_failed_import_surfaces_as_acr_s_does(env: AzureEnv) -> None:
    outcomes = run_steps(env, "create", "first", "taken", "missing", "foreign")
    assert outcomes["create"]["ok"] and outcomes["first"]["ok"], outcomes

    for step, status, code, words in (
        ("taken", 409, "TagAlreadyExists", "Tag taken:1 already exists in target registry."),
        ("missing", 400, "ManifestUnknown", "library/nosuch:latest"),
    ):
        failed = outcomes[step]
        assert (failed["ok"], failed["type"], failed["status"], failed["code"]) == (
            False,
            "HttpResponseError",
            status,
            code,
        ), failed
        assert words in failed["message"], failed
        # az prints this text: "(<code>) <message>".
        assert f"({code})" in failed["text"], failed
        assert failed["poller"] == "Failed", failed
        # The poller followed Location (operationResults), never a status URL.
        assert "/operationResults/" in failed["url"], failed
        assert failed["sent"][0].endswith("/registries/sdkfailures/importImage"), failed
        assert not any("/operationStatuses/" in line for line in failed["sent"]), failed

    # Refused by the initial request, before any operation exists: 403 with one answer for
    # an unknown subscription and another tenant's registry.
    foreign = outcomes["foreign"]
    assert (foreign["type"], foreign["status"], foreign["code"]) == (
        "HttpResponseError",
        403,
        "CrossTenantImportNeedsCredentials",
    ), foreign
    assert "'elsewhere'" in foreign["message"] and "or does not exist" in foreign["message"]
    assert foreign["poller"] is None and len(foreign["sent"]) == 1, foreign
