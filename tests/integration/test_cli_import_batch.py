"""`transship import --from-file` against a server (on its own loop, in a thread) and a
real docker-registry upstream: progress per item, the final table and JSON, the exit code
when an item fails, an unchanged re-run, and errors naming the file's line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration import test_cli_import_dry_run as dry_run
from tests.integration.test_cli_identity import ok, owner_login, run
from tests.integration.test_cli_import_dry_run import Server
from tests.peers.distribution import DistributionRegistry
from tests.support.batches import push_small_images_now

REGISTRY = "batchregistry"
# The in-thread server of the dry-run CLI tests (a fixture), shared.
server = dry_run.server


def test_from_file_imports_each_line_and_reports_each_item(
    tmp_path: Path, server: Server, distribution_anon: DistributionRegistry
) -> None:
    built = push_small_images_now(tmp_path, distribution_anon.url, ["team/a", "team/b"])
    owner_login(server)  # type: ignore[arg-type]
    ok("registry", "create", REGISTRY)
    host = distribution_anon.host
    listing = tmp_path / "images.txt"
    listing.write_text(
        "# two images and one that does not exist\n"
        f"{host}/team/a:v1\n"
        "\n"
        f"{host}/team/b:v1   b:v1 b:stable   # two tags\n"
        f"{host}/team/a:missing\n"
    )

    first = run("import", "--name", REGISTRY, "--from-file", str(listing))
    assert first.exit_code == 1, first.output
    assert f"[1/3] {host}/team/a:v1: imported" in first.stderr
    assert f"[2/3] {host}/team/b:v1: imported" in first.stderr
    assert "[3/3]" in first.stderr and "ManifestUnknown" in first.stderr
    table = first.stdout
    assert "team/a:v1" in table and "b:v1, b:stable" in table
    assert "BatchItemsFailed" in first.stderr and "1 of 3 images did not import" in first.stderr

    good = tmp_path / "good.txt"
    good.write_text(f"{host}/team/a:v1\n{host}/team/b:v1 b:v1 b:stable\n")
    again = ok("import", "--name", REGISTRY, "--from-file", str(good), "--force", "-o", "json")
    batch = json.loads(again.stdout)
    assert batch["status"] == "Succeeded"
    assert [i["unchanged"] for i in batch["properties"]["items"]] == [True, True]
    assert [i["digest"] for i in batch["properties"]["items"]] == [
        built["team/a"].digest,
        built["team/b"].digest,
    ]
    table = ok("import", "--name", REGISTRY, "--from-file", str(good), "--force").stdout
    assert "unchanged" in table and "2 unchanged" in table

    started = ok("import", "--name", REGISTRY, "--from-file", str(good), "--force", "--no-wait")
    assert "Batch started:" in started.stdout and "/importBatches/" in started.stdout

    prefixed = ok(
        "import", "--name", REGISTRY, "--from-file", str(good), "--target-prefix", "mirror/"
    ).stdout
    assert "mirror/team/a:v1" in prefixed and "mirror/b:stable" in prefixed
    assert "2 copied" in prefixed


def test_from_file_errors_name_the_line(
    tmp_path: Path, server: Server, distribution_anon: DistributionRegistry
) -> None:
    owner_login(server)  # type: ignore[arg-type]
    ok("registry", "create", REGISTRY)
    host = distribution_anon.host
    listing = tmp_path / "images.txt"
    listing.write_text(f"# comment\n{host}/team/a:v1\n{host}/team/b:v1 B@sha256:00\n")
    bad = run("import", "--name", REGISTRY, "--from-file", str(listing))
    assert bad.exit_code == 2 and f"{listing} line 3" in bad.output, bad.output

    listing.write_text(f"{host}/team/a:v1\nhttps://{host}/team/b:v1\n")
    scheme = run("import", "--name", REGISTRY, "--from-file", str(listing))
    assert scheme.exit_code == 2 and f"{listing} line 2" in scheme.output, scheme.output

    listing.write_text(f"{host}/team/a:v1\n{host}/team/b:v1\n")
    refused = run("import", "--name", REGISTRY, "--from-file", str(listing), "--platform", "linux")
    assert refused.exit_code == 1, refused.output
    assert f"{listing} line 1" in refused.output and "platforms" in refused.output

    # The referrer flags apply to every line: checked by the CLI, sent with each item.
    alone = run(
        "import",
        "--name",
        REGISTRY,
        "--from-file",
        str(listing),
        "--referrer-artifact-type",
        "application/spdx+json",
    )
    assert alone.exit_code == 2 and "needs --include-referrers" in alone.output, alone.output
    typed = run(
        "import",
        "--name",
        REGISTRY,
        "--from-file",
        str(listing),
        "--include-referrers",
        "--referrer-artifact-type",
        "not a type",
    )
    assert typed.exit_code == 1, typed.output
    assert f"{listing} line 1" in typed.output and "referrerArtifactTypes" in typed.output

    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    nothing = run("import", "--name", REGISTRY, "--from-file", str(empty))
    assert nothing.exit_code == 2 and "lists no image" in nothing.output
    both = run("import", "--name", REGISTRY, "--from-file", str(listing), "--source", "x/y")
    assert both.exit_code == 2 and "--source does not apply" in both.output
    assert json.loads(ok("import", "list", "--name", REGISTRY, "-o", "json").stdout) == []
    help_text = ok("import", "--help").stdout
    assert "--from-file" in help_text and "images.txt" in help_text
