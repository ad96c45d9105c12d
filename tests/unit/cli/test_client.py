"""The client parses every answer into its wire model: a body that does not fit is a clear
error (exit 1, as for other server errors), never a half-read dict; and the client commands
hold no free-form `dict[str, Any]` answers (a static check)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.cli.live_service import PROVIDER, LiveService, run
from transship.cli.client import AnswerMismatch, ApiError, Response, error_from, parse_answer
from transship.wire.arm import Registry, ServiceInfo

CLI = Path(__file__).resolve().parents[3] / "src" / "transship" / "cli"
# Where `dict[str, Any]` stays: the user's profile file and its credential files are
# free-form JSON the CLI reads and writes itself, not answers of the server.
FREE_FORM = {"profile.py"}


def test_an_answer_that_is_not_the_model_is_a_clear_error(logged_in: LiveService) -> None:
    registry = f"{logged_in.group}{PROVIDER}/registries/myregistry"
    logged_in.answer("GET", registry, (200, {"id": registry, "name": "myregistry"}))
    result = run("registry", "show", "myregistry")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        f"ERROR: the server's answer to GET {registry} is not a Registry: location: Field required"
        in result.stderr
    )


def test_a_listing_item_that_is_not_the_model_names_the_item(logged_in: LiveService) -> None:
    listing = f"/subscriptions/{logged_in.sub}{PROVIDER}/registries"
    logged_in.answer("GET", listing, (200, {"value": [{"name": 5}]}))
    result = run("registry", "list", "-o", "json")
    assert result.exit_code == 1
    assert "is not a list of Registry: value.0.id: Field required" in result.stderr


def test_a_body_that_is_not_json_is_a_clear_error(logged_in: LiveService) -> None:
    path = f"/subscriptions/{logged_in.sub}/resourcegroups"
    logged_in.answer("GET", path, (200, "not an object"))
    result = run("group", "list")
    assert result.exit_code == 1
    assert f"the server's answer to GET {path} is not a list of ResourceGroup" in result.stderr


def test_a_data_plane_answer_that_is_not_the_model_is_a_clear_error(
    logged_in: LiveService,
) -> None:
    assert run("registry", "create", "myregistry").exit_code == 0
    logged_in.answer("GET", "/acr/v1/_catalog", (200, {"repositories": "not-a-list"}))
    result = run("repository", "list", "--name", "myregistry")
    assert result.exit_code == 1
    assert (
        "the server's answer to GET /acr/v1/_catalog is not a Repositories: repositories:"
        in result.stderr
    )


def response(body: bytes, status: int = 200) -> Response:
    return Response(status, None, body)  # type: ignore[arg-type]


def test_parse_answer_names_the_request_model_and_field() -> None:
    with pytest.raises(AnswerMismatch) as raised:
        parse_answer(response(b'{"version": "1"}'), ServiceInfo, "GET /transship/v1/info")
    assert str(raised.value).startswith(
        "the server's answer to GET /transship/v1/info is not a ServiceInfo: tenantId:"
    )
    with pytest.raises(AnswerMismatch, match="is not a Registry: the body: Invalid JSON"):
        parse_answer(response(b"<html>"), Registry, "GET /x")


def test_error_envelopes_are_read_with_their_models() -> None:
    arm = error_from(
        409,
        "Conflict",
        b'{"error": {"code": "Busy", "message": "m", "target": "t",'
        b' "details": [{"code": "D", "message": "d"}]}}',
    )
    assert (arm.code, arm.message, arm.target) == ("Busy", "m", "t")
    assert [(d.code, d.message) for d in arm.details] == [("D", "d")]
    oci = error_from(
        404, "Not Found", b'{"errors": [{"code": "NAME_UNKNOWN", "message": "m", "detail": "x"}]}'
    )
    assert (oci.code, oci.message) == ("NAME_UNKNOWN", "m: x")
    oauth = error_from(
        400,
        "Bad Request",
        b'{"error": "invalid_client", "error_description": "no", "error_codes": [7000215]}',
    )
    assert (oauth.code, oauth.message) == ("invalid_client", "no")
    bare = error_from(502, "Bad Gateway", b"upstream down")
    assert isinstance(bare, ApiError) and (bare.code, bare.message) == (
        "HTTP502",
        "Bad Gateway: upstream down",
    )


def test_no_free_form_dict_answers_in_the_client_commands() -> None:
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(CLI.glob("*.py"))
        if path.name not in FREE_FORM
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"dict\[str,\s*Any\]|\.json\(\)", line)
    ]
    assert offenders == [], "answers are parsed into transship.wire models:\n" + "\n".join(
        offenders
    )
