"""importImage with `dryRun: true` (a Transship extension): the plan, answered at once."""

from __future__ import annotations

from pydantic import MISSING

from transship.api.envelopes import ArmError
from transship.imports.dry_run import DryRunReport
from transship.imports.errors import ImportFailure
from transship.imports.request_log import RequestCount
from transship.wire.dry_run import (
    DryRunBlobs,
    DryRunManifest,
    DryRunReferrer,
    DryRunRequests,
    DryRunTag,
    ImportDryRun,
)


def dry_run_json(report: DryRunReport, source: str) -> ImportDryRun:
    """The wire form of `report`; `source` is the source as the operation would name it."""
    blobs = report.blobs
    return ImportDryRun(
        source=source,
        mode="Force" if report.force else "NoForce",
        root=str(report.root),
        manifests=[
            DryRunManifest(
                digest=str(m.digest),
                media_type=m.media_type,
                platform=m.platform,
                size=m.size,
                present=m.present,
                root=m.root,
            )
            for m in report.manifests
        ],
        blobs=DryRunBlobs(
            total=blobs.total,
            present=blobs.present,
            to_fetch=blobs.to_fetch,
            bytes_total=blobs.bytes_total,
            bytes_present=blobs.bytes_present,
            bytes_to_fetch=blobs.bytes_to_fetch,
            foreign=blobs.foreign,
        ),
        target_tags=[
            DryRunTag(
                tag=str(t),
                action=t.action.value,
                current=None if t.current is None else str(t.current),
                reason=t.reason,
            )
            for t in report.tags
        ],
        untagged_target_repositories=list(report.untagged_repositories),
        predicted_requests=_requests(report.predicted),
        spent_requests=_requests(report.spent),
        would_succeed=not report.would_fail,
        referrers=MISSING if report.referrers is None else _referrers(report),
    )


def _referrers(report: DryRunReport) -> list[DryRunReferrer]:
    tags = {digest: tag for tag, digest in report.referrer_tags}
    return [
        DryRunReferrer(digest=str(digest), tag=tags.get(digest))
        for digest in report.referrers or ()
    ]


def _requests(count: RequestCount) -> DryRunRequests:
    return DryRunRequests(
        total=count.total,
        manifest_gets=count.manifest_gets,
        manifest_heads=count.manifest_heads,
        blob_gets=count.blob_gets,
        blob_heads=count.blob_heads,
        auth=count.auth,
        other=count.other,
        challenged=count.challenged,
        pulls=count.pulls,
    )


def dry_run_error(failure: ImportFailure, status: dict[str, int]) -> ArmError:
    """The error a failed import operation's result URL would answer (status by code from
    `status`, else 400), answered by the dry run at once."""
    return ArmError(
        status.get(failure.code, 400),
        failure.code,
        failure.message,
        details=[
            {
                "code": "ImportStep",
                "message": (
                    f"step={failure.step.value} object={failure.obj} "
                    f"upstreamStatus={failure.upstream_status}"
                ),
            }
        ],
    )
