"""`transship import … --dry-run`: ask the server for the import's plan (importImage with
`dryRun: true`) and print it as tables (manifests, blobs, target tags, upstream requests),
or as the server's JSON answer with `--output json`."""

from __future__ import annotations

import click

from transship.cli.client import ManagementApi, parse_answer
from transship.cli.output import JSON, emit_json, emit_table, human_bytes, plural
from transship.wire.bodies import ImportImageParameters
from transship.wire.dry_run import DryRunRequests, ImportDryRun

MANIFEST_COLUMNS = ("Digest", "Media type", "Platform", "Size", "In target")
TAG_COLUMNS = ("Tag", "Action", "Now points at", "Reason")
REQUEST_COLUMNS = ("Upstream requests", "Import (predicted)", "This dry run")
_REQUEST_ROWS = (
    ("manifest GET", "manifest_gets"),
    ("manifest HEAD", "manifest_heads"),
    ("blob GET", "blob_gets"),
    ("blob HEAD", "blob_heads"),
    ("token", "auth"),
    ("other", "other"),
    ("total", "total"),
    ("  answered 401 (challenges)", "challenged"),
    ("  rate-limited pulls", "pulls"),
)


def dry_run(
    management: ManagementApi,
    registry: str,
    parameters: ImportImageParameters,
    resource_group: str | None,
    output: str,
) -> ImportDryRun:
    """POST the dry run and print its plan. Raises ApiError (the server's refusal: the
    same errors as the import's plan step) or AnswerMismatch."""
    body = parameters.model_copy(update={"dry_run": True})
    answered = management.import_image(registry, body, resource_group)
    request = f"POST {management.registry_id(registry, resource_group)}/importImage"
    plan = parse_answer(answered, ImportDryRun, request)
    if output == JSON:
        emit_json(plan)
    else:
        show(plan, registry)
    return plan


def show(plan: ImportDryRun, registry: str) -> None:
    """The plan as tables, for people."""
    click.echo(f"Dry run: import {plan.source} into {registry} ({plan.mode}); nothing imported.")
    click.echo("")
    emit_table(
        MANIFEST_COLUMNS,
        (
            [
                ("(root) " if m.root else "") + m.digest,
                m.media_type,
                m.platform or "",
                human_bytes(m.size),
                "yes" if m.present else "no",
            ]
            for m in plan.manifests
        ),
    )
    blobs = plan.blobs
    click.echo("")
    click.echo(
        f"Blobs: {blobs.total} ({human_bytes(blobs.bytes_total)}); {blobs.present} already in "
        f"the target registry or linkable (zero-copy, {human_bytes(blobs.bytes_present)}); "
        f"{blobs.to_fetch} to fetch ({human_bytes(blobs.bytes_to_fetch)})"
        + (f"; {plural(blobs.foreign, 'foreign layer')} not copied" if blobs.foreign else "")
    )
    click.echo("")
    if plan.target_tags:
        emit_table(
            TAG_COLUMNS,
            ([t.tag, t.action, t.current or "", t.reason or ""] for t in plan.target_tags),
        )
    if plan.untagged_target_repositories:
        click.echo(f"Untagged into: {', '.join(plan.untagged_target_repositories)}")
    if isinstance(plan.referrers, list):
        click.echo(f"Referrers: {plural(len(plan.referrers), 'referrer')} to copy")
        for referrer in plan.referrers:
            click.echo(f"  {referrer.digest}" + (f" (tag {referrer.tag})" if referrer.tag else ""))
    click.echo("")
    emit_table(REQUEST_COLUMNS, _request_rows(plan.predicted_requests, plan.spent_requests))
    click.echo("")
    if plan.would_succeed:
        click.echo("The import would succeed.")
    else:
        refused = [t.tag for t in plan.target_tags if t.action == "refused"]
        click.echo(f"The import would fail: {', '.join(refused)} refused.")


def _request_rows(predicted: DryRunRequests, spent: DryRunRequests) -> list[list[object]]:
    return [
        [label, getattr(predicted, field), getattr(spent, field)] for label, field in _REQUEST_ROWS
    ]
