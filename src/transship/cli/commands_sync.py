"""`transship sync rule create|list|show|update|delete|run|runs`: scheduled sync rules
(Transship's own; ACR has no equivalent). See docs/cache-and-sync.md.

`run` queues a run, shows each tag's outcome on stderr as the run reports it, ends with a
table of the tags (or the run as JSON with -o json), and exits non-zero when a tag or a
repository failed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from transship.cli.client import ApiError, ManagementApi, TransportError, unchecked
from transship.cli.common import CONTEXT, api, confirm, read_secret, service_command, yes_option
from transship.cli.output import (
    EXIT_INTERRUPTED,
    JSON,
    CommandFailed,
    emit,
    emit_json,
    info,
    output_option,
    short_time,
    stderr_console,
)
from transship.wire.sync import (
    SyncCredentials,
    SyncRule,
    SyncRuleBody,
    SyncRuleList,
    SyncRun,
    SyncRunList,
    SyncTagFilter,
)

RULE_COLUMNS = ("NAME", "SOURCE", "TARGET", "TAGS", "INTERVAL", "LAST RUN", "STATE")
RUN_COLUMNS = ("RUN", "TRIGGER", "STATE", "STARTED", "ENDED", "COPIED", "UNCHANGED", "FAILED")
TAG_COLUMNS = ("SOURCE", "TAG", "TARGET", "OUTCOME", "DIGEST", "REASON")
POLL_SECONDS = 0.5
POLL_RETRIES = 3
_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
sleep = time.sleep  # replaced in tests


def rules_path(registry: str) -> str:
    return f"/transship/v1/registries/{registry}/syncRules"


def parse_interval(text: str) -> int:
    """Seconds from `3600`, `90s`, `30m`, `6h` or `1d`. Raises click.BadParameter."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 3600, 30m, 6h, 1d)")
    return int(found.group(1)) * _UNITS[found.group(2)]


def looks_like_host(component: str) -> bool:
    """Docker's rule for the first path component of an image name."""
    return "." in component or ":" in component or component == "localhost"


def split_sources(sources: Sequence[str]) -> tuple[str, list[str]]:
    """(host, repositories) of `--source` values (`HOST/REPO`, or a Docker Hub `REPO`),
    which must all name one host. Raises click.UsageError."""
    hosts: list[str] = []
    repositories: list[str] = []
    for source in sources:
        first, _, rest = source.partition("/")
        if rest and looks_like_host(first):
            hosts.append(first)
            repositories.append(rest)
        else:
            hosts.append("docker.io")
            repositories.append(source)
        if ":" in repositories[-1] or "@" in repositories[-1]:
            raise click.UsageError(
                f"--source {source!r}: name a repository, without tag or digest (the rule's "
                "tag filters choose the tags)"
            )
    if len(set(hosts)) > 1:
        raise click.UsageError(
            f"--source values name several registries ({', '.join(sorted(set(hosts)))}): one "
            "rule mirrors one upstream registry"
        )
    return hosts[0], repositories


def _rule_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--source",
            "sources",
            multiple=True,
            metavar="HOST/REPO",
            help="An upstream repository to mirror (repeat for several, on one registry); "
            "a name without host is Docker Hub's.",
        ),
        click.option(
            "--target",
            metavar="REPO",
            help="The target repository (with several sources, a prefix: TARGET/<source>). "
            "Default: the source's name.",
        ),
        click.option("--include", metavar="REGEX", help="Keep tags this expression matches whole."),
        click.option("--exclude", metavar="REGEX", help="Drop tags this expression matches whole."),
        click.option(
            "--semver", metavar="RANGE", help="Keep versions in this range, e.g. '>=1.2 <2'."
        ),
        click.option("--newest", type=int, metavar="N", help="Keep the N highest versions."),
        click.option(
            "--platform",
            "platforms",
            multiple=True,
            metavar="OS/ARCH[/VARIANT]",
            help="Copy only this platform of an index (repeat for several).",
        ),
        click.option(
            "--platform-mode",
            type=click.Choice(["sparse", "rewritten"]),
            help="With --platform: keep the source index (sparse, default) or store a new "
            "index of the selected platforms (rewritten).",
        ),
        click.option(
            "--include-referrers/--no-referrers",
            default=None,
            help="Also copy signatures, SBOMs and other referrers.",
        ),
        click.option(
            "--interval",
            metavar="DURATION",
            help="Run every DURATION (3600, 30m, 6h, 1d); without it the rule runs on demand.",
        ),
        click.option(
            "--mirror-deletions/--keep-deleted",
            default=None,
            help="Untag target tags this rule created once deleted upstream (default: keep).",
        ),
        click.option("--username", "-u", help="Upstream user name."),
        click.option("--password", "-p", help="Upstream password or token."),
        click.option("--password-stdin", is_flag=True, help="Read the password from stdin."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _body(
    *,
    sources: Sequence[str],
    target: str | None,
    include: str | None,
    exclude: str | None,
    semver: str | None,
    newest: int | None,
    platforms: Sequence[str],
    platform_mode: str | None,
    include_referrers: bool | None,
    interval: str | None,
    mirror_deletions: bool | None,
    username: str | None,
    password: str | None,
    password_stdin: bool,
) -> tuple[SyncRuleBody, set[str]]:
    """The body and the wire names of the fields given."""
    fields: dict[str, object] = {}
    if sources:
        fields["source_registry"], fields["source_repositories"] = split_sources(sources)
    if target is not None:
        fields["target_repository"] = target
    filters = {
        k: v
        for k, v in (
            ("include", include),
            ("exclude", exclude),
            ("semver", semver),
            ("newest", newest),
        )
        if v is not None
    }
    if filters:
        fields["tag_filter"] = unchecked(SyncTagFilter, **filters)
    if platforms:
        fields["platforms"] = list(platforms)
    if platform_mode is not None:
        fields["platform_mode"] = platform_mode
    if include_referrers is not None:
        fields["include_referrers"] = include_referrers
    if interval is not None:
        fields["interval_seconds"] = parse_interval(interval)
    if mirror_deletions is not None:
        fields["mirror_deletions"] = mirror_deletions
    if username is not None or password is not None or password_stdin:
        secret = read_secret(password, password_stdin, "Upstream password", twice=False)
        fields["credentials"] = unchecked(SyncCredentials, username=username, password=secret)
    return unchecked(SyncRuleBody, **fields), set(fields)


def _filter_text(rule: SyncRule) -> str:
    f = rule.properties.tag_filter
    parts = [
        f"include {f.include}" if f.include else "",
        f"exclude {f.exclude}" if f.exclude else "",
        f"semver {f.semver}" if f.semver else "",
        f"newest {f.newest}" if f.newest else "",
    ]
    return "; ".join(p for p in parts if p) or "all"


def _interval_text(seconds: int | None) -> str:
    if seconds is None:
        return "on demand"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rule_rows(rules: Sequence[SyncRule]) -> list[Sequence[Any]]:
    rows: list[Sequence[Any]] = []
    for rule in rules:
        p = rule.properties
        last = p.last_run
        rows.append(
            (
                rule.name,
                [f"{p.source_registry}/{r}" for r in p.source_repositories],
                p.target_repository or "(same names)",
                _filter_text(rule),
                _interval_text(p.interval_seconds),
                "" if last is None else short_time(last.created_time),
                "" if last is None else last.state,
            )
        )
    return rows


def run_rows(runs: Sequence[SyncRun]) -> list[Sequence[Any]]:
    return [
        (
            r.name,
            r.trigger,
            r.state,
            "" if r.start_time is None else short_time(r.start_time),
            "" if r.end_time is None else short_time(r.end_time),
            r.counts.copied,
            r.counts.unchanged,
            r.counts.failed,
        )
        for r in runs
    ]


def tag_rows(run: SyncRun) -> list[Sequence[Any]]:
    tags = run.tags if isinstance(run.tags, list) else []
    return [
        (
            t.source_repository,
            t.tag or "(listing)",
            t.target_repository,
            t.outcome,
            (t.digest or "")[:19],
            t.reason or "",
        )
        for t in tags
    ]


@click.group(context_settings=CONTEXT)
def sync() -> None:
    """Scheduled sync: mirror upstream repositories into a registry (Transship's own)."""


@sync.group(context_settings=CONTEXT)
def rule() -> None:
    """Sync rules: which upstream tags to mirror where, and how often.

    A run lists the upstream tags, keeps those the filters select, HEADs each, and copies
    only the tags whose digest changed since the rule last copied them (as one import
    batch); a run without changes costs one HEAD per tag and no pull.
    """


registry_required = click.option(
    "--registry", "-r", required=True, metavar="REGISTRY", help="Name of the registry."
)


@rule.command(context_settings=CONTEXT)
@registry_required
@click.argument("name")
@_rule_options
@output_option
@service_command
def create(registry: str, name: str, output: str, **options: Any) -> None:
    """Create (or replace) the sync rule NAME.

    \b
    Examples:
      transship sync rule create -r myregistry alpine --source docker.io/library/alpine \\
          --target mirror/alpine --semver '>=3.18' --interval 6h
      transship sync rule create -r myregistry tools --source ghcr.io/acme/cli \\
          --source ghcr.io/acme/agent --target acme --newest 5 --platform linux/amd64 \\
          --username robot --password-stdin --mirror-deletions
    """
    if not options["sources"]:
        raise click.UsageError("give at least one --source HOST/REPO")
    body, _ = _body(**options)
    answer = api().put(f"{rules_path(registry)}/{name}", body, SyncRule)
    emit(output, answer, RULE_COLUMNS, lambda r: rule_rows([r]))


@rule.command(name="list", context_settings=CONTEXT)
@registry_required
@output_option
@service_command
def list_(registry: str, output: str) -> None:
    """List the registry's sync rules with their last run.

    \b
    Examples:
      transship sync rule list -r myregistry
      transship sync rule list -r myregistry -o json
    """
    rules = api().get(rules_path(registry), SyncRuleList).value
    emit(output, rules, RULE_COLUMNS, rule_rows, empty="No sync rules.")


@rule.command(context_settings=CONTEXT)
@registry_required
@click.argument("name")
@output_option
@service_command
def show(registry: str, name: str, output: str) -> None:
    """Show a sync rule: its definition, next scheduled run and last run.

    \b
    Examples:
      transship sync rule show -r myregistry alpine -o json
    """
    answer = api().get(f"{rules_path(registry)}/{name}", SyncRule)
    emit(output, answer, RULE_COLUMNS, lambda r: rule_rows([r]))


@rule.command(context_settings=CONTEXT)
@registry_required
@click.argument("name")
@_rule_options
@click.option("--remove-credentials", is_flag=True, help="Run anonymously from now on.")
@output_option
@service_command
def update(registry: str, name: str, output: str, remove_credentials: bool, **options: Any) -> None:
    """Change some fields of a sync rule (only the options given change).

    \b
    Examples:
      transship sync rule update -r myregistry alpine --newest 3
      transship sync rule update -r myregistry alpine --interval 1d --keep-deleted
      transship sync rule update -r myregistry tools --remove-credentials
    """
    management = api()
    path = f"{rules_path(registry)}/{name}"
    body, given = _body(**options)
    if remove_credentials:
        if "credentials" in given:
            raise click.UsageError("use only one of --remove-credentials and the credentials")
        answer = _without_credentials(management, path, body)
    else:
        if not given:
            raise click.UsageError("nothing to change: give an option to update")
        answer = management.answer("PATCH", path, SyncRule, body=body)
    emit(output, answer, RULE_COLUMNS, lambda r: rule_rows([r]))


def _without_credentials(management: ManagementApi, path: str, changes: SyncRuleBody) -> SyncRule:
    """The rule replaced (PUT) by itself, with `changes` and without credentials."""
    current = management.get(path, SyncRule).properties
    f = current.tag_filter
    fields: dict[str, object] = {
        "source_registry": current.source_registry,
        "source_repositories": current.source_repositories,
        "target_repository": current.target_repository,
        "tag_filter": unchecked(
            SyncTagFilter, include=f.include, exclude=f.exclude, semver=f.semver, newest=f.newest
        ),
        "platforms": current.platforms,
        "platform_mode": current.platform_mode,
        "include_attestations": current.include_attestations if current.platforms else None,
        "include_referrers": current.include_referrers or None,
        "referrer_artifact_types": current.referrer_artifact_types,
        "interval_seconds": current.interval_seconds,
        "mirror_deletions": current.mirror_deletions,
    }
    fields.update({k: getattr(changes, k) for k in changes.model_fields_set})
    return management.put(path, unchecked(SyncRuleBody, **fields), SyncRule)


@rule.command(context_settings=CONTEXT)
@registry_required
@click.argument("name")
@yes_option
@service_command
def delete(registry: str, name: str, yes: bool) -> None:
    """Delete a sync rule and its run history (the tags it copied stay).

    \b
    Examples:
      transship sync rule delete -r myregistry alpine --yes
    """
    confirm(f"Delete the sync rule {name!r} of {registry!r}?", yes)
    if api().delete(f"{rules_path(registry)}/{name}"):
        click.echo(f"Deleted the sync rule {name}.")
    else:
        info(f"There was no sync rule {name}.")


@rule.command(context_settings=CONTEXT)
@registry_required
@click.argument("name")
@output_option
@service_command
def runs(registry: str, name: str, output: str) -> None:
    """List the kept runs of a sync rule, newest first.

    \b
    Examples:
      transship sync rule runs -r myregistry alpine
    """
    found = api().get(f"{rules_path(registry)}/{name}/runs", SyncRunList).value
    emit(output, found, RUN_COLUMNS, run_rows, empty="No runs yet.")


@rule.command(context_settings=CONTEXT)
@registry_required
@click.argument("name")
@click.option("--no-wait", is_flag=True, help="Queue the run and return at once.")
@output_option
@click.pass_context
@service_command
def run(ctx: click.Context, registry: str, name: str, no_wait: bool, output: str) -> None:
    """Run a sync rule now and follow it; exits non-zero when a tag failed.

    \b
    Examples:
      transship sync rule run -r myregistry alpine
      transship sync rule run -r myregistry alpine -o json
      transship sync rule run -r myregistry alpine --no-wait
    """
    management = api()
    path = f"{rules_path(registry)}/{name}"
    started = management.post(f"{path}/run", SyncRun)
    run_path = f"{path}/runs/{started.name}"
    if no_wait:
        if output == JSON:
            emit_json(started)
        else:
            click.echo(f"Run queued: {started.name}")
            click.echo(f"Status: {management.http.absolute(run_path)}")
        return
    try:
        final = follow_run(management, run_path, started, sleep)
    except KeyboardInterrupt:
        info(f"\nStopped waiting; the run {started.name} continues on the server.")
        ctx.exit(EXIT_INTERRUPTED)
    emit(output, final, TAG_COLUMNS, tag_rows, empty="No tags selected.")
    counts = final.counts
    summary = (
        f"{counts.copied} copied, {counts.unchanged} unchanged, {counts.deleted} deleted, "
        f"{counts.failed} failed (run {final.name})"
    )
    if final.state == "succeeded":
        if output != JSON:
            click.echo(f"Synced {name}: {summary}")
        return
    raise CommandFailed(
        final.error.message if final.error is not None else f"The run ended {final.state}.",
        code=final.error.code if final.error is not None else "SyncRunFailed",
        details=[summary],
    )


def follow_run(
    management: ManagementApi, path: str, run: SyncRun, pause: Callable[[float], None]
) -> SyncRun:
    """Poll the run until it ends, printing each tag's outcome on stderr as it changes;
    returns the last answer. Transient failures (connection, 5xx, 429) are retried a few
    times."""
    console = stderr_console()
    seen: dict[tuple[str, str | None], str] = {}
    failures = 0
    while True:
        for tag in run.tags if isinstance(run.tags, list) else []:
            key = (tag.source_repository, tag.tag)
            if seen.get(key) == tag.outcome:
                continue
            seen[key] = tag.outcome
            shown = f"{tag.outcome}: {tag.reason}" if tag.reason else tag.outcome
            console.print(
                f"{tag.source_repository}:{tag.tag or '*'} → {tag.target_repository}: {shown}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
        if run.state not in ("queued", "running"):
            return run
        pause(POLL_SECONDS)
        try:
            run = management.get(path, SyncRun)
        except (TransportError, ApiError) as exc:
            failures += 1
            transient = isinstance(exc, TransportError) or exc.status >= 500 or exc.status == 429
            if not transient or failures > POLL_RETRIES:
                raise
            continue
        failures = 0
