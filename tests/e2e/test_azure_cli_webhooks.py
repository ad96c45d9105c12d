"""``az acr webhook create|list|show|update|delete|ping|list-events|get-config`` with the real,
unmodified Azure CLI against Transship, each with its effect checked at a real receiver on
loopback: a skopeo push, an ``az acr import`` and an ``az acr repository untag`` reach it as
signed ``push`` and ``delete`` events, a ping arrives, the log lists the deliveries, and a
disabled or deleted webhook sends nothing.

One service and one receiver for the module (see :mod:`tests.e2e.azure_env`); the steps
run in order in one test, as an administrator would set a webhook up and tear it down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.azure_env import AzureEnv, start_azure_env
from tests.e2e.content import layout_ref
from tests.peers.clients import Skopeo, docker_ref
from tests.peers.images import BuiltImage, OciLayout, build_image
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver

pytestmark = [pytest.mark.peers, pytest.mark.heavy]

REGISTRY = "hooksreg"
# Deliveries to loopback are refused by default; the receiver is allowed explicitly.
WEBHOOK_CONFIG = """
[webhooks]
poll_seconds = 0.2
retry_initial_seconds = 0.5

[webhooks.egress]
rules = [{ action = "allow", target = "127.0.0.1" }]
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureEnv]:
    env = start_azure_env(tmp_path_factory.mktemp("azure-webhooks"), extra_config=WEBHOOK_CONFIG)
    try:
        env.az.run("acr", "create", "-n", REGISTRY, "-g", "default", "--sku", "Premium")
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return build_image(OciLayout(tmp_path_factory.mktemp("hook-image")), seed="hook", tag="img")


def _push(env: AzureEnv, skopeo: Skopeo, image: BuiltImage, repository: str, tag: str) -> None:
    """``skopeo copy`` into the registry with the owner service principal's credentials."""
    skopeo.copy(
        layout_ref(image),
        docker_ref(env.login_server(REGISTRY), repository, tag),
        dest_creds=f"{env.owner.client_id}:{env.owner.secret}",
    )


def test_every_webhook_command_with_its_effect(
    env: AzureEnv, receiver: WebhookReceiver, skopeo: Skopeo, image: BuiltImage
) -> None:
    az = env.az
    hook = ["-n", "pushhook", "-r", REGISTRY]

    # create: the answer never shows the URI or the headers.
    created = az.json(
        "acr", "webhook", "create", *hook,
        "--uri", receiver.url + "/acr?code=abc",
        "--actions", "push", "delete",
        "--headers", "Authorization=Bearer hook-token", "X-Team=ops",
        "--scope", "app:*",
    )  # fmt: skip
    assert created["name"] == "pushhook"
    assert created["id"] == env.registry_id(REGISTRY) + "/webhooks/pushhook"
    assert created["type"] == "Microsoft.ContainerRegistry/registries/webhooks"
    assert (created["status"], created["scope"]) == ("enabled", "app:*")
    assert sorted(created["actions"]) == ["delete", "push"]
    assert created["provisioningState"] == "Succeeded"
    assert "hook-token" not in str(created) and "code=abc" not in str(created)

    # list and show
    listed = az.json("acr", "webhook", "list", "-r", REGISTRY)
    assert [w["name"] for w in listed] == ["pushhook"]
    assert az.json("acr", "webhook", "show", *hook) == listed[0]

    # get-config: the URI and the headers.
    config = az.json("acr", "webhook", "get-config", *hook)
    assert config == {
        "serviceUri": receiver.url + "/acr?code=abc",
        "customHeaders": {"Authorization": "Bearer hook-token", "X-Team": "ops"},
    }
    # az shows only ACR's fields; the signing secret (a Transship extension) is in the same
    # answer, which `az rest` prints whole.
    raw = az.json(
        "rest", "--method", "post",
        "--url", f"{env.server.url}{created['id']}/getCallbackConfig?api-version=2023-07-01",
    )  # fmt: skip
    assert raw["serviceUri"] == config["serviceUri"]
    secret = raw["signingSecret"]

    # ping: the event arrives, signed, with the id az printed.
    pinged = az.json("acr", "webhook", "ping", *hook)
    receiver.wait_sync(lambda got: any(r.event["id"] == pinged["id"] for r in got))
    (ping,) = receiver.events("ping")
    assert ping.signed_with(secret) and ping.path == "/acr?code=abc"

    # A push with skopeo inside the scope is delivered; one outside is not.
    _push(env, skopeo, image, "app", "v1")
    _push(env, skopeo, image, "other", "v1")
    receiver.wait_sync(lambda got: len([r for r in got if r.event["action"] == "push"]) >= 1)
    time.sleep(1.0)
    (push,) = receiver.events("push")
    assert push.signed_with(secret)
    assert push.header("Authorization") == "Bearer hook-token"
    target = push.event["target"]
    assert (target["repository"], target["tag"]) == ("app", "v1")
    assert target["digest"] == image.digest
    assert push.event["request"]["host"] == env.login_server(REGISTRY)
    assert push.event["request"]["method"] == "PUT"

    # list-events: the ping and the push, delivered, with the receiver's answer.
    events = az.json("acr", "webhook", "list-events", *hook)
    by_id = {e["id"]: e for e in events}
    assert set(by_id) == {pinged["id"], push.event["id"]}
    logged = by_id[push.event["id"]]
    assert logged["eventRequestMessage"]["content"]["target"]["tag"] == "v1"
    assert logged["eventRequestMessage"]["requestUri"] == receiver.url + "/acr"
    assert logged["eventRequestMessage"]["headers"]["Authorization"] == "*****"
    assert logged["eventResponseMessage"]["statusCode"] == "200"
    assert logged["eventResponseMessage"]["content"] == "thanks"

    # update: a new scope; an import into it is a push (one per imported tag).
    updated = az.json("acr", "webhook", "update", *hook, "--scope", "imported:*")
    assert updated["scope"] == "imported:*"
    assert sorted(updated["actions"]) == ["delete", "push"]
    az.run(
        "acr", "import", "-n", REGISTRY,
        "--source", "docker.io/library/hello-world:latest",
        "--image", "imported:v1",
    )  # fmt: skip
    receiver.wait_sync(
        lambda got: any(r.event.get("target", {}).get("repository") == "imported" for r in got)
    )
    imported = [r for r in receiver.events("push") if r.event["target"]["repository"] == "imported"]
    assert [r.event["target"]["tag"] for r in imported] == ["v1"]
    assert imported[0].signed_with(secret)

    # untag: a delete event naming the tag.
    az.run("acr", "repository", "untag", "-n", REGISTRY, "--image", "imported:v1", output=None)
    receiver.wait_sync(lambda got: any(r.event["action"] == "delete" for r in got))
    (deleted,) = receiver.events("delete")
    assert deleted.event["target"]["repository"] == "imported"
    assert deleted.event["target"]["tag"] == "v1"

    # update --status disabled: nothing is sent any more.
    disabled = az.json("acr", "webhook", "update", *hook, "--status", "disabled")
    assert disabled["status"] == "disabled"
    before = len(receiver.received)
    _push(env, skopeo, image, "imported", "v2")
    time.sleep(1.5)
    assert len(receiver.received) == before

    # delete: gone from the list, show fails as ACR's does (exit 3: not found).
    az.run("acr", "webhook", "delete", *hook, output=None)
    assert az.json("acr", "webhook", "list", "-r", REGISTRY) == []
    missing = az.run("acr", "webhook", "show", *hook, check=False)
    assert missing.returncode == 3, (missing.stdout, missing.stderr)
    assert "pushhook" in missing.stderr
