"""Scheduled sync (a Transship extension; ACR has no equivalent): mirror upstream
repositories into a registry, on a schedule or on demand, copying only what changed.

A **run** of a rule:

1. lists each source repository's tags upstream (every `Link` page), through the import
   source path (`transship.imports.sources.Sources.open`), so authentication, the egress
   policy and the rate-limit budget apply as to any import, and a request log counts what
   the run sent (its `requests`);
2. keeps the tags the rule's filter selects (`transship.cache.tag_filters`);
3. HEADs each kept tag's manifest (its `Docker-Content-Digest`): no GET, so no pull is spent
   on registries that ration pulls;
4. compares, per tag, the upstream digest with the one the rule recorded when it last
   copied the tag, and the target tag with the digest that copy stored (`decide`). Comparing
   upstream with upstream and local with local is what keeps an upstream that serves an
   equivalent but different encoding (or a platform subset stored rewritten) from being
   copied again on every run;
5. copies what changed as one import batch (`transship.imports.batch`): the items are
   ordinary import operations, visible, followed and canceled as any, within the import
   limits; a tag the rule did not create, or that was moved outside the rule since, is not
   overwritten (the import runs without Force and reports TagAlreadyExists);
6. with `mirrorDeletions`, untags the target tags the rule created whose upstream tag is
   gone (only when the listing of that repository succeeded, and only when the target tag
   still names what the rule stored);
7. reports each tag (`unchanged`, `copied`, `deleted`, `failed` with the reason) and keeps
   the newest `history` runs of each rule.

A rule runs in one process at a time: its row's lease is claimed with one conditional
UPDATE (`SyncRuleQueries.claim_rule`) and renewed while the run goes on; a run left
`running` by a process that stopped is marked failed by the next claimer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from transship.cache.sync_rules import SyncRuleSpec
from transship.errors import DomainError
from transship.identity.secrets import SecretBox
from transship.imports.batch import BatchItem, BatchService, BatchView, batch_version
from transship.imports.errors import ImportFailure, Step
from transship.imports.model import ImportRequest, SourceSpec, TargetTag
from transship.imports.ports import Credentials
from transship.imports.request_log import RequestLog
from transship.imports.sources import Sources
from transship.metadata.changes import Topic
from transship.metadata.queries import MetadataStore, Transaction
from transship.metadata.records import RegistryRecord
from transship.metadata.scope import utcnow
from transship.metadata.sync_rules import (
    COMPLETED_WITH_FAILURES,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    SyncedTag,
    SyncRuleQueries,
    SyncRuleRecord,
    SyncRunRecord,
)
from transship.oci.digest import Digest
from transship.registry.manifests import ManifestService
from transship.registry.registries import RegistryService

log = logging.getLogger(__name__)

# Per-tag outcomes.
UNCHANGED = "unchanged"
COPYING = "copying"  # in the run's batch, not ended yet
COPIED = "copied"
DELETED = "deleted"
FAILED_TAG = "failed"
# The pause between two looks at a batch that answered without a change.
_FOLLOW_PAUSE_SECONDS = 0.5
# Tags a filter goes through on the loop; more go to a thread.
_INLINE_FILTER_TAGS = 500
# How a run started.
MANUAL = "manual"
SCHEDULED = "scheduled"


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """`poll_seconds`: how often the loop looks for due rules when nothing wakes it (a run
    asked for in this process starts at once); `max_running`: rules run at once in this
    process; `history`: runs kept per rule; `lease`: how long a claimed rule stays this
    process's without a renewal; `head_concurrency`: HEAD requests at once per run;
    `tag_page_size`: the `n` asked for per page of a tag list (None: the upstream's
    default); `min_interval_seconds`: the shortest schedule a rule may ask for."""

    poll_seconds: float = 5.0
    max_running: int = 2
    history: int = 20
    lease: timedelta = timedelta(seconds=60)
    head_concurrency: int = 8
    tag_page_size: int | None = 1000
    min_interval_seconds: int = 60


@runtime_checkable
class TagSource(Protocol):
    """What a run reads of an upstream repository: its tags and, per tag, the digest a
    HEAD names (None when the HEAD does not say)."""

    async def list_tags(self, page_size: int | None = None) -> tuple[str, ...]: ...

    async def head_manifest(self, reference: str) -> Digest | None: ...


@dataclass(frozen=True, slots=True)
class TagReport:
    """One tag of a run: what happened to it. `digest`: what the target tag names after the
    run (None when nothing); `upstream_digest`: what the upstream's HEAD named; `operation`:
    the import operation (job id) that copied it."""

    source_repository: str
    tag: str | None  # None: the repository's listing failed
    target_repository: str
    outcome: str
    upstream_digest: Digest | None = None
    digest: Digest | None = None
    reason: str | None = None
    operation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sourceRepository": self.source_repository,
            "tag": self.tag,
            "targetRepository": self.target_repository,
            "outcome": self.outcome,
            "upstreamDigest": None if self.upstream_digest is None else str(self.upstream_digest),
            "digest": None if self.digest is None else str(self.digest),
            "reason": self.reason,
            "operation": self.operation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TagReport:
        upstream, digest = data.get("upstreamDigest"), data.get("digest")
        return cls(
            data["sourceRepository"],
            data.get("tag"),
            data["targetRepository"],
            data["outcome"],
            None if upstream is None else Digest.parse(upstream),
            None if digest is None else Digest.parse(digest),
            data.get("reason"),
            data.get("operation"),
        )


def report_json(entries: Sequence[TagReport]) -> str:
    return json.dumps([entry.to_dict() for entry in entries])


def parse_report(text: str) -> list[TagReport]:
    return [TagReport.from_dict(entry) for entry in json.loads(text or "[]")]


# -- change detection (pure) -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TagCheck:
    """What a run knows of one selected tag: the upstream's HEAD digest (None: it did not
    say), what the rule recorded when it last copied the tag (None: never), and what the
    target tag names now (None: nothing)."""

    source_repository: str
    tag: str
    target_repository: str
    upstream: Digest | None
    recorded: SyncedTag | None
    local: Digest | None


@dataclass(frozen=True, slots=True)
class Decision:
    """`copy` False: nothing to copy (`adopt`: record the tag as the rule's, the target
    already naming what the upstream names). `copy` True: import it, with Force when the
    rule still owns the target tag (it names what the rule stored)."""

    copy: bool
    force: bool = False
    adopt: bool = False


def decide(check: TagCheck) -> Decision:
    """Whether a tag changed (see the module docstring, step 4)."""
    recorded = check.recorded
    if (
        recorded is not None
        and check.upstream is not None
        and check.upstream == recorded.upstream_digest
        and check.local == recorded.local_digest
    ):
        return Decision(copy=False)
    if recorded is None and check.upstream is not None and check.local == check.upstream:
        # Copied before the rule knew it (an earlier run that stopped before recording, or an
        # import of the same image): nothing to fetch.
        return Decision(copy=False, adopt=True)
    owned = (
        recorded is not None and check.local is not None and check.local == recorded.local_digest
    )
    return Decision(copy=True, force=owned)


def vanished(recorded: Sequence[SyncedTag], listed: dict[str, frozenset[str]]) -> list[SyncedTag]:
    """The recorded tags whose repository was listed upstream without them."""
    return [
        t
        for t in recorded
        if t.source_repository in listed and t.tag not in listed[t.source_repository]
    ]


def run_state(entries: Sequence[TagReport]) -> str:
    """The state of an ended run from its report: failed when nothing could be listed,
    completedWithFailures when some tag or repository failed, else succeeded."""
    failed = [e for e in entries if e.outcome == FAILED_TAG]
    if failed and all(e.tag is None for e in entries):
        return FAILED
    return COMPLETED_WITH_FAILURES if failed else SUCCEEDED


@dataclass(frozen=True, slots=True)
class RuleView:
    record: SyncRuleRecord
    spec: SyncRuleSpec
    last_run: SyncRunRecord | None


@dataclass(frozen=True, slots=True)
class RunView:
    record: SyncRunRecord
    rule_name: str
    entries: tuple[TagReport, ...]


class SyncRuleMissing(DomainError):
    """The rule was deleted while its run was starting."""


class SyncService:
    """Sync rules, their runs, and the work of a run (see the module docstring)."""

    def __init__(
        self,
        meta: MetadataStore,
        sources: Sources,
        batches: BatchService,
        manifests: ManifestService,
        registries: RegistryService,
        box: SecretBox,
        settings: SyncSettings,
    ) -> None:
        self._meta = meta
        self._sources = sources
        self._batches = batches
        self._manifests = manifests
        self._registries = registries
        self._box = box
        self.settings = settings
        self.owner = uuid.uuid4().hex  # this process, as lease holder
        self._work = asyncio.Event()
        # A run queued (or a rule written) through any process wakes this one's loop at
        # once, not at its next poll.
        meta.changes.subscribe(Topic.SYNC, self.wake)

    # -- rules ---------------------------------------------------------------------------------
    def seal(self, credentials: Credentials | None) -> bytes | None:
        if credentials is None:
            return None
        return self._box.seal(
            json.dumps(
                {"username": credentials.username, "password": credentials.password}
            ).encode()
        )

    def _open(self, sealed: bytes | None) -> Credentials | None:
        if sealed is None:
            return None
        data = json.loads(self._box.open(sealed))
        return Credentials(data["username"], data["password"])

    def credentials_username(self, record: SyncRuleRecord) -> str | None:
        """The user name of the rule's credentials (never the password)."""
        credentials = self._open(record.credentials)
        return None if credentials is None else credentials.username

    async def put(
        self,
        registry: RegistryRecord,
        name: str,
        spec: SyncRuleSpec,
        credentials: Credentials | None,
        *,
        keep_credentials: bool = False,
    ) -> tuple[RuleView, bool]:
        """Create or replace the rule; (the rule, True when created). With
        `keep_credentials`, an existing rule keeps its credentials. A rule with an interval
        is due at once when created and an interval after now when replaced."""

        async def write(q: Transaction) -> tuple[RuleView, bool]:
            await q.changed(Topic.SYNC)
            rules = _queries(q)
            existing = await rules.rule(registry.id, name)
            sealed = (
                existing.credentials
                if keep_credentials and existing is not None
                else self.seal(credentials)
            )
            now = utcnow()
            next_run = None
            if spec.interval_seconds is not None:
                next_run = (
                    now if existing is None else now + timedelta(seconds=spec.interval_seconds)
                )
            created = await rules.put_rule(
                uuid.uuid4().hex, registry.id, name, spec.to_json(), sealed, next_run
            )
            record = await rules.rule(registry.id, name)
            assert record is not None
            last = (await rules.last_runs([record.id])).get(record.id)
            return RuleView(record, spec, last), created

        answer = await self._meta.write_at_once(write)
        self.wake()
        return answer

    async def get(self, registry: RegistryRecord, name: str) -> RuleView | None:
        async with self._meta.reading() as q:
            rules = _queries(q)
            record = await rules.rule(registry.id, name)
            if record is None:
                return None
            last = (await rules.last_runs([record.id])).get(record.id)
        return RuleView(record, SyncRuleSpec.from_json(record.definition), last)

    async def list_rules(self, registry: RegistryRecord) -> list[RuleView]:
        async with self._meta.reading() as q:
            rules = _queries(q)
            records = await rules.rules_of(registry.id)
            last = await rules.last_runs([r.id for r in records])
        return [RuleView(r, SyncRuleSpec.from_json(r.definition), last.get(r.id)) for r in records]

    async def delete(self, registry: RegistryRecord, name: str) -> bool:
        """Delete the rule with its history (what it copied stays). False when unknown."""

        async def remove(q: Transaction) -> bool:
            rules = _queries(q)
            record = await rules.rule(registry.id, name)
            return record is not None and await rules.delete_rule(record.id)

        return await self._meta.write_at_once(remove)

    # -- runs ----------------------------------------------------------------------------------
    async def request_run(self, rule: SyncRuleRecord) -> SyncRunRecord:
        """Queue a run of the rule (the one already queued, if any, is the answer)."""

        async def queue(q: Transaction) -> SyncRunRecord:
            await q.changed(Topic.SYNC)
            rules = _queries(q)
            queued = await rules.queued_run(rule.id)
            if queued is not None:
                return queued
            run_id = uuid.uuid4().hex
            await rules.create_run(run_id, rule.id, MANUAL, QUEUED)
            found = await rules.run(run_id)
            assert found is not None
            return found

        run = await self._meta.write_at_once(queue)
        self.wake()
        return run

    async def run(self, rule: SyncRuleRecord, run_id: str) -> RunView | None:
        async with self._meta.reading() as q:
            found = await _queries(q).run(run_id)
        if found is None or found.rule_id != rule.id:
            return None
        return RunView(found, rule.name, tuple(parse_report(found.report)))

    async def runs(self, rule: SyncRuleRecord) -> list[RunView]:
        """The rule's kept runs, newest first."""
        async with self._meta.reading() as q:
            found = await _queries(q).runs_of(rule.id, self.settings.history + 1)
        return [RunView(r, rule.name, tuple(parse_report(r.report))) for r in found]

    # -- the worker's steps --------------------------------------------------------------------
    def wake(self) -> None:
        """Tell this process's loop there may be a rule to run."""
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    async def due(self, limit: int) -> list[str]:
        async with self._meta.reading() as q:
            return await _queries(q).due_rules(utcnow(), limit)

    async def claim(self, rule_id: str) -> bool:
        """Take the rule's lease for this process; False when another holds it."""
        return await self._meta.write_at_once(
            lambda q: _queries(q).claim_rule(rule_id, self.owner, self.settings.lease)
        )

    async def execute(self, rule_id: str) -> None:
        """Run a claimed rule once (its oldest queued run, else a scheduled one), renewing
        the lease meanwhile, then give the lease back with the next scheduled time. When the
        lease is lost (another process took the rule), the run stops and is marked
        interrupted. A failure of the run is logged and recorded on it; raises only
        CancelledError (shutdown: the run is marked interrupted and the lease given back)."""
        run_id: str | None = None
        lost = asyncio.Event()
        work = asyncio.current_task()
        renewer = asyncio.create_task(self._renew(rule_id, lost, work))
        try:
            rule, started = await self._meta.write_at_once(lambda q: self._start(q, rule_id))
            run_id = started
            await self._sync(rule, SyncRuleSpec.from_json(rule.definition), started)
        except SyncRuleMissing:
            return
        except asyncio.CancelledError:
            if run_id is not None:
                reason = "lost its lease" if lost.is_set() else "was stopped (shutdown)"
                await self._end_interrupted(run_id, f"the process running it {reason}")
            raise
        except Exception as exc:
            log.exception("sync rule %s: the run failed unexpectedly", rule_id)
            if run_id is not None:
                await self._end_interrupted(
                    run_id, f"the run failed unexpectedly: {type(exc).__name__}", "InternalError"
                )
        finally:
            renewer.cancel()
            with contextlib.suppress(BaseException):
                await renewer
            if not lost.is_set():
                await self._release(rule_id)

    async def _start(self, q: Transaction, rule_id: str) -> tuple[SyncRuleRecord, str]:
        rules = _queries(q)
        rule = await rules.rule_by_id(rule_id)
        if rule is None or rule.lease_owner != self.owner:
            raise SyncRuleMissing(f"sync rule {rule_id} is gone, or another process holds it")
        await rules.abandon_runs(rule_id)
        queued = await rules.queued_run(rule_id)
        if queued is not None:
            await rules.start_run(queued.id)
            return rule, queued.id
        run_id = uuid.uuid4().hex
        await rules.create_run(run_id, rule_id, SCHEDULED, RUNNING)
        return rule, run_id

    async def _renew(
        self, rule_id: str, lost: asyncio.Event, work: asyncio.Task[Any] | None
    ) -> None:
        period = max(self.settings.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            try:
                held = await self._meta.write_at_once(
                    lambda q: _queries(q).renew_rule(rule_id, self.owner, self.settings.lease)
                )
            except Exception:
                log.warning("sync rule %s: renewing its lease failed", rule_id, exc_info=True)
                continue
            if not held:
                log.warning("sync rule %s was taken over by another process", rule_id)
                lost.set()
                if work is not None:
                    work.cancel()
                return

    async def _release(self, rule_id: str) -> None:
        """Give the rule's lease back, due again an interval from now (as the rule says
        now: an update during the run may have changed it), and trim its history. A failure
        is logged: the lease then expires."""

        async def release(q: Transaction) -> None:
            rules = _queries(q)
            current = await rules.rule_by_id(rule_id)
            interval = (
                None
                if current is None
                else SyncRuleSpec.from_json(current.definition).interval_seconds
            )
            due = None if interval is None else utcnow() + timedelta(seconds=interval)
            await rules.release_rule(rule_id, self.owner, due)
            await rules.trim_runs(rule_id, self.settings.history)

        try:
            await self._meta.write_at_once(release)
        except Exception:
            log.warning("sync rule %s: releasing its lease failed", rule_id, exc_info=True)

    async def _end_interrupted(
        self, run_id: str, message: str, code: str = "SyncRunInterrupted"
    ) -> None:
        async def end(q: Transaction) -> None:
            rules = _queries(q)
            run = await rules.run(run_id)
            if run is None or run.state not in (QUEUED, RUNNING):
                return
            await rules.update_run(run_id, report=run.report, state=FAILED, error=(code, message))

        with contextlib.suppress(Exception):
            await self._meta.write_at_once(end)

    # -- a run -------------------------------------------------------------------------------
    async def _sync(self, rule: SyncRuleRecord, spec: SyncRuleSpec, run_id: str) -> None:
        registry = await self._registries.by_id(rule.registry_id)
        if registry is None:
            raise SyncRuleMissing("the registry is gone")
        credentials = self._open(rule.credentials)
        # What the comparison costs upstream (the copies' requests are their imports').
        sent = RequestLog()
        entries: list[TagReport] = []
        heads: dict[tuple[str, str], Digest | None] = {}
        listed: dict[str, frozenset[str]] = {}
        for repository in spec.source_repositories:
            target = spec.target_for(repository)
            try:
                found = await self._read_upstream(spec, repository, credentials, registry.id, sent)
            except ImportFailure as exc:
                entries.append(
                    TagReport(
                        repository, None, target, FAILED_TAG, reason=f"{exc.code}: {exc.message}"
                    )
                )
                continue
            tags, results = found
            listed[repository] = frozenset(tags)
            for tag, result in results.items():
                if isinstance(result, ImportFailure):
                    entries.append(
                        TagReport(
                            repository,
                            tag,
                            target,
                            FAILED_TAG,
                            reason=f"{result.code}: {result.message}",
                        )
                    )
                else:
                    heads[(repository, tag)] = result
        async with self._meta.reading() as q:
            recorded_list = await _queries(q).synced_tags(rule.id)
            wanted = [(spec.target_for(r), t) for r, t in heads] + [
                (t.target_repository, t.tag) for t in recorded_list
            ]
            local = await q.batches.tag_digests(registry.id, wanted)
        recorded = {(t.source_repository, t.tag): t for t in recorded_list}
        adopted: list[SyncedTag] = []
        items: list[BatchItem] = []
        copying: list[TagCheck] = []
        for (repository, tag), upstream in heads.items():
            target = spec.target_for(repository)
            check = TagCheck(
                repository,
                tag,
                target,
                upstream,
                recorded.get((repository, tag)),
                local.get((target, tag)),
            )
            decision = decide(check)
            if not decision.copy:
                if decision.adopt:
                    assert check.local is not None
                    adopted.append(SyncedTag(repository, tag, target, upstream, check.local))
                entries.append(TagReport(repository, tag, target, UNCHANGED, upstream, check.local))
                continue
            request = ImportRequest(
                SourceSpec(spec.source_host, None, repository, tag),
                (TargetTag(target, tag),),
                (),
                decision.force,
                spec.platform_subset,
                spec.referrers,
            )
            items.append(BatchItem(request, credentials))
            copying.append(check)
        if adopted:
            await self._meta.write_at_once(lambda q: _queries(q).record_tags(rule.id, adopted))
        counted = json.dumps(asdict(sent.counts()))
        if items:
            entries.extend(
                await self._copy(rule, run_id, entries, registry, items, copying, counted)
            )
        if spec.mirror_deletions:
            entries.extend(
                await self._mirror_deletions(rule, registry, recorded_list, listed, local)
            )
        final = report_json(entries)
        state = run_state(entries)
        error = None
        if state != SUCCEEDED:
            failed = sum(1 for e in entries if e.outcome == FAILED_TAG)
            error = (
                "SyncSourceFailed" if state == FAILED else "SyncTagsFailed",
                f"{failed} of {len(entries)} tags or repositories failed; see the report",
            )
        await self._meta.write_at_once(
            lambda q: _queries(q).update_run(
                run_id, report=final, state=state, error=error, requests=counted
            )
        )
        log.info("sync rule %s run %s %s", rule.name, run_id, state)

    async def _read_upstream(
        self,
        spec: SyncRuleSpec,
        repository: str,
        credentials: Credentials | None,
        registry_id: int,
        sent: RequestLog,
    ) -> tuple[tuple[str, ...], dict[str, Digest | ImportFailure | None]]:
        """The repository's tags upstream, and for each selected one its HEAD digest (or the
        failure of its HEAD). Raises ImportFailure when the listing fails."""
        source_spec = SourceSpec(spec.source_host, None, repository, "latest")
        async with self._sources.open(
            source_spec, credentials, registry_id, request_log=sent
        ) as source:
            if not isinstance(source, TagSource):
                raise ImportFailure(
                    "SyncSourceUnsupported",
                    f"{spec.source_host} is no upstream registry a rule can list",
                    step=Step.RESOLVE,
                )
            tags = await source.list_tags(self.settings.tag_page_size)
            # A regular expression over tens of thousands of tags is CPU work: off the loop.
            selected = (
                spec.tag_filter.select(tags)
                if len(tags) <= _INLINE_FILTER_TAGS
                else await asyncio.to_thread(spec.tag_filter.select, tags)
            )
            gate = asyncio.Semaphore(self.settings.head_concurrency)

            async def head(tag: str) -> Digest | ImportFailure | None:
                async with gate:
                    try:
                        return await source.head_manifest(tag)
                    except ImportFailure as exc:
                        return exc

            results = await asyncio.gather(*(head(tag) for tag in selected))
        return tags, dict(zip(selected, results, strict=True))

    async def _copy(
        self,
        rule: SyncRuleRecord,
        run_id: str,
        so_far: Sequence[TagReport],
        registry: RegistryRecord,
        items: Sequence[BatchItem],
        checks: Sequence[TagCheck],
        counted: str,
    ) -> list[TagReport]:
        """Import what changed as one batch, follow it to its end, record what it copied;
        the reports of its tags."""
        view = await self._batches.submit(registry.id, items)
        pending = [
            TagReport(
                c.source_repository,
                c.tag,
                c.target_repository,
                COPYING,
                c.upstream,
                operation=item.record.job.id,
            )
            for c, item in zip(checks, view.items, strict=True)
        ]
        batch_id = view.record.id
        text = report_json([*so_far, *pending])
        await self._meta.write_at_once(
            lambda q: _queries(q).update_run(
                run_id, report=text, batch_id=batch_id, requests=counted
            )
        )
        while not view.ended:
            seen = batch_version(view)
            followed = await self._batches.follow(batch_id, seen, 30.0)
            if followed is None:
                break
            if batch_version(followed) == seen:
                # Answered without a change (the wait ended, or the process is stopping and
                # follow no longer waits): pace the next look.
                await asyncio.sleep(_FOLLOW_PAUSE_SECONDS)
            view = followed
        return await self._copied(rule, view, checks)

    async def _copied(
        self, rule: SyncRuleRecord, view: BatchView, checks: Sequence[TagCheck]
    ) -> list[TagReport]:
        entries: list[TagReport] = []
        record: list[SyncedTag] = []
        for check, item in zip(checks, view.items, strict=True):
            job = item.record.job
            if job.state == "succeeded" and item.digest is not None:
                outcome = UNCHANGED if item.unchanged else COPIED
                entries.append(
                    TagReport(
                        check.source_repository,
                        check.tag,
                        check.target_repository,
                        outcome,
                        check.upstream,
                        item.digest,
                        operation=job.id,
                    )
                )
                record.append(
                    SyncedTag(
                        check.source_repository,
                        check.tag,
                        check.target_repository,
                        check.upstream,
                        item.digest,
                    )
                )
                continue
            reason = (
                f"{job.error_code}: {job.error_message}"
                if job.error_code is not None
                else f"the import ended {job.state}"
            )
            entries.append(
                TagReport(
                    check.source_repository,
                    check.tag,
                    check.target_repository,
                    FAILED_TAG,
                    check.upstream,
                    check.local,
                    reason,
                    job.id,
                )
            )
        if record:
            await self._meta.write_at_once(lambda q: _queries(q).record_tags(rule.id, record))
        return entries

    async def _mirror_deletions(
        self,
        rule: SyncRuleRecord,
        registry: RegistryRecord,
        recorded: Sequence[SyncedTag],
        listed: dict[str, frozenset[str]],
        local: dict[tuple[str, str], Digest],
    ) -> list[TagReport]:
        entries: list[TagReport] = []
        forget: list[tuple[str, str]] = []
        for gone in vanished(recorded, listed):
            now = local.get((gone.target_repository, gone.tag))
            forget.append((gone.source_repository, gone.tag))
            if now is None:
                continue  # already untagged here
            if now != gone.local_digest:
                entries.append(
                    TagReport(
                        gone.source_repository,
                        gone.tag,
                        gone.target_repository,
                        UNCHANGED,
                        None,
                        now,
                        "deleted upstream, but the tag was changed outside this rule: left "
                        "in place",
                    )
                )
                continue
            try:
                await self._manifests.delete(registry, gone.target_repository, gone.tag)
            except DomainError as exc:
                forget.pop()
                entries.append(
                    TagReport(
                        gone.source_repository,
                        gone.tag,
                        gone.target_repository,
                        FAILED_TAG,
                        None,
                        now,
                        f"deleted upstream, but untagging it failed: {exc.message}",
                    )
                )
                continue
            entries.append(
                TagReport(
                    gone.source_repository,
                    gone.tag,
                    gone.target_repository,
                    DELETED,
                    None,
                    None,
                    "deleted upstream",
                )
            )
        if forget:
            await self._meta.write_at_once(lambda q: _queries(q).forget_tags(rule.id, forget))
        return entries


def _queries(q: Transaction) -> SyncRuleQueries:
    group: SyncRuleQueries = SyncRuleQueries.joining(q)
    return group
