"""The dry-run plan as people read it: manifests, blobs, tags and requests, and the verdict."""

from __future__ import annotations

import pytest

from transship.cli.import_dry_run import show
from transship.wire.dry_run import (
    DryRunBlobs,
    DryRunManifest,
    DryRunRequests,
    DryRunTag,
    ImportDryRun,
)

ROOT = "sha256:" + "a" * 64
CHILD = "sha256:" + "b" * 64
OLD = "sha256:" + "c" * 64


def requests(**counts: int) -> DryRunRequests:
    fields = dict.fromkeys(
        (
            "manifest_gets",
            "manifest_heads",
            "blob_gets",
            "blob_heads",
            "auth",
            "other",
            "challenged",
            "pulls",
        ),
        0,
    )
    fields.update(counts)
    total = sum(v for k, v in fields.items() if k not in ("challenged", "pulls"))
    return DryRunRequests(total=total, **fields)


def plan(*tags: DryRunTag, foreign: int = 0) -> ImportDryRun:
    return ImportDryRun(
        source="docker.io/library/app:1",
        mode="NoForce",
        root=ROOT,
        manifests=[
            DryRunManifest(
                digest=ROOT,
                media_type="application/vnd.oci.image.index.v1+json",
                platform=None,
                size=300,
                present=False,
                root=True,
            ),
            DryRunManifest(
                digest=CHILD,
                media_type="application/vnd.oci.image.manifest.v1+json",
                platform="linux/arm64/v8",
                size=500,
                present=True,
                root=False,
            ),
        ],
        blobs=DryRunBlobs(
            total=3,
            present=1,
            to_fetch=2,
            bytes_total=3_000_000,
            bytes_present=1_000_000,
            bytes_to_fetch=2_000_000,
            foreign=foreign,
        ),
        target_tags=list(tags),
        untagged_target_repositories=["mirror/app"],
        predicted_requests=requests(manifest_gets=3, blob_gets=2, auth=1, challenged=1, pulls=2),
        spent_requests=requests(manifest_gets=3, auth=1, challenged=1, pulls=2),
        would_succeed=not any(t.action == "refused" for t in tags),
    )


def test_the_plan_shows_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    show(plan(DryRunTag(tag="app:1", action="create", current=None, reason=None)), "myreg")
    out = capsys.readouterr().out
    assert out.startswith(
        "Dry run: import docker.io/library/app:1 into myreg (NoForce); nothing imported."
    )
    assert f"(root) {ROOT}" in out and "linux/arm64/v8" in out
    child = next(line for line in out.splitlines() if line.startswith(CHILD))
    assert child.split()[-1] == "yes"  # already in the target
    assert "Blobs: 3 (3.0 MB); 1 already in the target registry or linkable" in out
    assert "2 to fetch (2.0 MB)" in out and "foreign" not in out
    assert "Untagged into: mirror/app" in out
    rows = {
        line.rsplit(None, 2)[0].strip(): line.split()[-2:]
        for line in out.splitlines()
        if len(line.split()) >= 3
    }
    assert rows["blob GET"] == ["2", "0"]
    assert rows["token"] == ["1", "1"]
    assert rows["rate-limited pulls"] == ["2", "2"]
    assert rows["total"] == ["6", "4"]
    assert out.rstrip().endswith("The import would succeed.")


def test_a_refused_tag_is_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    refused = DryRunTag(
        tag="app:1",
        action="refused",
        current=OLD,
        reason="the tag exists; NoForce refuses existing tags (use Force)",
    )
    moved = DryRunTag(tag="app:latest", action="move", current=OLD, reason=None)
    show(plan(refused, moved, foreign=2), "myreg")
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("app:1 "))
    assert "refused" in line and OLD in line and "NoForce" in line
    assert "2 foreign layers not copied" in out
    assert out.rstrip().endswith("The import would fail: app:1 refused.")
