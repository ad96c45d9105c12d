"""`transship login --server` pointed at Debian's docker-registry, a registry that is not
Transship: the CLI says so plainly and saves nothing, whatever the registry's auth mode and
whether a tenant was given."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.peers.distribution import AuthMode, DistributionRegistry
from tests.peers.procs import PeerUnavailable
from transship.cli.main import main

pytestmark = pytest.mark.peers


@pytest.fixture(params=["anonymous", "htpasswd"])
def docker_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    mode: AuthMode = request.param
    try:
        registry = DistributionRegistry(tmp_path / "registry", mode).start()
    except PeerUnavailable as exc:
        if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
            pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield registry.url
    finally:
        registry.stop()


@pytest.mark.parametrize("tenant", [(), ("--tenant", "t1")], ids=["no tenant", "tenant"])
def test_login_to_docker_registry_says_it_is_not_transship(
    docker_registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tenant: tuple[str, ...],
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("SERVER", "USERNAME", "PASSWORD", "TENANT", "USER_TYPE"):
        monkeypatch.delenv(f"TRANSSHIP_{name}", raising=False)
    result = CliRunner().invoke(
        main,
        [
            "login",
            "--server",
            docker_registry,
            "--service-principal",
            "-u",
            "app",
            "--password-stdin",
            *tenant,
        ],
        input="secret\n",
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(
        f"ERROR: (NotTransship) {docker_registry} is not a Transship server (or not its base URL)"
    ), result.stderr
    assert "answered 404" in result.stderr
    assert not (tmp_path / "config" / "transship" / "profile.json").exists()
