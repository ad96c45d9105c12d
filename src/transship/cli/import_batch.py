"""`transship import --from-file FILE`: many images in one batch operation (the
importImages Transship extension).

The file lists one image a line: its source, as --source takes it, then optionally its
target tags (as --image takes them; default: the source's repository and tag). `#` starts
a comment; blank lines are skipped:

    # base images
    docker.io/library/alpine:3.20
    docker.io/library/busybox:1.36   busybox:1.36 busybox:stable
    ghcr.io/example/app@sha256:…     app:pinned

The command checks every line (naming its number) before sending anything, queues the batch,
shows each item's progress on stderr as it changes, and ends with a table of the items (or
the batch as JSON with -o json). It exits non-zero when any item did not succeed.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from transship.cli.client import (
    API_VERSION,
    ApiError,
    ManagementApi,
    Response,
    TransportError,
    parse_answer,
    parse_retry_after,
    request_line,
)
from transship.cli.import_platforms import with_platforms
from transship.cli.output import (
    EXIT_INTERRUPTED,
    JSON,
    CommandFailed,
    emit,
    emit_json,
    human_bytes,
    info,
    stderr_console,
)
from transship.wire.arm import OperationError, RateLimitWait
from transship.wire.batch import ImportBatchItem, ImportBatchStatus, ImportImagesParameters
from transship.wire.bodies import ImportImageParameters

# One long poll's wait (the server answers earlier when the batch changes).
FOLLOW_WAIT_SECONDS = 25.0
RETRY_SECONDS = 2.0
POLL_RETRIES = 3
# A target as --image takes it: a repository, optionally a tag (no digest).
_TARGET = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)
_BATCH_ID = re.compile(r"/importBatches/([0-9a-f]{32})")
BATCH_COLUMNS = ("#", "SOURCE", "TARGETS", "STATE", "FETCHED", "DIGEST", "RESULT")


@dataclass(frozen=True)
class BatchLine:
    """One image of the file: its line number, source, and target tags (may be none)."""

    line: int
    source: str
    targets: tuple[str, ...]


def parse_batch_file(text: str, name: str) -> list[BatchLine]:
    """The images `text` lists (see the module docstring). Raises click.UsageError naming
    `name` and the line of the first problem, or saying the file lists no image."""
    found: list[BatchLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        source, *targets = words
        for target in targets:
            if not _TARGET.fullmatch(target):
                raise click.UsageError(
                    f"{name} line {number}: {target!r} is not a target REPO[:TAG] (lowercase "
                    "repository, optional tag; no registry host, no digest)"
                )
        found.append(BatchLine(number, source, tuple(targets)))
    if not found:
        raise click.UsageError(f"{name} lists no image (one source a line; # starts a comment)")
    return found


def read_batch_file(path: str) -> tuple[str, list[BatchLine]]:
    """(the name to quote, its lines); `-` reads standard input. Raises click.UsageError."""
    if path == "-":
        return "<stdin>", parse_batch_file(sys.stdin.read(), "<stdin>")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read --from-file {path}: {exc}") from None
    return path, parse_batch_file(text, path)


def with_prefix(parameters: ImportImageParameters, prefix: str | None) -> ImportImageParameters:
    """`parameters` with `prefix` put before each target repository."""
    if not prefix:
        return parameters
    tags = parameters.target_tags
    repositories = parameters.untagged_target_repositories
    return parameters.model_copy(
        update={
            "target_tags": None if tags is None else [prefix + t for t in tags],
            "untagged_target_repositories": None
            if repositories is None
            else [prefix + r for r in repositories],
        }
    )


def build_batch(
    name: str,
    lines: Sequence[BatchLine],
    build: Callable[..., ImportImageParameters],
    *,
    target_prefix: str | None,
    platforms: tuple[str, ...],
    platform_mode: str | None,
    include_attestations: bool | None,
) -> ImportImagesParameters:
    """The importImages body: each line through `build` (`build_parameters` with the
    shared flags bound), then the prefix and platform flags. Raises click.UsageError naming
    the line."""
    images = []
    for line in lines:
        try:
            parameters = build(line.source, images=line.targets)
        except click.UsageError as exc:
            message = exc.message.replace("--source ", "the source ", 1)
            raise click.UsageError(f"{name} line {line.line}: {message}") from None
        parameters = with_prefix(parameters, target_prefix)
        images.append(with_platforms(parameters, platforms, platform_mode, include_attestations))
    return ImportImagesParameters(images=images)


def batch_path(management: ManagementApi, registry: str, resource_group: str | None) -> str:
    return management.registry_id(registry, resource_group)


def _line_error(exc: ApiError, name: str, lines: Sequence[BatchLine]) -> ApiError | CommandFailed:
    """A refusal of item i, named by its line of the file."""
    found = re.match(r"images\[(\d+)\]", exc.target or "")
    if found is None or int(found.group(1)) >= len(lines):
        return exc
    line = lines[int(found.group(1))]
    message = re.sub(r"^images\[\d+\]:\s*", "", exc.message)
    return CommandFailed(
        f"{name} line {line.line} ({line.source}): {message}",
        code=exc.code,
        details=[f"Target: {exc.target}"],
    )


def _item_result(item: ImportBatchItem) -> str:
    properties = item.operation.properties
    if properties.state == "succeeded":
        return "unchanged" if item.unchanged else "imported"
    error = item.operation.error
    if isinstance(error, OperationError):
        return f"{error.code}: {error.message or ''}".rstrip(": ")
    return properties.state


def batch_rows(batch: ImportBatchStatus) -> list[Sequence[Any]]:
    return [
        (
            item.index + 1,
            item.operation.properties.source,
            item.operation.properties.target_tags,
            item.operation.properties.state,
            human_bytes(item.operation.properties.progress.bytes_fetched),
            (item.digest or "")[:19],
            _item_result(item),
        )
        for item in batch.properties.items
    ]


class BatchProgress:
    """One line on stderr each time an item's state changes (and when it ends)."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self._seen: dict[int, str] = {}

    def update(self, batch: ImportBatchStatus) -> None:
        for item in batch.properties.items:
            properties = item.operation.properties
            state = properties.state
            if state == "running":
                # A running item's bytes show as its progress moves on, in 10% steps.
                progress = properties.progress
                if progress.bytes_total:
                    step = progress.bytes_done * 10 // progress.bytes_total
                    state = f"running {step * 10}%"
            if isinstance(properties.waiting, RateLimitWait):
                state = properties.waiting.message
            if self._seen.get(item.index) == state:
                continue
            self._seen[item.index] = state
            shown = _item_result(item) if state in ("succeeded", "failed", "canceled") else state
            self.console.print(
                f"[{item.index + 1}/{self.total}] {properties.source}: {shown}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )


def follow_batch(
    management: ManagementApi,
    url: str,
    batch: ImportBatchStatus,
    progress: BatchProgress,
    sleep: Callable[[float], None],
) -> ImportBatchStatus:
    """Long-poll the batch until it ends; returns its last status. Transient failures
    (connection, 5xx, 429) are retried a few times."""
    version: str | None = None
    failures = 0
    progress.update(batch)
    while batch.status == "InProgress":
        headers = {"If-None-Match": version} if version else None
        query = {"api-version": API_VERSION, "waitSeconds": f"{FOLLOW_WAIT_SECONDS:g}"}
        try:
            response: Response = management.send("GET", url, query=query, headers=headers)
        except (TransportError, ApiError) as exc:
            failures += 1
            transient = isinstance(exc, TransportError) or exc.status >= 500 or exc.status == 429
            if not transient or failures > POLL_RETRIES:
                raise
            sleep(RETRY_SECONDS)
            continue
        failures = 0
        if response.status == 304:
            continue
        batch = parse_answer(response, ImportBatchStatus, request_line("GET", url))
        progress.update(batch)
        answered = response.header("ETag")
        if answered is None or answered == version:
            # Nothing to wait on: pace the polls.
            sleep(max(0.5, parse_retry_after(response.header("Retry-After")) or 1.0))
        version = answered
    return batch


def run_batch(
    management: ManagementApi,
    ctx: click.Context,
    *,
    registry: str,
    resource_group: str | None,
    name: str,
    lines: Sequence[BatchLine],
    body: ImportImagesParameters,
    no_wait: bool,
    output: str,
    sleep: Callable[[float], None],
) -> None:
    """Queue the batch, follow it, print the result. Raises CommandFailed when an item is
    refused before anything is queued (naming its line) or did not succeed."""
    path = f"{batch_path(management, registry, resource_group)}/importImages"
    try:
        accepted = management.call("POST", path, body=body)
    except ApiError as exc:
        raise _line_error(exc, name, lines) from None
    batch = parse_answer(accepted, ImportBatchStatus, request_line("POST", path))
    found = _BATCH_ID.search(batch.id)
    url = f"{batch_path(management, registry, resource_group)}/importBatches/{batch.name}"
    if found is None:
        raise TransportError(f"the server answered a batch without an id: {batch.id}")
    if no_wait:
        if output == JSON:
            emit_json(batch)
        else:
            click.echo(f"Batch started: {batch.name} ({len(lines)} images)")
            click.echo(f"Status: {management.http.absolute(url)}")
        return
    try:
        final = follow_batch(
            management, url, batch, BatchProgress(stderr_console(), len(lines)), sleep
        )
    except KeyboardInterrupt:
        info(f"\nStopped waiting; the batch {batch.name} continues on the server.")
        ctx.exit(EXIT_INTERRUPTED)
    emit(output, final, BATCH_COLUMNS, batch_rows)
    counts = final.properties.counts
    if final.status == "Succeeded":
        if output != JSON:
            click.echo(
                f"Imported {counts.total} images into {registry}: "
                f"{counts.total - counts.unchanged} copied, {counts.unchanged} unchanged, "
                f"{human_bytes(counts.bytes_fetched)} fetched (batch {final.name})"
            )
        return
    error = final.error
    raise CommandFailed(
        error.message or "The batch did not succeed."
        if isinstance(error, OperationError)
        else f"The batch ended {final.properties.state}.",
        code=error.code if isinstance(error, OperationError) else "BatchCanceled",
        details=[f"Batch: {final.name}"],
    )


def registries_once(list_registries: Callable[[], Any]) -> Callable[[], Any]:
    """`list_registries`, asked at most once for the whole file."""
    return functools.cache(list_registries)
