"""The docker CLI (no engine) against Transship: login, and ``manifest inspect --insecure``."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.e2e.content import descriptors
from tests.peers.clients import DockerCli
from tests.peers.images import BuiltIndex, push_layout_http, sha256_digest
from tests.peers.transship import TransshipServer

pytestmark = pytest.mark.timeout(60)


def _inspect_pushed(
    docker_cli: DockerCli, server: TransshipServer, built: BuiltIndex, repo: str
) -> Any:
    """Push ``built`` as ``repo:v1``; return what ``docker manifest inspect --insecure`` prints."""
    push_layout_http(built, server.url, repo, "v1")
    return docker_cli.manifest_inspect(f"{server.host}/{repo}:v1")


def _assert_verbose_children(
    docker_cli: DockerCli, ref: str, built: BuiltIndex
) -> list[dict[str, Any]]:
    """``--verbose`` prints one entry per child: its descriptor and its exact bytes (``Raw``)."""
    entries: list[dict[str, Any]] = docker_cli.manifest_inspect(ref, verbose=True)
    assert [e["Descriptor"] for e in entries] == descriptors(built)
    for entry, child in zip(entries, built.children, strict=True):
        assert sha256_digest(base64.b64decode(entry["Raw"])) == child.digest
    return entries


def test_login_accepts_any_credentials(docker_cli: DockerCli, transship: TransshipServer) -> None:
    """/v2/ answers 200 without a challenge, so the CLI never sends the credentials at all.

    It tries HTTPS first, falls back to plain HTTP (loopback is an insecure registry by
    default), reports success and stores whatever it was given.
    """
    for password in ("first-secret", "another-one"):
        done = docker_cli.login(transship.host, "anyone", password)
        assert "Login Succeeded" in done.text
        assert "server gave HTTP response to HTTPS client" in done.error_text
        stored = docker_cli.config()["auths"][transship.host]["auth"]
        assert base64.b64decode(stored).decode() == f"anyone:{password}"

    docker_cli.logout(transship.host)
    assert transship.host not in docker_cli.config().get("auths", {})


def test_manifest_inspect_multiarch_index(
    docker_cli: DockerCli, multiarch: BuiltIndex, transship: TransshipServer
) -> None:
    printed = _inspect_pushed(docker_cli, transship, multiarch, "e2e/multi")
    assert printed["mediaType"] == multiarch.media_type
    assert printed["manifests"] == descriptors(multiarch)
    _assert_verbose_children(docker_cli, f"{transship.host}/e2e/multi:v1", multiarch)


def test_manifest_inspect_docker_list_with_foreign_layer(
    docker_cli: DockerCli, windows_list: BuiltIndex, transship: TransshipServer
) -> None:
    printed = _inspect_pushed(docker_cli, transship, windows_list, "e2e/win")
    assert printed["mediaType"] == windows_list.media_type
    assert printed["manifests"] == descriptors(windows_list)
    windows = windows_list.child("windows/amd64")
    assert windows.platform is not None
    assert printed["manifests"][0]["platform"]["os.version"] == windows.platform.os_version

    entries = _assert_verbose_children(docker_cli, f"{transship.host}/e2e/win:v1", windows_list)
    layers = entries[0]["SchemaV2Manifest"]["layers"]
    assert [layer["digest"] for layer in layers] == [layer.digest for layer in windows.layers]
    (foreign,) = windows.foreign_layers
    assert layers[0]["urls"] == list(foreign.urls)


def test_manifest_inspect_needs_insecure(
    docker_cli: DockerCli, multiarch: BuiltIndex, transship: TransshipServer
) -> None:
    """Without ``--insecure`` the CLI tries HTTPS only and reports "no such manifest"."""
    push_layout_http(multiarch, transship.url, "e2e/multi", "v1")
    done = docker_cli("manifest", "inspect", f"{transship.host}/e2e/multi:v1", check=False)
    assert done.returncode != 0
    assert "no such manifest" in done.error_text
