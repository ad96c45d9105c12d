"""The portal's small pure rules: where sign-in may send a browser, which requests `/`
redirects, an import's progress snapshot and failure text, and sizes for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import make_mocked_request

from transship.metadata.records import ImportJobRecord
from transship.portal.imports import failure_text, snapshot
from transship.portal.render import size_text
from transship.portal.routes import prefers_html
from transship.portal.web import local_next

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "/portal/"),
        ("", "/portal/"),
        ("/portal/registries/a/b/c", "/portal/registries/a/b/c"),
        ("/portal/x?q=1", "/portal/x?q=1"),
        ("https://evil.example/portal/", "/portal/"),
        ("//evil.example/portal/", "/portal/"),
        ("/v2/_catalog", "/portal/"),
        ("/portal/\\evil", "/portal/"),
        ("/portal/x\r\nSet-Cookie: a=b", "/portal/"),
    ],
)
def test_sign_in_sends_browsers_only_to_portal_paths(given: str | None, expected: str) -> None:
    assert local_next(given) == expected


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("text/html", True),
        ("application/json", False),
        ("", False),
        ("*/*", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("application/json;q=0.5, text/html", True),
    ],
)
def test_root_redirects_only_requests_preferring_html(accept: str, html: bool) -> None:
    request = make_mocked_request("GET", "/", headers={"Accept": accept} if accept else {})
    assert prefers_html(request) is html


def _job(**changes: object) -> ImportJobRecord:
    values: dict[str, object] = {
        "id": "0" * 32,
        "registry_id": 1,
        "request": "{}",
        "credentials": None,
        "state": "running",
        "bytes_total": 1000,
        "bytes_done": 250,
        "blobs_total": 4,
        "blobs_done": 1,
        "manifests_total": 2,
        "manifests_done": 0,
        "bytes_fetched": 250,
        "error_code": None,
        "error_message": None,
        "error_step": None,
        "error_object": None,
        "error_upstream_status": None,
        "cancel_requested": False,
        "attempts": 1,
        "created_at": T0,
        "started_at": T0,
        "ended_at": None,
    }
    values.update(changes)
    return ImportJobRecord(**values)  # type: ignore[arg-type]


def test_a_running_import_reports_percent_rate_and_time_left() -> None:
    snap = snapshot(_job(), now=T0 + timedelta(seconds=5))
    assert snap.percent == 25 and snap.state == "Running" and not snap.final
    assert snap.rate == "50 B/s" and snap.eta == "15 s"
    assert snap.blobs == "1 of 4" and snap.manifests == "0 of 2"


def test_percent_reaches_100_only_when_succeeded() -> None:
    done_bytes = _job(bytes_done=1000)
    assert snapshot(done_bytes, now=T0 + timedelta(seconds=1)).percent == 99
    finished = _job(state="succeeded", bytes_done=1000, ended_at=T0 + timedelta(seconds=2))
    snap = snapshot(finished)
    assert snap.percent == 100 and snap.final and snap.eta == "—"
    assert '"percent": 100' in snap.json()


def test_before_bytes_are_known_items_count() -> None:
    snap = snapshot(_job(bytes_total=0, bytes_done=0, blobs_done=2, manifests_done=1), now=T0)
    assert snap.percent == 50 and snap.eta == "unknown"


def test_a_failure_is_told_in_plain_words() -> None:
    job = _job(
        state="failed",
        error_code="InvalidParameters",
        error_message="The source image team/x:v1 was not found.",
        error_step="fetch_manifest",
        error_object="team/x:v1",
        error_upstream_status=404,
        ended_at=T0,
    )
    text = failure_text(job)
    assert text == (
        "The source image team/x:v1 was not found. It stopped while fetch manifest on "
        "team/x:v1 (the source answered HTTP 404). [InvalidParameters]"
    )
    assert failure_text(_job()) is None
    assert failure_text(_job(state="canceled")) == "Canceled before it finished."


def test_sizes_for_people() -> None:
    assert [size_text(v) for v in (None, 0, 999, 1500, 2_500_000)] == [
        "—",
        "0 B",
        "999 B",
        "1.5 kB",
        "2.5 MB",
    ]
