"""`transship import` (az acr import) and `transship import list|show|cancel`.

`build_parameters` turns the flags into ImportImageParameters exactly as `az acr import`
does; the command then POSTs importImage and follows the long-running operation, showing
progress on stderr: by long poll on the server's follow endpoint (each answer comes when the
operation changes, so the command returns right after it ends), or, from a server without
that endpoint, by polling the operation's status URL (an Azure-AsyncOperation header, else
the accepted body's `id`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import click

from transship.cli.client import (
    API_VERSION,
    ApiError,
    ManagementApi,
    Response,
    TransportError,
    is_arm_id,
    parse_answer,
    parse_retry_after,
    request_line,
    unchecked,
)
from transship.cli.common import (
    CONTEXT,
    api,
    name_option,
    resource_group_option,
    service_command,
)
from transship.cli.import_batch import build_batch, read_batch_file, registries_once, run_batch
from transship.cli.import_dry_run import dry_run as plan_import
from transship.cli.import_platforms import platform_options, source_text, with_platforms
from transship.cli.import_referrers import referrer_options, referrers_text, with_referrers
from transship.cli.output import (
    EXIT_INTERRUPTED,
    JSON,
    CommandFailed,
    emit,
    emit_json,
    human_bytes,
    info,
    output_option,
    plural,
    short_time,
    stderr_console,
    warn,
)
from transship.cli.progress import Counters, ImportProgress
from transship.cli.pull_hint import registry_login_server, show_pull_hint
from transship.wire.arm import (
    ImportFailure,
    OperationError,
    OperationStatus,
    RateLimitWait,
    Registry,
)
from transship.wire.bodies import ImportImageParameters, ImportSource, ImportSourceCredentials

MIN_POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 2.0
POLL_RETRIES = 3  # consecutive transient failures (connection, 5xx) tolerated while polling
# One long poll's wait; the server answers earlier when the operation changes (it allows up
# to 30 s; the HTTP client's timeout is longer than both).
FOLLOW_WAIT_SECONDS = 25.0
TERMINAL = {"succeeded", "failed", "canceled"}
sleep = time.sleep  # replaced in tests
clock = time.monotonic  # replaced in tests

Registries = Callable[[], list[Registry]]
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Outcome:
    """How an import stands: its status, and the operation as last read (None when the
    server gave no body, e.g. only a result URL was followed)."""

    status: str
    operation: OperationStatus | None


def looks_like_host(component: str) -> bool:
    """Docker's rule for the first path component of an image name."""
    return "." in component or ":" in component or component == "localhost"


def _find_registry(
    registries: list[Registry], login_server: str, name: str | None = None
) -> Registry | None:
    """The one registry whose login server (or name) matches, case-insensitively."""
    matches = [
        r
        for r in registries
        if (r.properties.login_server or "").lower() == login_server.lower()
        or (name is not None and r.name.lower() == name.lower())
    ]
    if len(matches) > 1:
        warn(
            f"more than one registry matches {login_server!r}; give its resource ID with --registry"
        )
    return matches[0] if len(matches) == 1 else None


def build_parameters(
    source: str,
    *,
    registries: Registries,
    source_registry: str | None = None,
    username: str | None = None,
    password: str | None = None,
    images: Sequence[str] = (),
    repositories: Sequence[str] = (),
    force: bool = False,
) -> ImportImageParameters:
    """ImportImageParameters for the flags, as `az acr import` builds them.

    `registries()` lists the service's registries (called only when a name or login server
    must be resolved). Raises click.UsageError for flags that cannot work together and
    CommandFailed when --registry names no registry of the service.
    """
    if username and not password:
        raise click.UsageError(
            "--username needs --password: give the source registry's password or token"
        )
    if not source:
        raise click.UsageError("--source is empty")
    scheme = URL_SCHEME.match(source)
    if scheme:
        raise click.UsageError(
            f"--source {source!r} starts with {scheme.group(0)!r}: a URL scheme is not part of "
            f"an image reference. Write --source {source[scheme.end() :]!r}."
        )
    body_source: ImportSource
    if source_registry:
        if password:
            warn(
                "--username/--password are not sent when --registry names the source "
                "registry (as with az acr import)"
            )
        if is_arm_id(source_registry):
            body_source = unchecked(ImportSource, resource_id=source_registry, source_image=source)
        else:
            found = _find_registry(registries(), source_registry, source_registry)
            if found is None:
                raise CommandFailed(
                    f"The source registry {source_registry!r} is not a registry of this "
                    "service. Give its name, login server or resource ID with --registry, or "
                    "omit --registry and give a fully qualified --source (with --username and "
                    "--password for a private registry).",
                    code="ResourceNotFound",
                )
            login_server = found.properties.login_server or ""
            prefix = f"{login_server}/"
            if login_server and source.lower().startswith(prefix.lower()):
                warn(
                    f'the login server "{login_server}" in --source is ignored: --registry '
                    "already names the source registry"
                )
                source = source[len(prefix) :]
            body_source = unchecked(ImportSource, resource_id=found.id, source_image=source)
    else:
        slash = source.find("/")
        if slash <= 0 or slash == len(source) - 1:
            raise click.UsageError(
                f"--source {source!r} names no source registry. Write it as "
                "<registry-host>/<repository>[:tag|@digest] (e.g. "
                "docker.io/library/hello-world:latest), or name a registry of this service "
                "with --registry."
            )
        host, image = source[:slash], source[slash + 1 :]
        if password:
            if not looks_like_host(host) and _find_registry(registries(), host) is None:
                raise click.UsageError(_not_a_host(host))
            credentials = unchecked(
                ImportSourceCredentials, username=username or None, password=password
            )
            body_source = unchecked(
                ImportSource, registry_uri=host, credentials=credentials, source_image=image
            )
        else:
            found = _find_registry(registries(), host)
            if found is not None:
                body_source = unchecked(ImportSource, resource_id=found.id, source_image=image)
            elif looks_like_host(host):
                body_source = unchecked(ImportSource, registry_uri=host, source_image=image)
            else:
                raise click.UsageError(_not_a_host(host))
    target_tags = list(images) or None
    if not images and not repositories:
        image = body_source.source_image
        at = image.find("@")
        target_tags = [image[:at] if at > 0 else image]
    return unchecked(
        ImportImageParameters,
        source=body_source,
        target_tags=target_tags,
        untagged_target_repositories=list(repositories) or None,
        mode="Force" if force else "NoForce",
    )


def _not_a_host(host: str) -> str:
    return (
        f"the source registry {host!r} is not a fully qualified domain name (nor a login "
        "server of this service). Write --source as <registry-host>/<repository>[:tag], e.g. "
        f"docker.io/{host}/…, or name a registry of this service with --registry."
    )


def poll_delay(retry_after: float | None) -> float:
    """Poll about every MIN_POLL_SECONDS; a longer Retry-After is honoured up to MAX."""
    return min(max(MIN_POLL_SECONDS, retry_after or 0.0), MAX_POLL_SECONDS)


def operation_id_of(operation: OperationStatus | None, *urls: str | None) -> str:
    if operation is not None and operation.name:
        return operation.name
    for url in urls:
        if url:
            return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return ""


def status_url_of(operation: OperationStatus | None) -> str | None:
    """The status URL an accepted import's body names: its `id`, with the api-version (the
    answer, as ACR's, sends no Azure-AsyncOperation header)."""
    if operation is None or "/operationStatuses/" not in operation.id:
        return None
    return f"{operation.id}?{urlencode({'api-version': API_VERSION})}"


def wait(
    api: ManagementApi,
    accepted: Response,
    operation: OperationStatus | None,
    progress: ImportProgress,
) -> Outcome:
    """Follow the operation until it ends; return where it ended. An operation with a status
    (an Azure-AsyncOperation URL, or an id naming one) is followed by long poll; a server
    without the follow endpoint, or an answer with only a result URL, is polled."""
    status_url = accepted.header("Azure-AsyncOperation") or status_url_of(operation)
    result_url = accepted.header("Location")
    if not status_url and not result_url:
        raise TransportError("the server accepted the import but gave no operation URL to follow")
    progress.update(operation)
    operation_id = operation_id_of(operation, status_url)
    if status_url and operation_id:
        followed = follow(api, operation_id, progress)
        if followed is not None:
            return followed
    return poll(api, accepted, status_url, result_url, operation, progress)


def _transient(exc: TransportError | ApiError) -> bool:
    return isinstance(exc, TransportError) or exc.status >= 500 or exc.status == 429


def follow(api: ManagementApi, operation_id: str, progress: ImportProgress) -> Outcome | None:
    """Long-poll the operation until it ends; None when the server has no follow endpoint
    (its first answer is a 404), so the caller polls instead.

    Each request names the version already seen (`If-None-Match`) and waits up to
    FOLLOW_WAIT_SECONDS for a newer one. An answer that brings nothing new before its wait
    is over (a server shutting down, one that ignores the wait) is followed by a poll
    delay, never by an immediate request: this loop cannot spin."""
    version: str | None = None
    first, failures = True, 0
    while True:
        began = clock()
        try:
            response = api.follow_operation(operation_id, version, FOLLOW_WAIT_SECONDS)
        except (TransportError, ApiError) as exc:
            if first and isinstance(exc, ApiError) and exc.status == 404:
                return None
            failures += 1
            if not _transient(exc) or failures > POLL_RETRIES:
                raise
            sleep(MAX_POLL_SECONDS)
            continue
        first, failures = False, 0
        answered = response.header("ETag")
        # Without an ETag there is nothing to wait on: each answer is then a plain poll.
        fresh = response.status != 304 and answered is not None and answered != version
        if response.status != 304:
            url = api.follow_operation_url(operation_id)
            operation = parse_answer(response, OperationStatus, request_line("GET", url))
            progress.update(operation)
            if operation.status.lower() in TERMINAL:
                return Outcome(operation.status, operation)
            version = answered
        if not fresh and clock() - began < FOLLOW_WAIT_SECONDS / 2:
            sleep(poll_delay(parse_retry_after(response.header("Retry-After"))))


def poll(
    api: ManagementApi,
    accepted: Response,
    status_url: str | None,
    result_url: str | None,
    operation: OperationStatus | None,
    progress: ImportProgress,
) -> Outcome:
    """Poll the status URL (else the result URL) until the operation ends."""
    delay = poll_delay(parse_retry_after(accepted.header("Retry-After")))
    failures = 0
    while True:
        sleep(delay)
        try:
            if status_url:
                response = api.get_operation_url(status_url)
                operation = parse_answer(response, OperationStatus, request_line("GET", status_url))
                progress.update(operation)
                if operation.status.lower() in TERMINAL:
                    return Outcome(operation.status, operation)
            else:
                assert result_url is not None
                response = api.get_operation_url(result_url)
                if response.status != 202:
                    return Outcome("Succeeded", operation)
        except (TransportError, ApiError) as exc:
            failures += 1
            if not _transient(exc) or not status_url or failures > POLL_RETRIES:
                raise
            delay = MAX_POLL_SECONDS
            continue
        failures = 0
        delay = poll_delay(parse_retry_after(response.header("Retry-After")))


def failure_details(operation: OperationStatus | None) -> list[str]:
    failed = operation.properties.failure if operation is not None else None
    if not isinstance(failed, ImportFailure):
        return []
    lines = []
    if failed.step:
        lines.append(f"Step: {failed.step}")
    if failed.object:
        lines.append(f"Object: {failed.object}")
    if failed.upstream_status is not None:
        lines.append(f"Upstream status: {failed.upstream_status}")
    return lines


def _seconds(operation: OperationStatus | None) -> float | None:
    if operation is None or not isinstance(operation.end_time, str):
        return None
    try:
        start = datetime.fromisoformat(operation.start_time.replace("Z", "+00:00"))
        end = datetime.fromisoformat(operation.end_time.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (end - start).total_seconds())


def _targets(operation: OperationStatus | None) -> list[str]:
    if operation is None:
        return []
    properties = operation.properties
    untagged = properties.untagged_target_repositories
    return [*properties.target_tags, *(f"{r} (untagged)" for r in untagged)]


def _end_time(operation: OperationStatus) -> str | None:
    return operation.end_time if isinstance(operation.end_time, str) else None


def _error(operation: OperationStatus | None) -> OperationError | None:
    error = operation.error if operation is not None else None
    return error if isinstance(error, OperationError) else None


def _progress_text(operation: OperationStatus) -> str:
    c = Counters.of(operation)
    return (
        f"{human_bytes(c.bytes_done)}/{human_bytes(c.bytes_total)}, blobs {c.blobs_done}/"
        f"{c.blobs_total}, manifests {c.manifests_done}/{c.manifests_total}"
    )


OPERATION_COLUMNS = ("OPERATION", "STATUS", "SOURCE", "TARGETS", "PROGRESS", "STARTED", "ENDED")


def operation_row(operation: OperationStatus) -> Sequence[Any]:
    return (
        operation.name,
        operation.status,
        source_text(operation),
        _targets(operation),
        _progress_text(operation),
        short_time(operation.start_time),
        short_time(_end_time(operation)),
    )


def follow_up(registry: str, operation_id: str) -> str:
    return f"transship import show --name {registry} {operation_id}"


class ImportGroup(click.Group):
    """`transship import` runs an import; `transship import list|show|cancel` manage them."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "--name REGISTRY --source SOURCE [OPTIONS]")
        formatter.write_usage(
            ctx.command_path, "list|show|cancel --name REGISTRY …", prefix="   or: "
        )


@click.group(
    name="import",
    cls=ImportGroup,
    invoke_without_command=True,
    context_settings=CONTEXT,
    subcommand_metavar="list|show|cancel …",
)
@click.option("--name", "-n", "registry", metavar="REGISTRY", help="Registry to import into.")
@click.option(
    "--source",
    metavar="SOURCE",
    help="The image to import: <registry-host>/<repository>[:tag|@digest] "
    "(docker.io, mcr.microsoft.com, any registry, or a login server of this service); "
    "with --registry, just <repository>[:tag|@digest].",
)
@click.option(
    "--image",
    "-t",
    "images",
    multiple=True,
    metavar="REPO[:TAG]",
    help="Target repository and tag; repeat for several tags. Default: the source's "
    "repository and tag (a source by digest alone is imported untagged).",
)
@click.option(
    "--repository",
    "repositories",
    multiple=True,
    metavar="REPO",
    help="Import the manifest(s) into this repository without a tag; repeatable.",
)
@click.option(
    "--registry",
    "-r",
    "source_registry",
    metavar="ID|NAME|LOGIN_SERVER",
    help="The source registry when it is a registry of this service: its resource ID, name "
    "or login server. --source then names only the repository and tag.",
)
@click.option("--username", "-u", metavar="USER", help="User name for the source registry.")
@click.option(
    "--password",
    "-p",
    metavar="PASSWORD",
    help="Password or token for the source registry (user name optional).",
)
@click.option("--force", is_flag=True, help="Overwrite target tags that already exist.")
@click.option(
    "--no-wait",
    is_flag=True,
    help="Start the import and print its operation without waiting for it to finish.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan the import without importing anything: the manifests and platforms it would "
    "copy, the blobs already present (zero-copy) and the bytes to fetch, the upstream "
    "requests and rate-limited pulls it would spend, and what it would do to each target "
    "tag (create, move, unchanged, or refused under NoForce). A Transship extension.",
)
@click.option(
    "--from-file",
    "from_file",
    metavar="FILE",
    help="Import every image FILE lists, in one batch (a Transship extension; - reads "
    "stdin): one source a line, as --source takes it, optionally followed by its target "
    "tags (as --image); # starts a comment. --registry, --username, --password, --force, "
    "--platform…, --include-referrers… apply to every line. See the example below.",
)
@click.option(
    "--target-prefix",
    metavar="PREFIX",
    help="With --from-file: put PREFIX before every target repository (e.g. mirror/).",
)
@platform_options
@referrer_options
@resource_group_option
@output_option
@click.pass_context
@service_command
def import_(
    ctx: click.Context,
    registry: str | None,
    source: str | None,
    images: tuple[str, ...],
    repositories: tuple[str, ...],
    source_registry: str | None,
    username: str | None,
    password: str | None,
    force: bool,
    no_wait: bool,
    dry_run: bool,
    from_file: str | None,
    target_prefix: str | None,
    platforms: tuple[str, ...],
    platform_mode: str | None,
    include_attestations: bool | None,
    include_referrers: bool | None,
    referrer_artifact_types: tuple[str, ...],
    resource_group: str | None,
    output: str,
) -> None:
    """Import an image into a registry, server side (az acr import).

    The server pulls the image itself — every platform of a multi-arch index, or only
    those given with --platform — by tag or by digest; nothing passes through this
    machine. The command waits for the import and shows its progress (bytes, blobs and
    manifests) on stderr; Ctrl-C stops waiting but the import carries on (follow it with
    `transship import show`).

    \b
    Examples:
      Import a multi-arch image from Docker Hub:
        transship import --name myregistry --source docker.io/library/hello-world:latest \\
          --image hello-world:latest
      Import from Docker Hub with your Docker Hub credentials:
        transship import --name myregistry --source docker.io/tensorflow/tensorflow:latest-gpu \\
          --image tensorflow:latest-gpu --username <user> --password <token>
      Import from Microsoft Container Registry:
        transship import --name myregistry --source mcr.microsoft.com/windows/servercore:ltsc2019 \\
          --image servercore:ltsc2019
      Import from another registry of this service, by its login server:
        transship import --name myregistry \\
          --source mysourceregistry.<suffix>/aci-helloworld:latest --image aci-helloworld:latest
      Import from another registry of this service, by its resource ID:
        transship import --name myregistry --source aci-helloworld:latest \\
          --image aci-helloworld:latest --registry \\
          /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerRegistry/registries/mysourceregistry
      Import by manifest digest, untagged (find it with repository show-manifests):
        transship import --name myregistry \\
          --source mysourceregistry.<suffix>/aci-helloworld@sha256:<digest>
      Import by manifest digest and tag it:
        transship import --name myregistry \\
          --source mysourceregistry.<suffix>/aci-helloworld@sha256:<digest> \\
          --image aci-helloworld:pinned
      Import from a private registry with credentials:
        transship import --name myregistry --source sourceregistry.example.com/sourcerepo:tag \\
          --image targetimage:tag --username <user> --password <password>
      Import without tagging, overwriting nothing, and return at once:
        transship import --name myregistry --source docker.io/library/alpine:3.20 \\
          --repository alpine --no-wait
      See what an import would copy, fetch and spend, without importing (as JSON with -o json):
        transship import --name myregistry --source docker.io/library/alpine:3.20 \\
          --image alpine:3.20 --force --dry-run
      Import only two platforms of a multi-arch image, keeping the index digest (sparse):
        transship import --name myregistry --source docker.io/library/alpine:3.20 \\
          --platform linux/amd64 --platform linux/arm64/v8
      Import one platform as a new index listing only it, with its attestations:
        transship import --name myregistry --source docker.io/library/alpine:3.20 \\
          --platform linux/amd64 --platform-mode rewritten --include-attestations
      Import every image of a file in one batch (re-run it with --force: what did not
      change upstream costs one HEAD per image and is reported unchanged):
        transship import --name myregistry --from-file images.txt --force
      where images.txt lists one source a line, optionally with target tags:
        # base images
        docker.io/library/alpine:3.20
        docker.io/library/busybox:1.36   busybox:1.36 busybox:stable
        ghcr.io/example/app@sha256:<digest>   app:pinned
      Import an image with its signatures, SBOMs and attestations (cosign and OCI referrers):
        transship import --name myregistry --source ghcr.io/acme/app:1.2 --include-referrers
      Import an image with only its SPDX SBOMs and cosign signatures:
        transship import --name myregistry --source ghcr.io/acme/app:1.2 --include-referrers \\
          --referrer-artifact-type application/spdx+json \\
          --referrer-artifact-type application/vnd.dev.cosign.simplesigning.v1+json

    Subcommands list, show and cancel manage import operations.
    """
    if ctx.invoked_subcommand is not None:
        return
    if from_file is not None:
        _import_batch(
            ctx,
            registry=registry,
            from_file=from_file,
            target_prefix=target_prefix,
            conflicting={
                "--source": bool(source),
                "--image": bool(images),
                "--repository": bool(repositories),
                "--dry-run": dry_run,
            },
            source_registry=source_registry,
            username=username,
            password=password,
            force=force,
            no_wait=no_wait,
            platforms=platforms,
            platform_mode=platform_mode,
            include_attestations=include_attestations,
            include_referrers=include_referrers,
            referrer_artifact_types=referrer_artifact_types,
            resource_group=resource_group,
            output=output,
        )
        return
    if target_prefix:
        raise click.UsageError("--target-prefix needs --from-file")
    if not registry or not source:
        missing = " and ".join(
            flag for flag, value in (("--name", registry), ("--source", source)) if not value
        )
        raise click.UsageError(f"missing {missing} (see transship import --help)")
    if dry_run and no_wait:
        raise click.UsageError("--dry-run starts no import: --no-wait does not apply")
    management = api()
    parameters = build_parameters(
        source,
        registries=management.list_registries,
        source_registry=source_registry,
        username=username,
        password=password,
        images=images,
        repositories=repositories,
        force=force,
    )
    parameters = with_platforms(parameters, platforms, platform_mode, include_attestations)
    parameters = with_referrers(parameters, include_referrers, referrer_artifact_types)
    if dry_run:
        plan_import(management, registry, parameters, resource_group, output)
        return
    accepted = management.import_image(registry, parameters, resource_group)
    request = f"POST {management.registry_id(registry, resource_group)}/importImage"
    operation = parse_answer(accepted, OperationStatus, request) if accepted.body else None
    status_url = accepted.header("Azure-AsyncOperation") or status_url_of(operation)
    result_url = accepted.header("Location")
    operation_id = operation_id_of(operation, status_url, result_url)

    if accepted.status == 200 and not status_url and not result_url:
        outcome = Outcome(operation.status if operation else "Succeeded", operation)
    elif no_wait:
        if output == JSON:
            started = operation.model_dump(mode="json", by_alias=True) if operation else {}
            emit_json({**started, "azureAsyncOperation": status_url, "location": result_url})
        else:
            shown = operation.status if operation else "InProgress"
            click.echo(f"Import started: operation {operation_id} ({shown})")
            if status_url:
                click.echo(f"Status: {management.http.absolute(status_url)}")
            click.echo(f"Follow it with: {follow_up(registry, operation_id)}")
        return
    else:
        try:
            with ImportProgress(stderr_console(), source) as progress:
                outcome = wait(management, accepted, operation, progress)
        except KeyboardInterrupt:
            info(
                f"\nStopped waiting; the import {operation_id} continues on the server.\n"
                f"Follow it with: {follow_up(registry, operation_id)}"
            )
            ctx.exit(EXIT_INTERRUPTED)
    report(outcome, registry, operation_id, output)
    tags = outcome.operation.properties.target_tags if outcome.operation else []
    if output != JSON and tags:
        show_pull_hint(
            management, registry_login_server(management, registry, resource_group), tags
        )


def _import_batch(
    ctx: click.Context,
    *,
    registry: str | None,
    from_file: str,
    target_prefix: str | None,
    conflicting: dict[str, bool],
    source_registry: str | None,
    username: str | None,
    password: str | None,
    force: bool,
    no_wait: bool,
    platforms: tuple[str, ...],
    platform_mode: str | None,
    include_attestations: bool | None,
    include_referrers: bool | None,
    referrer_artifact_types: tuple[str, ...],
    resource_group: str | None,
    output: str,
) -> None:
    """`transship import --from-file`: see `transship.cli.import_batch`."""
    if not registry:
        raise click.UsageError("missing --name (see transship import --help)")
    for flag, given in conflicting.items():
        if given:
            raise click.UsageError(f"--from-file lists the images: {flag} does not apply")
    name, lines = read_batch_file(from_file)
    management = api()
    registries = registries_once(management.list_registries)

    def build(source: str, *, images: tuple[str, ...]) -> ImportImageParameters:
        parameters = build_parameters(
            source,
            registries=registries,
            source_registry=source_registry,
            username=username,
            password=password,
            images=images,
            force=force,
        )
        return with_referrers(parameters, include_referrers, referrer_artifact_types)

    body = build_batch(
        name,
        lines,
        build,
        target_prefix=target_prefix,
        platforms=platforms,
        platform_mode=platform_mode,
        include_attestations=include_attestations,
    )
    run_batch(
        management,
        ctx,
        registry=registry,
        resource_group=resource_group,
        name=name,
        lines=lines,
        body=body,
        no_wait=no_wait,
        output=output,
        sleep=sleep,
    )


def report(outcome: Outcome, registry: str, operation_id: str, output: str) -> None:
    """Print the outcome; raise CommandFailed (exit 1) unless it succeeded."""
    operation = outcome.operation
    status = outcome.status.lower()
    if output == JSON:
        if operation is None:
            emit_json({"status": outcome.status})
        else:
            emit_json(operation.model_copy(update={"status": outcome.status}))
    if status == "succeeded":
        if output != JSON:
            c = Counters.of(operation)
            targets = _targets(operation)
            source = operation.properties.source if operation else "the image"
            click.echo(f"Imported {source} into {registry}: {', '.join(targets)}")
            seconds = _seconds(operation)
            took = f" in {seconds:.1f} s" if seconds is not None else ""
            click.echo(
                f"{plural(c.manifests_total, 'manifest')}, {plural(c.blobs_total, 'blob')}, "
                f"{human_bytes(c.bytes_total)}{took} (operation {operation_id})"
            )
            copied = referrers_text(operation)
            if copied:
                click.echo(copied)
        return
    error = _error(operation)
    details = [
        *failure_details(operation),
        f"Operation: {operation_id} ({follow_up(registry, operation_id)})",
    ]
    if status == "canceled":
        raise CommandFailed(
            (error.message if error else None) or "The import was canceled.",
            code=(error.code if error else None) or "OperationCanceled",
            details=details,
        )
    raise CommandFailed(
        (error.message if error else None) or f"The import ended with status {outcome.status!r}.",
        code=(error.code if error else None) or "ImportFailed",
        details=details,
    )


def _registry_check(operation: OperationStatus, registry: str, operation_id: str) -> None:
    owner = operation.properties.registry
    if owner and owner.lower() != registry.lower():
        raise CommandFailed(
            f"Operation {operation_id} is an import into registry {owner!r}, not {registry!r}.",
            code="OperationNotFound",
        )


def _show_operation(operation: OperationStatus, output: str) -> None:
    emit(output, operation, OPERATION_COLUMNS, lambda o: [operation_row(o)])
    waiting = operation.properties.waiting
    if output != JSON and isinstance(waiting, RateLimitWait):
        click.echo(waiting.message[:1].upper() + waiting.message[1:] + ".")
    error = _error(operation)
    if output != JSON and error is not None:
        click.echo(f"Error: ({error.code}) {error.message}")
        for line in failure_details(operation):
            click.echo(line)


@import_.command(name="list", context_settings=CONTEXT)
@name_option
@resource_group_option
@output_option
@service_command
def list_imports(registry: str, resource_group: str | None, output: str) -> None:
    """List a registry's import operations, newest first.

    \b
    Examples:
      transship import list --name myregistry
      transship import list --name myregistry -o json
    """
    operations = api().list_imports(registry, resource_group)
    emit(
        output,
        operations,
        OPERATION_COLUMNS,
        lambda ops: [operation_row(o) for o in ops],
        empty="No imports.",
    )


@import_.command(context_settings=CONTEXT)
@name_option
@click.argument("operation_id", metavar="OPERATION_ID")
@output_option
@service_command
def show(registry: str, operation_id: str, output: str) -> None:
    """Show an import operation: status, progress and, if it failed, why.

    \b
    Examples:
      transship import show --name myregistry 0b9c7c53-8f0e-4a55-9a0c-2a2b3c4d5e6f
    """
    operation = api().get_operation(operation_id)
    _registry_check(operation, registry, operation_id)
    _show_operation(operation, output)


@import_.command(context_settings=CONTEXT)
@name_option
@click.argument("operation_id", metavar="OPERATION_ID")
@output_option
@service_command
def cancel(registry: str, operation_id: str, output: str) -> None:
    """Ask the server to cancel a queued or running import.

    \b
    Examples:
      transship import cancel --name myregistry 0b9c7c53-8f0e-4a55-9a0c-2a2b3c4d5e6f
    """
    management = api()
    _registry_check(management.get_operation(operation_id), registry, operation_id)
    _show_operation(management.cancel_operation(operation_id), output)
