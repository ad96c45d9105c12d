"""`transship import --dry-run` against a server (on its own loop, in a thread) and a real
docker-registry upstream: the plan as tables and as JSON, errors of the plan step, and no
import started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import insecure
from tests.integration.test_cli_identity import ok, owner_login, run
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex
from tests.support.app import RunningRegistry, make_settings, registry_in_thread

REGISTRY = "dryregistry"


class Server:
    def __init__(self, reg: RunningRegistry, data_dir: Path) -> None:
        self.reg = reg
        self.data_dir = data_dir

    @property
    def url(self) -> str:
        return self.reg.url

    @property
    def owner(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.data_dir / "owner-credential.json").read_text())
        return data


@pytest.fixture
def server(
    tmp_path: Path, distribution_anon: DistributionRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("SERVER", "USERNAME", "PASSWORD", "TENANT", "USER_TYPE"):
        monkeypatch.delenv(f"TRANSSHIP_{name}", raising=False)
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, None, upstreams=insecure(distribution_anon.host))
    with registry_in_thread(settings) as (reg, _):
        yield Server(reg, data_dir)


def test_dry_run_prints_the_plan_as_tables_and_as_json_and_imports_nothing(
    server: Server, distribution_anon: DistributionRegistry, upstream_index: BuiltIndex
) -> None:
    owner_login(server)  # type: ignore[arg-type]
    ok("registry", "create", REGISTRY)
    source = f"{distribution_anon.host}/team/app:v1"
    args = ("import", "--name", REGISTRY, "--source", source, "--image", "app:v1", "--dry-run")

    table = ok(*args).stdout
    assert f"Dry run: import {source} into {REGISTRY} (NoForce); nothing imported." in table
    assert f"(root) {upstream_index.digest}" in table
    for platform in ("linux/amd64", "linux/arm64", "linux/arm/v7"):
        assert platform in table
    blobs = len(upstream_index.blob_digests)
    assert f"{blobs} to fetch" in table
    assert "app:v1" in table and "create" in table
    assert "rate-limited pulls" in table
    assert "The import would succeed." in table

    plan = json.loads(ok(*args, "-o", "json").stdout)
    assert plan["root"] == upstream_index.digest
    assert [m["digest"] for m in plan["manifests"]] == list(upstream_index.manifest_digests)
    assert plan["blobs"]["toFetch"] == blobs
    assert plan["predictedRequests"]["blobGets"] == blobs
    assert plan["spentRequests"]["pulls"] == 4
    assert plan["targetTags"][0]["action"] == "create"

    listed = json.loads(ok("import", "list", "--name", REGISTRY, "-o", "json").stdout)
    assert listed == [], "a dry run starts no import"


def test_dry_run_errors_and_flags(
    server: Server, distribution_anon: DistributionRegistry, upstream_index: BuiltIndex
) -> None:
    owner_login(server)  # type: ignore[arg-type]
    ok("registry", "create", REGISTRY)
    missing = run(
        "import",
        "--name",
        REGISTRY,
        "--source",
        f"{distribution_anon.host}/team/app:missing",
        "--dry-run",
    )
    assert missing.exit_code == 1, missing.output
    assert "ManifestUnknown" in missing.output and "team/app:missing" in missing.output
    both = run(
        "import",
        "--name",
        REGISTRY,
        "--source",
        f"{distribution_anon.host}/team/app:v1",
        "--dry-run",
        "--no-wait",
    )
    assert both.exit_code == 2 and "--no-wait does not apply" in both.output
    help_text = ok("import", "--help").stdout
    assert "--dry-run" in help_text and "--force --dry-run" in help_text
