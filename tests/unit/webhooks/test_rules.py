"""The pure rules of webhooks: ACR's scope syntax and matching, the signature a receiver
checks, what the log hides, and the validation of URIs and headers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from transship.errors import Invalid
from transship.imports.egress import EgressPolicy, EgressRule
from transship.metadata.webhooks import scope_matches, valid_scope
from transship.webhooks.delivery import (
    SIGNATURE_HEADER,
    delivery_headers,
    logged_headers,
    logged_uri,
    signature,
)
from transship.webhooks.service import CallbackConfig, check_headers, check_service_uri

DENY_PRIVATE = EgressPolicy(deny_private=True)


@pytest.mark.parametrize(
    ("scope", "repository", "tag", "expected"),
    [
        ("", "any/repo", "v1", True),
        ("", "any/repo", None, True),
        ("app:v1", "app", "v1", True),
        ("app:v1", "app", "v2", False),
        ("app:*", "app", "v2", True),
        ("app:*", "app", None, True),  # by digest: only a `*` tag matches
        ("app:v*", "app", None, False),
        ("app", "app", "latest", True),  # no tag: latest, as ACR
        ("app", "app", "v1", False),
        ("team/*:*", "team/api", "v1", True),
        ("team/*:*", "other/api", "v1", False),
        ("*:prod-*", "anything", "prod-2", True),
        ("app?:*", "appx", "v1", False),  # only * is a wildcard
        ("app[x]:*", "appx", "v1", False),
    ],
)
def test_scope_matching(scope: str, repository: str, tag: str | None, expected: bool) -> None:
    assert scope_matches(scope, repository, tag) is expected


@pytest.mark.parametrize(
    ("scope", "valid"),
    [
        ("", True),
        ("app", True),
        ("app:*", True),
        ("team/app:v1.2-rc_1", True),
        ("*", True),
        ("App:v1", False),  # repositories are lower case
        ("app:", False),
        ("app:v1:v2", False),
        ("app v1", False),
        (":v1", False),
    ],
)
def test_scope_syntax(scope: str, valid: bool) -> None:
    assert valid_scope(scope) is valid


def test_signature_is_the_hmac_of_the_exact_body() -> None:
    body = b'{"id":"1","action":"push"}'
    expected = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert signature("key", body) == "sha256=" + expected
    assert signature("key", body + b" ") != signature("key", body)
    assert signature("other", body) != signature("key", body)


def test_custom_headers_cannot_replace_the_signature_and_are_hidden_in_the_log() -> None:
    config = CallbackConfig(
        "https://hooks.example.com/x?key=secret",
        {"Authorization": "Bearer t", "Content-Type": "application/cloudevents+json"},
        "key",
    )
    sent = delivery_headers(config, b"{}", "event-1")
    assert sent["Authorization"] == "Bearer t"
    assert sent["Content-Type"] == "application/cloudevents+json"
    assert sent[SIGNATURE_HEADER] == signature("key", b"{}")
    assert sent["X-Transship-Event-Id"] == "event-1"
    logged = logged_headers(config, b"{}", "event-1")
    assert logged["Authorization"] == "*****"
    assert logged[SIGNATURE_HEADER] == sent[SIGNATURE_HEADER]
    assert logged_uri(config.service_uri) == "https://hooks.example.com/x"
    assert "secret" not in repr(config) and "Bearer" not in repr(config)


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://example.com/",
        "example.com/hook",
        "http:///nohost",
        "http://user:pw@example.com/",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://10.0.0.5/",
        "http://169.254.169.254/latest",
        "http://metadata.google.internal/",
    ],
)
def test_bad_service_uris_are_refused(uri: str) -> None:
    with pytest.raises(Invalid) as raised:
        check_service_uri(uri, DENY_PRIVATE)
    assert raised.value.field == "serviceUri"


def test_an_allow_rule_opens_loopback() -> None:
    policy = EgressPolicy((EgressRule.parse("allow", "127.0.0.1"),), deny_private=True)
    check_service_uri("http://127.0.0.1:8080/hook", policy)
    check_service_uri("https://hooks.example.com/x?y=1", DENY_PRIVATE)


@pytest.mark.parametrize(
    "headers",
    [
        {"Bad Name": "x"},
        {"Host": "evil"},
        {"Content-Length": "1"},
        {"X-Transship-Signature": "sha256=forged"},
        {"X-A": "one\r\nX-B: two"},
        {"X-A": "x" * 8193},
    ],
)
def test_bad_headers_are_refused_without_quoting_values(headers: dict[str, str]) -> None:
    with pytest.raises(Invalid) as raised:
        check_headers(headers)
    assert raised.value.field == "customHeaders"
    for value in headers.values():
        if len(value) > 3:
            assert value not in str(raised.value)
