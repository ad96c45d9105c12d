"""`resolve_endpoint`: Docker Hub aliases, overrides, insecure and custom trust."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.unit.imports.tls import write_self_signed
from transship.config import UpstreamHost
from transship.imports.endpoints import DOCKER_HUB_URL, Endpoint, resolve_endpoint


@pytest.mark.parametrize(
    "host", ["docker.io", "index.docker.io", "registry-1.docker.io", "Docker.IO"]
)
def test_docker_hub_names_all_reach_registry_1(host: str) -> None:
    endpoint = resolve_endpoint(host, {})
    assert endpoint == Endpoint(host=host, base_url="https://registry-1.docker.io", ssl=None)
    assert DOCKER_HUB_URL == "https://registry-1.docker.io"


@pytest.mark.parametrize("key", ["docker.io", "index.docker.io", "registry-1.docker.io"])
@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_a_docker_hub_override_under_any_alias_applies_to_every_alias(key: str, host: str) -> None:
    upstreams = {key: UpstreamHost(endpoint="https://mirror.example:8443")}
    endpoint = resolve_endpoint(host, upstreams)
    assert endpoint.base_url == "https://mirror.example:8443"
    assert endpoint.host == host


def test_docker_io_is_the_canonical_key_when_several_aliases_are_configured() -> None:
    upstreams = {
        "registry-1.docker.io": UpstreamHost(endpoint="https://third.example"),
        "docker.io": UpstreamHost(endpoint="https://canonical.example"),
        "index.docker.io": UpstreamHost(endpoint="https://second.example"),
    }
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert resolve_endpoint(host, upstreams).base_url == "https://canonical.example"


def test_unknown_hosts_are_https_with_their_port() -> None:
    assert resolve_endpoint("ghcr.io", {}) == Endpoint("ghcr.io", "https://ghcr.io", None)
    assert resolve_endpoint("reg.example:5000", {}).base_url == "https://reg.example:5000"
    assert resolve_endpoint("[::1]:5000", {}).base_url == "https://[::1]:5000"


def test_overrides_for_other_hosts_do_not_apply() -> None:
    upstreams = {"other.example": UpstreamHost(endpoint="http://127.0.0.1:1", insecure=True)}
    assert resolve_endpoint("reg.example", upstreams).base_url == "https://reg.example"
    # Not Docker Hub either:
    assert resolve_endpoint("docker.io", upstreams).base_url == DOCKER_HUB_URL


def test_override_keys_match_case_insensitively_and_keep_a_path_prefix() -> None:
    upstreams = {"Reg.Example:5000": UpstreamHost(endpoint="https://mirror.example/prefix/")}
    endpoint = resolve_endpoint("reg.example:5000", upstreams)
    assert endpoint.base_url == "https://mirror.example/prefix"


def test_plain_http_needs_insecure() -> None:
    with pytest.raises(ValueError, match=r"'local:5000'.*insecure"):
        resolve_endpoint(
            "local:5000", {"local:5000": UpstreamHost(endpoint="http://127.0.0.1:5000")}
        )
    endpoint = resolve_endpoint(
        "local:5000", {"local:5000": UpstreamHost(endpoint="http://127.0.0.1:5000", insecure=True)}
    )
    assert endpoint.base_url == "http://127.0.0.1:5000"
    assert endpoint.ssl is None


def test_insecure_https_skips_verification() -> None:
    upstreams = {"reg.example": UpstreamHost(endpoint="https://reg.example:8443", insecure=True)}
    endpoint = resolve_endpoint("reg.example", upstreams)
    assert endpoint.base_url == "https://reg.example:8443"
    assert endpoint.ssl is False
    assert endpoint.aiohttp_ssl is False


def test_an_insecure_host_without_an_endpoint_speaks_plain_http() -> None:
    endpoint = resolve_endpoint("127.0.0.1:5000", {"127.0.0.1:5000": UpstreamHost(insecure=True)})
    assert endpoint.base_url == "http://127.0.0.1:5000"
    assert endpoint.ssl is None


def test_an_override_without_insecure_keeps_verification_on() -> None:
    endpoint = resolve_endpoint("reg.example", {"reg.example": UpstreamHost()})
    assert endpoint.ssl is None
    assert endpoint.aiohttp_ssl is True


def test_ca_file_builds_a_context_that_trusts_the_bundle(tmp_path: Path) -> None:
    cert, _key = write_self_signed(tmp_path, "127.0.0.1")
    endpoint = resolve_endpoint("reg.example", {"reg.example": UpstreamHost(ca_file=cert)})
    assert isinstance(endpoint.ssl, ssl.SSLContext)
    assert endpoint.ssl.verify_mode == ssl.CERT_REQUIRED
    assert endpoint.ssl.check_hostname
    subjects = [c["subject"] for c in endpoint.ssl.get_ca_certs()]
    assert ((("commonName", "transship-test-ca"),),) in subjects


def test_an_unreadable_ca_file_is_a_value_error_naming_the_host(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=r"'reg\.example'"):
        resolve_endpoint("reg.example", {"reg.example": UpstreamHost(ca_file=missing)})


@pytest.mark.parametrize(
    "url",
    [
        "ftp://mirror.example",
        "mirror.example",
        "https://",
        "https://user:pw@mirror.example",
        "https://mirror.example/?x=1",
        "https://mirror.example/#frag",
        "https://mirror.example:99999",
        "http://[::1",
    ],
)
def test_invalid_endpoint_urls_are_value_errors_naming_the_host(url: str) -> None:
    with pytest.raises(ValueError, match=r"'reg\.example'") as info:
        resolve_endpoint("reg.example", {"reg.example": UpstreamHost(endpoint=url, insecure=True)})
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("host", ["", "a/b", "user@reg.example", "reg.example:notaport"])
def test_invalid_hosts_are_value_errors(host: str) -> None:
    with pytest.raises(ValueError):
        resolve_endpoint(host, {})
