"""Webhooks end to end in one process, against a real HTTP receiver on loopback: events of
push and delete delivered signed, retried after 500s, logged, filtered by scope, status
and actions; the egress policy; secrets kept out of answers; the outbox surviving a
restart. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.identity import IdentityClient, owner_credential
from tests.support.imports import Management
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver
from transship.metadata import schema as s

# Loopback is denied to deliveries by default: these tests allow it, as the docs say to.
ALLOW_LOOPBACK = {"rules": [{"action": "allow", "target": "127.0.0.1"}]}
FAST = {
    "egress": ALLOW_LOOPBACK,
    "poll_seconds": 0.1,
    "retry_initial_seconds": 0.2,
    "retry_max_seconds": 0.5,
    "timeout_seconds": 5,
    "max_attempts": 4,
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
async def reg(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningRegistry]:
    settings = make_settings(tmp_path / "data", database_url, webhooks=FAST)
    async with running_registry(settings) as running:
        yield running


def _admin(reg: RunningRegistry, tmp_path: Path) -> Management:
    return Management(reg, tmp_path / "data")


def _hook(admin: Management, name: str) -> str:
    return f"{admin.base}/default/webhooks/{name}"


async def _create(admin: Management, name: str, **properties: Any) -> dict[str, Any]:
    status, body, _ = await admin.call(
        "PUT", _hook(admin, name), {"location": "local", "properties": properties}
    )
    assert status == 201, body
    return dict(body)


async def _events(admin: Management, name: str) -> list[dict[str, Any]]:
    status, body, _ = await admin.call("POST", _hook(admin, name) + "/listEvents")
    assert status == 200, body
    return list(body["value"])


async def _wait_events(
    admin: Management, name: str, check: Any, timeout: float = 20.0
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        events = await _events(admin, name)
        if check(events):
            return events
        assert asyncio.get_running_loop().time() < deadline, events
        await asyncio.sleep(0.1)


async def test_push_and_delete_are_delivered_signed_and_logged(
    reg: RunningRegistry, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    admin = _admin(reg, tmp_path)
    created = await _create(
        admin,
        "allevents",
        serviceUri=receiver.url + "/hook?key=s3cret",
        actions=["push", "delete"],
        customHeaders={"Authorization": "Bearer hook-token"},
    )
    # The URI and the headers are write-only: never in the resource.
    assert "serviceUri" not in created["properties"]
    assert "hook-token" not in str(created) and "s3cret" not in str(created)
    assert created["properties"] == {
        "status": "enabled",
        "scope": "",
        "actions": ["push", "delete"],
        "provisioningState": "Succeeded",
    }
    status, config, _ = await admin.call("POST", _hook(admin, "allevents") + "/getCallbackConfig")
    assert status == 200
    assert config["serviceUri"] == receiver.url + "/hook?key=s3cret"
    assert config["customHeaders"] == {"Authorization": "Bearer hook-token"}
    secret = config["signingSecret"]

    digest, _, _ = await reg.push_image("team/app", "v1")
    await receiver.wait(lambda got: len(got) == 1)
    (push,) = receiver.received
    assert push.path == "/hook?key=s3cret"
    assert push.signed_with(secret)
    assert not push.signed_with(secret + "x")
    assert push.header("Authorization") == "Bearer hook-token"
    assert push.header("Content-Type") == "application/json"
    event = push.event
    assert push.header("X-Transship-Event-Id") == event["id"]
    assert event["action"] == "push"
    assert event["target"]["repository"] == "team/app"
    assert event["target"]["tag"] == "v1"
    assert event["target"]["digest"] == digest
    assert event["target"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert event["target"]["size"] > 0
    assert event["request"]["method"] == "PUT"
    assert event["request"]["host"] == reg.url.removeprefix("http://")

    async with reg.request("DELETE", "/v2/team/app/manifests/v1") as r:
        assert r.status == 202
    async with reg.request("DELETE", f"/v2/team/app/manifests/{digest}") as r:
        assert r.status == 202
    await receiver.wait(lambda got: len(got) == 3)
    # Deliveries go out concurrently, so the two deletes may arrive in either order.
    untag, delete = sorted(
        (r.event for r in receiver.received[1:]), key=lambda e: "tag" not in e["target"]
    )
    assert (untag["action"], untag["target"]["tag"], untag["target"]["digest"]) == (
        "delete",
        "v1",
        digest,
    )
    assert delete["action"] == "delete" and "tag" not in delete["target"]
    assert delete["target"]["digest"] == digest
    assert all(r.signed_with(secret) for r in receiver.received)

    events = await _wait_events(
        admin,
        "allevents",
        lambda e: len(e) == 3 and all(x["deliveryState"] == "delivered" for x in e),
    )
    newest = events[0]
    assert newest["id"] == delete["id"]
    request = newest["eventRequestMessage"]
    assert request["method"] == "POST"
    # The log hides the URI's query and the custom headers' values.
    assert request["requestUri"] == receiver.url + "/hook"
    assert request["headers"]["Authorization"] == "*****"
    # The newest logged event need not be the last to arrive (concurrent deliveries).
    (arrived,) = [r for r in receiver.received if r.event["id"] == newest["id"]]
    assert request["headers"]["X-Transship-Signature"] == arrived.header("X-Transship-Signature")
    assert request["content"]["target"]["digest"] == digest
    response = newest["eventResponseMessage"]
    assert (response["statusCode"], response["content"]) == ("200", "thanks")
    assert response["headers"]["X-Receiver"] == "test"
    assert newest["attempts"] == 1


async def test_a_failing_endpoint_is_retried_then_given_up(
    reg: RunningRegistry, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    admin = _admin(reg, tmp_path)
    await _create(admin, "flaky", serviceUri=receiver.url, actions=["push"])
    receiver.fail_next = 2
    await reg.push_image("app", "v1")
    await receiver.wait(lambda got: len(got) == 3)
    assert [r.status for r in receiver.received] == [500, 500, 200]
    assert len({r.event["id"] for r in receiver.received}) == 1, "the same event, retried"
    (event,) = await _wait_events(admin, "flaky", lambda e: e[0]["deliveryState"] == "delivered")
    assert event["attempts"] == 3

    # Always failing: given up after max_attempts (4), logged as failed with the last answer.
    receiver.fail_next = 100
    await reg.push_image("app", "v2", seed=b"y")
    events = await _wait_events(admin, "flaky", lambda e: e[0]["deliveryState"] == "failed")
    assert events[0]["attempts"] == 4
    assert events[0]["eventResponseMessage"]["statusCode"] == "500"
    assert events[0]["eventResponseMessage"]["content"] == "boom"
    await asyncio.sleep(1.0)
    assert len(receiver.received) == 3 + 4, "no attempt after giving up"


async def test_scope_status_and_actions_filter_events(
    reg: RunningRegistry, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    admin = _admin(reg, tmp_path)
    await _create(
        admin, "scoped", serviceUri=receiver.url + "/scoped", actions=["push"], scope="team/*:v*"
    )
    await _create(admin, "deletesonly", serviceUri=receiver.url + "/del", actions=["delete"])
    await _create(
        admin, "disabled", serviceUri=receiver.url + "/off", actions=["push"], status="disabled"
    )
    await reg.push_image("team/api", "v2")
    await reg.push_image("team/api", "latest", seed=b"l")
    await reg.push_image("other", "v1", seed=b"o")
    await receiver.wait(lambda got: len(got) >= 1)
    await asyncio.sleep(0.5)  # anything else would have been sent by now
    assert [(r.path, r.event["target"]["tag"]) for r in receiver.received] == [("/scoped", "v2")]

    # PATCH: enable the disabled one; only what is given changes.
    status, patched, _ = await admin.call(
        "PATCH", _hook(admin, "disabled"), {"properties": {"status": "enabled"}}
    )
    assert status == 200 and patched["properties"]["status"] == "enabled"
    assert patched["properties"]["actions"] == ["push"]
    _, config, _ = await admin.call("POST", _hook(admin, "disabled") + "/getCallbackConfig")
    assert config["serviceUri"] == receiver.url + "/off"
    await reg.push_image("other", "v3", seed=b"p")
    await receiver.wait(lambda got: any(r.path == "/off" for r in got))


async def test_ping_reaches_a_disabled_webhook(
    reg: RunningRegistry, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    admin = _admin(reg, tmp_path)
    await _create(admin, "pinged", serviceUri=receiver.url, actions=["push"], status="disabled")
    status, info, _ = await admin.call("POST", _hook(admin, "pinged") + "/ping")
    assert status == 200
    await receiver.wait(lambda got: len(got) == 1)
    assert receiver.received[0].event["action"] == "ping"
    assert receiver.received[0].event["id"] == info["id"]


async def test_bad_settings_are_refused_naming_the_field(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    admin = _admin(reg, tmp_path)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("badscheme", {"serviceUri": "ftp://example.com/x", "actions": ["push"]}, "serviceUri"),
        ("relative1", {"serviceUri": "/hook", "actions": ["push"]}, "serviceUri"),
        (
            "withcreds",
            {"serviceUri": "http://u:p@example.com/", "actions": ["push"]},
            "serviceUri",
        ),
        ("noactions", {"serviceUri": "http://example.com/", "actions": []}, "properties.actions"),
        ("badaction", {"serviceUri": "http://example.com/", "actions": ["pull"]}, "properties"),
        (
            "badscope1",
            {"serviceUri": "http://e.com/", "actions": ["push"], "scope": "A B"},
            "scope",
        ),
        (
            "badheader",
            {
                "serviceUri": "http://example.com/",
                "actions": ["push"],
                "customHeaders": {"X-Transship-Signature": "forged"},
            },
            "customHeaders",
        ),
        (
            "headerlf",
            {
                "serviceUri": "http://example.com/",
                "actions": ["push"],
                "customHeaders": {"X-A": "one\r\nX-B: two"},
            },
            "customHeaders",
        ),
        # Private and cloud-metadata addresses: refused by the webhook egress policy.
        ("private1", {"serviceUri": "http://10.1.2.3/", "actions": ["push"]}, "serviceUri"),
        ("metadata1", {"serviceUri": "http://169.254.169.254/", "actions": ["push"]}, "serviceUri"),
    ]
    for name, properties, field in cases:
        status, body, _ = await admin.call(
            "PUT", _hook(admin, name), {"location": "local", "properties": properties}
        )
        assert status == 400, (name, body)
        assert body["error"]["code"] == "InvalidParameter", (name, body)
        assert body["error"]["target"].startswith(field), (name, body)
    status, body, _ = await admin.call(
        "PUT",
        _hook(admin, "ab"),
        {"properties": {"serviceUri": "http://e.com/", "actions": ["push"]}},
    )
    assert status == 400 and body["error"]["target"] == "webhookName"
    status, listed, _ = await admin.call("GET", f"{admin.base}/default/webhooks")
    assert status == 200 and listed["value"] == [], "nothing half-created"
    for method, suffix in [("GET", ""), ("PATCH", ""), ("POST", "/ping"), ("POST", "/listEvents")]:
        status, body, _ = await admin.call(
            method,
            _hook(admin, "missing1") + suffix,
            {"properties": {}} if method == "PATCH" else None,
        )
        assert status == 404, (method, suffix, body)
    status, _, _ = await admin.call("DELETE", _hook(admin, "missing1"))
    assert status == 204


async def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """Without the allow rule, a host name that resolves to loopback is accepted at create
    (names are judged on each connection, by the address they resolve to) and its
    deliveries fail at once, not retried, the log saying why."""
    fast = {**FAST, "egress": {}}
    settings = make_settings(tmp_path / "data", None, webhooks=fast)
    async with running_registry(settings) as reg:
        admin = _admin(reg, tmp_path)
        status, body, _ = await admin.call(
            "PUT",
            _hook(admin, "loopback"),
            {"properties": {"serviceUri": receiver.url, "actions": ["push"]}},
        )
        assert status == 400 and "egress" in body["error"]["message"]
        await _create(
            admin, "byname", serviceUri=f"http://localhost:{receiver.port}/", actions=["push"]
        )
        await reg.push_image("app", "v1")
        (event,) = await _wait_events(admin, "byname", lambda e: e[0]["deliveryState"] == "failed")
        assert event["attempts"] == 1
        assert "denied" in event["error"]
        assert event["eventResponseMessage"]["statusCode"] is None
    assert receiver.received == []


async def test_events_recorded_before_a_restart_are_delivered_after_it(
    tmp_path: Path, database_url: str | None, receiver: WebhookReceiver
) -> None:
    # First process: the endpoint is down (every attempt fails), retries far apart.
    slow = {**FAST, "retry_initial_seconds": 3600, "retry_max_seconds": 3600}
    first = make_settings(tmp_path / "data", database_url, webhooks=slow)
    receiver.fail_next = 1
    async with running_registry(first) as reg:
        admin = _admin(reg, tmp_path)
        await _create(admin, "durable", serviceUri=receiver.url, actions=["push"])
        await reg.push_image("app", "v1")
        await receiver.wait(lambda got: len(got) == 1)
        await _wait_events(admin, "durable", lambda e: e[0]["attempts"] == 1)
    # The event is still in the outbox; make it due now, as the retry time passing would.
    second = make_settings(tmp_path / "data", database_url, webhooks={**FAST, "poll_seconds": 0.1})
    async with running_registry(second) as reg:
        async with reg.services.meta.writing() as q:
            await q.conn.execute(
                update(s.webhook_deliveries).values(next_attempt_at=datetime.now(UTC))
            )
        await receiver.wait(lambda got: len(got) == 2)
        assert receiver.received[0].event["id"] == receiver.received[1].event["id"]
        admin = _admin(reg, tmp_path)
        (event,) = await _wait_events(
            admin, "durable", lambda e: e[0]["deliveryState"] == "delivered"
        )
        assert event["attempts"] == 2


async def test_readyz_lists_the_webhook_loop(reg: RunningRegistry) -> None:
    async with reg.request("GET", "/readyz") as r:
        body = await r.json()
    assert r.status == 200, body
    (loop,) = [entry for entry in body["loops"] if entry["name"] == "webhooks"]
    assert loop["state"] == "running"


async def test_readers_see_webhooks_but_not_their_secrets_nor_change_them(
    reg: RunningRegistry, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    admin = _admin(reg, tmp_path)
    await _create(admin, "guarded", serviceUri=receiver.url, actions=["push"])
    owner = IdentityClient(reg.http, reg.url, owner_credential(tmp_path / "data"))
    sp = await owner.create_service_principal("hook-reader")
    await owner.assign(f"{admin.base}/default", sp.object_id, "Reader")
    reader = IdentityClient(reg.http, reg.url, sp)
    hook = _hook(admin, "guarded")
    status, listed = await reader.call("GET", f"{admin.base}/default/webhooks")
    assert status == 200 and [w["name"] for w in listed["value"]] == ["guarded"]
    assert (await reader.call("GET", hook))[0] == 200
    create = {"properties": {"serviceUri": receiver.url, "actions": ["push"]}}
    refused = [
        ("PUT", _hook(admin, "readers"), create),
        ("PATCH", hook, {"properties": {"status": "disabled"}}),
        ("DELETE", hook, None),
        ("POST", hook + "/ping", None),
        ("POST", hook + "/getCallbackConfig", None),
        ("POST", hook + "/listEvents", None),
    ]
    for method, path, body in refused:
        status, answer = await reader.call(method, path, body)
        assert status == 403, (method, path, answer)
        assert answer["error"]["code"] == "AuthorizationFailed"
    for method, path, body in refused:
        status, _, _ = await admin.call(method, path, body, authorization=None)
        assert status == 401, (method, path)
    # Nothing changed, nothing was sent.
    _, config, _ = await admin.call("POST", hook + "/getCallbackConfig")
    assert config["serviceUri"] == receiver.url
    assert receiver.received == []


async def test_an_import_is_a_push_per_tag_and_a_repository_delete_a_delete_per_manifest(
    reg: RunningRegistry, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    admin = _admin(reg, tmp_path)
    digest, _, _ = await reg.push_image("source", "v1")
    await _create(admin, "imports", serviceUri=receiver.url, actions=["push", "delete"])
    operation = await admin.start_import(
        "default",
        {
            "source": {"resourceId": admin.registry_id("default"), "sourceImage": "source:v1"},
            "targetTags": ["copy:v1", "copy:stable"],
            "untaggedTargetRepositories": ["bare"],
        },
    )
    assert operation.status == 202, operation.body
    await receiver.wait(lambda got: len(got) == 3)
    pushes = sorted(
        (r.event["target"]["repository"], r.event["target"].get("tag")) for r in receiver.received
    )
    assert pushes == [("bare", None), ("copy", "stable"), ("copy", "v1")]
    assert all(r.event["action"] == "push" for r in receiver.received)
    assert all(r.event["target"]["digest"] == digest for r in receiver.received)
    assert all("request" not in r.event for r in receiver.received)

    async with reg.request("DELETE", "/acr/v1/copy") as r:
        assert r.status == 202
    await receiver.wait(lambda got: len(got) == 4)
    deleted = receiver.received[3].event
    assert deleted["action"] == "delete"
    assert deleted["target"] == {"repository": "copy", "digest": digest}
    assert deleted["request"]["method"] == "DELETE"


async def test_a_receiver_that_does_not_answer_in_time_is_retried(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    settings = make_settings(tmp_path / "data", None, webhooks={**FAST, "timeout_seconds": 0.5})
    receiver.stall_next, receiver.stall_seconds = 1, 2.0
    async with running_registry(settings) as reg:
        admin = _admin(reg, tmp_path)
        await _create(admin, "slowpoke", serviceUri=receiver.url, actions=["push"])
        started = asyncio.get_running_loop().time()
        await reg.push_image("app", "v1")
        (event,) = await _wait_events(
            admin, "slowpoke", lambda e: e[0]["deliveryState"] == "delivered"
        )
        assert event["attempts"] == 2
        # The timed-out attempt did not hold the loop for the receiver's 2 s.
        assert asyncio.get_running_loop().time() - started < 10
    # The stalled request is recorded when the receiver finally answers it.
    await receiver.wait(lambda got: len(got) == 2)
    assert len({r.event["id"] for r in receiver.received}) == 1


async def test_a_skip_token_past_the_log_is_an_empty_page_and_a_malformed_one_a_400(
    reg: RunningRegistry, tmp_path: Path
) -> None:
    admin = _admin(reg, tmp_path)
    await _create(admin, "skipper", serviceUri="http://hooks.invalid/", actions=["push"])
    events = _hook(admin, "skipper") + "/listEvents"
    # Past 64 bits (the database's integers) and past what int() reads: 200, nothing.
    for token in ("9" * 30, "9" * 5000):
        status, body, _ = await admin.call("GET", f"{events}?$skipToken={token}")
        assert status == 200, body
        assert body["value"] == [] and "nextLink" not in body
    for token in ("-1", "1.5", "abc"):
        status, body, _ = await admin.call("GET", f"{events}?$skipToken={token}")
        assert status == 400 and body["error"]["target"] == "$skipToken", body
