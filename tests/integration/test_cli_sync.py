"""`transship sync rule …` against a server (on its own loop, in a thread) and a real
docker-registry upstream: create, list, show, run (progress, table, JSON, exit code when a
tag fails), update, runs and delete; usage errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration import test_cli_import_dry_run as dry_run
from tests.integration.test_cli_identity import ok, owner_login, run
from tests.integration.test_cli_import_dry_run import Server
from tests.peers.distribution import DistributionRegistry
from tests.support.batches import push_small_images_now

REGISTRY = "syncregistry"
# The in-thread server of the dry-run CLI tests (a fixture), shared.
server = dry_run.server


def test_sync_rule_lifecycle_and_runs(
    tmp_path: Path, server: Server, distribution_anon: DistributionRegistry
) -> None:
    for tag in ("1.0.0", "1.1.0", "latest"):
        push_small_images_now(tmp_path, distribution_anon.url, ["team/app"], tag=tag)
    owner_login(server)  # type: ignore[arg-type]
    ok("registry", "create", REGISTRY)
    host = distribution_anon.host
    created = ok(
        "sync", "rule", "create", "-r", REGISTRY, "app",
        "--source", f"{host}/team/app", "--target", "mirror/app", "--semver", ">=1",
        "-o", "json",
    )  # fmt: skip
    rule = json.loads(created.stdout)
    assert rule["properties"]["tagFilter"]["semver"] == ">=1"
    assert rule["properties"]["intervalSeconds"] is None

    first = ok("sync", "rule", "run", "-r", REGISTRY, "app")
    assert "team/app:1.0.0 → mirror/app: copied" in first.stderr, first.stderr
    assert "team/app:1.1.0 → mirror/app: copied" in first.stderr
    assert "latest" not in first.stdout
    assert "Synced app: 2 copied, 0 unchanged" in first.stdout

    again = json.loads(ok("sync", "rule", "run", "-r", REGISTRY, "app", "-o", "json").stdout)
    assert again["state"] == "succeeded"
    assert [t["outcome"] for t in again["tags"]] == ["unchanged", "unchanged"]

    listed = ok("sync", "rule", "list", "-r", REGISTRY).stdout
    assert "app" in listed and "semver >=1" in listed and "on demand" in listed
    assert "succeeded" in listed
    history = ok("sync", "rule", "runs", "-r", REGISTRY, "app").stdout
    assert history.count("manual") == 2

    updated = json.loads(
        ok(
            "sync", "rule", "update", "-r", REGISTRY, "app", "--include", "1\\.0\\..*",
            "--interval", "1h", "-o", "json",
        ).stdout
    )  # fmt: skip
    properties = updated["properties"]
    assert properties["tagFilter"] == {
        "include": "1\\.0\\..*", "exclude": None, "semver": ">=1", "newest": None
    }  # fmt: skip
    assert properties["intervalSeconds"] == 3600 and properties["nextRunTime"]
    assert properties["sourceRepositories"] == ["team/app"]

    # A tag another image holds already: the run reports it failed and exits non-zero.
    ok(
        "sync", "rule", "create", "-r", REGISTRY, "clash",
        "--source", f"{host}/team/app", "--target", "mirror/app", "--include", "1\\.1\\.0",
        "--include-referrers",
    )  # fmt: skip
    ok("sync", "rule", "update", "-r", REGISTRY, "clash", "--target", "mirror/app")
    push_small_images_now(
        tmp_path, distribution_anon.url, ["team/app"], tag="1.1.0", variant="-moved"
    )
    ok("sync", "rule", "delete", "-r", REGISTRY, "app", "--yes")
    clash = run("sync", "rule", "run", "-r", REGISTRY, "clash")
    assert clash.exit_code == 1, clash.output
    assert "TagAlreadyExists" in clash.stdout + clash.stderr
    assert "SyncTagsFailed" in clash.stderr

    bad = run("sync", "rule", "create", "-r", REGISTRY, "bad-one", "--source", f"{host}/a",
              "--semver", "banana")  # fmt: skip
    assert bad.exit_code == 1 and "tagFilter.semver" in bad.output, bad.output
    usage = run("sync", "rule", "create", "-r", REGISTRY, "bad-two", "--source", "a:1")
    assert usage.exit_code == 2 and "without tag or digest" in usage.output
    mixed = run(
        "sync", "rule", "create", "-r", REGISTRY, "bad-three",
        "--source", "ghcr.io/a", "--source", "quay.io/b",
    )  # fmt: skip
    assert mixed.exit_code == 2 and "several registries" in mixed.output
    assert run("sync", "rule", "update", "-r", REGISTRY, "clash").exit_code == 2
    gone = run("sync", "rule", "show", "-r", REGISTRY, "app")
    assert gone.exit_code != 0 and "SyncRuleNotFound" in gone.output
