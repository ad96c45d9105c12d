"""The configuration files of deploy/ are valid where a tool can tell: HAProxy's own check
of its configurations, `systemd-analyze verify` of the units, a YAML parse of the compose
file (and the topology it describes), and Transship's settings model for the settings
files. The loopback script itself runs in test_deployment.py."""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.peers.transship import REPO_ROOT
from transship.config import Settings

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
            pytest.fail(f"{name} is not installed but TRANSSHIP_REQUIRE_PEERS=1", pytrace=False)
        pytest.skip(f"{name} is not installed")
    return found


def _haproxy_check(config: Path) -> None:
    result = subprocess.run(
        [_tool("haproxy"), "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_compose_haproxy_configuration_is_valid() -> None:
    _haproxy_check(DEPLOY / "compose" / "haproxy.cfg")


def test_the_haproxy_template_filled_in_for_three_machines_is_valid(tmp_path: Path) -> None:
    template = string.Template((DEPLOY / "haproxy" / "haproxy.cfg.template").read_text())
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        template.substitute(
            listen="    bind 127.0.0.1:5000",
            servers="\n".join(f"    server r{n} 10.0.0.1{n}:5000 check" for n in (1, 2, 3)),
            stats="",
        )
    )
    _haproxy_check(config)
    text = "\n".join(
        line for line in config.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    # Per request, no stickiness; health from /readyz.
    assert "balance roundrobin" in text and "option httpchk GET /readyz" in text
    assert "cookie" not in text and "stick" not in text


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze")
    transship = Path(sys.executable).parent / "transship"
    assert transship.exists(), transship
    units = []
    for unit, instance in (
        ("transship-serve@.service", "5000"),
        ("transship-worker@.service", "1"),
    ):
        text = (DEPLOY / "systemd" / unit).read_text()
        # The units name the installed command; here it is this checkout's.
        assert "ExecStart=/opt/transship/bin/transship " in text
        text = text.replace("/opt/transship/bin/transship", str(transship))
        (tmp_path / unit).write_text(text)
        instance_unit = tmp_path / unit.replace("@", f"@{instance}")
        instance_unit.write_text(text)
        units.append(str(instance_unit))
    result = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unknown" not in output and "ignoring" not in output, output


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_compose_file_describes_the_reference_topology() -> None:
    services = _compose()["services"]
    assert services["replica"]["deploy"]["replicas"] == 3
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "--no-background-work" in services["replica"]["command"]
    assert services["worker"]["command"][0] == "worker"
    assert set(services) >= {"postgres", "seaweedfs", "init", "replica", "worker", "haproxy"}
    # The bucket exists before anything opens it, and the schema before any replica starts.
    assert services["init"]["depends_on"]["bucket"]["condition"] == (
        "service_completed_successfully"
    )
    assert "http://seaweedfs:8333/transship" in services["bucket"]["command"]
    # Every Transship process reads one settings file and one service key.
    for name in ("init", "replica", "worker"):
        service = services[name]
        assert service["environment"]["TRANSSHIP_CONFIG"] == "/etc/transship/transship.toml"
        assert [s["source"] for s in service["secrets"]] == ["service_key"], name
        assert "./transship.toml:/etc/transship/transship.toml:ro" in service["volumes"]
        if name != "init":
            assert services[name]["depends_on"]["init"]["condition"] == (
                "service_completed_successfully"
            )
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in services["haproxy"]["volumes"]


@pytest.mark.parametrize(
    "settings_file", [DEPLOY / "transship.toml", DEPLOY / "compose" / "transship.toml"]
)
def test_the_settings_files_are_valid_settings(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSSHIP_CONFIG", str(settings_file))
    settings = Settings()
    assert settings.database_url is not None and settings.database_url.startswith("postgresql")
    assert settings.login_server_suffix
    assert settings.service_key_file is not None
    assert str(getattr(settings, "storage_url", "")).startswith("s3://")


def test_the_compose_settings_name_the_compose_secret() -> None:
    services = _compose()["services"]
    target = services["replica"]["secrets"][0]["target"]
    assert f'service_key_file = "{target}"' in (DEPLOY / "compose" / "transship.toml").read_text()
