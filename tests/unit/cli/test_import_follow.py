"""`transship import` follows the operation by long poll (the real application in-process):
it returns on the answer that shows the end, without a single poll delay; a server without
the follow endpoint is polled through the status URL; and answers that bring nothing new
before their wait is over are spaced by a poll delay, never repeated at once."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.unit.cli.live_service import SUFFIX, Handler, LiveService
from tests.unit.cli.test_client_commands import (
    create_registries,
    follow_path,
    ok,
    started,
)
from transship.cli import commands_import


def local_import(service: LiveService) -> list[str]:
    create_registries(service, "myregistry", "mysourceregistry")
    service.push_images(f"mysourceregistry.{SUFFIX}", [("app", "1")])
    return ["import", "-n", "myregistry", "--source", f"mysourceregistry.{SUFFIX}/app:1"]


def test_the_import_is_followed_by_long_poll_without_any_poll_delay(
    logged_in: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = local_import(logged_in)

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"the CLI slept {seconds} s instead of waiting on the server")

    monkeypatch.setattr(commands_import, "sleep", no_sleep)
    etags: list[str] = []  # the version each follow answer carried, in order

    async def recording(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        etags.append(response.headers["ETag"])
        return response

    logged_in.intercept("GET", follow_path(logged_in), recording, prefix=True)
    result = ok(*args)
    op = started(logged_in)
    assert f"(operation {op})" in result.stdout
    follows = logged_in.seen("GET", f"{follow_path(logged_in)}{op}")
    assert follows and follows[-1].status == 200
    assert follows[-1].reply["status"] == "Succeeded"
    assert not logged_in.seen("GET", "/operationStatuses/")
    # The first asks where the operation stands; each next one names the version it has and
    # waits for another.
    assert "If-None-Match" not in follows[0].headers and "waitSeconds" not in follows[0].query
    assert len(etags) == len(follows)
    for answered, after in zip(etags, follows[1:], strict=False):
        assert after.headers["If-None-Match"] == answered
        assert float(after.query["waitSeconds"]) == commands_import.FOLLOW_WAIT_SECONDS


def test_a_server_without_the_follow_endpoint_is_polled(logged_in: LiveService) -> None:
    args = local_import(logged_in)

    async def no_route(request: web.Request, handler: Handler) -> web.StreamResponse:
        return web.json_response(
            {"error": {"code": "NotFound", "message": "no such route"}}, status=404
        )

    logged_in.intercept("GET", follow_path(logged_in), no_route, prefix=True)
    result = ok(*args)
    op = started(logged_in)
    assert len(logged_in.seen("GET", f"{follow_path(logged_in)}{op}")) == 1
    polls = logged_in.seen("GET", f"/operationStatuses/{op}")
    assert polls and polls[-1].reply["status"] == "Succeeded"
    assert "Imported" in result.stdout


def test_early_answers_with_nothing_new_are_spaced_by_a_poll_delay(
    logged_in: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = local_import(logged_in)
    early = [0]

    async def at_once(request: web.Request, handler: Handler) -> web.StreamResponse:
        # As a server shutting down answers: at once, nothing new (the version named).
        named = request.headers.get("If-None-Match")
        if named is not None and early[0] < 3:
            early[0] += 1
            return web.Response(status=304, headers={"ETag": named})
        return await handler(request)

    delays: list[float] = []
    monkeypatch.setattr(commands_import, "sleep", delays.append)
    # The real import ends quickly: the first answer is made that of a running operation,
    # so the CLI goes on following it.
    running = [True]

    async def first_running(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await at_once(request, handler)
        if running[0] and request.headers.get("If-None-Match") is None:
            running[0] = False
            assert isinstance(response, web.Response) and isinstance(response.body, bytes)
            body = response.body.replace(b'"Succeeded"', b'"InProgress"')
            body = body.replace(b'"succeeded"', b'"running"')
            return web.Response(
                body=body,
                content_type="application/json",
                headers={"ETag": '"first"'},
            )
        return response

    logged_in.intercept("GET", follow_path(logged_in), first_running, prefix=True)
    ok(*args)
    op = started(logged_in)
    follows = logged_in.seen("GET", f"{follow_path(logged_in)}{op}")
    assert [f.status for f in follows[:4]] == [200, 304, 304, 304]
    assert follows[-1].status == 200 and follows[-1].reply["status"] == "Succeeded"
    # One poll delay after each early answer, and none after an answer that was new.
    assert delays == [commands_import.MIN_POLL_SECONDS] * 3
