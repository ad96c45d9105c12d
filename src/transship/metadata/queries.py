"""Queries over the registry tables, bound to one connection (a snapshot or a transaction)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import cached_property
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    BigInteger,
    Row,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from transship.errors import Conflict
from transship.metadata import schema as s
from transship.metadata.batches import BatchQueries
from transship.metadata.budgets import BudgetQueries
from transship.metadata.changes import ChangeHub, Topic
from transship.metadata.db import Database, InlineConnection
from transship.metadata.identity import IdentityQueries
from transship.metadata.jobs import JobQueries
from transship.metadata.pull import (
    MANIFEST_BY_DIGEST,
    MANIFEST_BY_TAG,
    REPOSITORY_BLOB_SIZE,
    PullQueries,
)
from transship.metadata.records import (
    Attributes,
    ManifestGraph,
    ManifestNode,
    ManifestRecord,
    ManifestReference,
    ManifestSummary,
    RegistryRecord,
    RetentionPolicy,
    TagRecord,
    UploadRecord,
)
from transship.metadata.scope import QueryScope, as_utc, conflict_from, utcnow
from transship.oci.digest import Digest

T = TypeVar("T")
# Rows per INSERT of `link_blobs`: 3 parameters each, well under SQLite's 32766.
_LINK_BATCH = 500

# How an ACR listing is sorted: by its key (tag name, manifest digest), or by time.
ListingOrder = Literal["key", "timeasc", "timedesc"]

# What carries changeable attributes (ACR's image locking).
AttributeSubject = Literal["repository", "tag", "manifest"]


def _attributes(row: Row[Any]) -> Attributes:
    return Attributes(
        bool(row.delete_enabled),
        bool(row.write_enabled),
        bool(row.read_enabled),
        bool(row.list_enabled),
    )


def _tag_record(row: Row[Any]) -> TagRecord:
    return TagRecord(
        row.name, row.digest, as_utc(row.created_at), as_utc(row.updated_at), _attributes(row)
    )


def locked(table: Any) -> Any:
    """The SQL condition under which a row of `table` (repositories, tags or manifests) is
    locked against deletion: deleteEnabled or writeEnabled is false. Garbage collection and
    retention must exclude such rows (and the manifests their locked tags name)."""
    return ~table.c.delete_enabled | ~table.c.write_enabled


class BlobMissing(Exception):
    """A blob row vanished (garbage collected) while it was being linked; the message is
    its digest."""


# The pull path's statements live with its fast reads; these methods run them in any scope.
_MANIFEST_BY_DIGEST, _MANIFEST_BY_TAG, _REPOSITORY_BLOB_SIZE = (
    MANIFEST_BY_DIGEST,
    MANIFEST_BY_TAG,
    REPOSITORY_BLOB_SIZE,
)


class MetadataStore:
    """Opens query scopes over the database."""

    def __init__(self, db: Database, changes: ChangeHub | None = None) -> None:
        """`changes`: the process's change hub, which caches subscribe to (`meta.changes`);
        one of its own when None."""
        self.db = db
        self.changes = changes if changes is not None else ChangeHub()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Transaction]:
        """A read snapshot through the async driver: any query, however large, runs off
        the event loop."""
        async with self.db.read() as conn:
            yield Transaction(conn, self.changes)

    async def read_at_once(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        """`work(q)`'s reads, as `reading()` would run them, except that on SQLite they all
        run in one step on a read thread (see `Database.read_in_thread`): one hop instead
        of four per statement, for the short reads of busy paths (an import's lookups).
        `work` may only run queries of `q` and returns what they give. Raises what `work`
        raises."""
        if not self.db.reads_in_thread:
            async with self.reading() as q:
                return await work(q)
        return await self.db.read_in_thread(
            lambda conn: _run_to_end(work(Transaction(conn, self.changes)))
        )

    @asynccontextmanager
    async def fast_read(self) -> AsyncIterator[PullQueries]:
        """The pull path's keyed lookups only, inline on the loop on SQLite (a thread hop
        would cost twenty times the lookup). For manifest GET and blob GET/HEAD by key."""
        async with self.db.fast_read() as conn:
            yield PullQueries(conn)

    @asynccontextmanager
    async def writing(self, within: QueryScope | None = None) -> AsyncIterator[Transaction]:
        """A transaction: committed when the block exits normally, rolled back on any error;
        after the commit (never after a rollback) the callbacks given to the scope's
        `on_commit` run, so caches change only with the rows they mirror.

        With `within` (a scope a caller opened here), the block joins the caller's
        transaction instead of opening one: it commits or rolls back with the caller's, so
        one service call can be a step of a larger write that is atomic as a whole.

        Raises Conflict, never the driver's IntegrityError, when a unique key is taken or a
        referenced row is gone (at a statement, or at the commit)."""
        if within is not None:
            yield within if isinstance(within, Transaction) else Transaction.joining(within)
            return
        try:
            async with self.db.write() as conn:
                scope = Transaction(conn, self.changes)
                yield scope
        except IntegrityError as exc:
            raise conflict_from(exc) from exc
        scope.committed()

    async def write_at_once(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        """`work(q)` as one short write transaction, as `writing()` would run it, except
        that on SQLite all its statements run in one step on the database's write thread
        (see `Database.write_in_thread`): for the few writes of request paths that must not
        hold SQLite's write lock across turns of a busy loop. `work` may only run queries
        of `q` (savepoints included; nothing else that waits, no scan) and blocking calls
        that may run on that thread, and returns what they give.

        Commits when `work` returns, rolls back when it raises; the `on_commit` callbacks
        run after the commit, on the loop. Raises Conflict as `writing()` does, and what
        `work` raises."""
        if not self.db.writes_in_thread:
            async with self.writing() as q:
                return await work(q)
        scopes: list[Transaction] = []

        def in_thread(conn: InlineConnection) -> T:
            scope = Transaction(conn, self.changes)
            scopes.append(scope)
            return _run_to_end(work(scope))

        try:
            result = await self.db.write_in_thread(in_thread)
        except IntegrityError as exc:
            raise conflict_from(exc) from exc
        scopes[0].committed()
        return result


def _run_to_end(step: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (queries on an InlineConnection).
    Raises RuntimeError, after closing it, if it waits on anything: nothing could wake it
    on the write thread."""
    try:
        step.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    step.close()
    raise RuntimeError("a one-step write waited on something other than its own statements")


def _tags_json(tags: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"))


def _tags_of(text: str) -> tuple[tuple[str, str], ...]:
    value = json.loads(text or "{}")
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


class RegistryQueries(QueryScope):
    """Every query the registry layer needs."""

    # -- registries --------------------------------------------------------------------------
    @staticmethod
    def _registry(row: Row[Any]) -> RegistryRecord:
        return RegistryRecord(
            id=row.id,
            name=row.name,
            login_server=row.login_server,
            subscription_id=row.subscription_id,
            resource_group=row.resource_group,
            is_default=row.is_default,
            created_at=as_utc(row.created_at),
            location=row.location,
            sku=row.sku,
            uid=row.uid,
            tags=_tags_of(row.tags),
            retention=RetentionPolicy(
                enabled=row.retention_enabled,
                days=row.retention_days,
                updated_at=None
                if row.retention_updated_at is None
                else as_utc(row.retention_updated_at),
            ),
        )

    async def ensure_default_registry(
        self, name: str, login_server: str | None = None
    ) -> RegistryRecord:
        """The registry serving unknown hosts, created on first start with `login_server`."""
        row = (await self._exec(select(s.registries).where(s.registries.c.is_default))).first()
        if row is not None:
            return self._registry(row)
        await self._insert_ignore(
            s.registries,
            {
                "name": name,
                "login_server": login_server,
                "is_default": True,
                "created_at": utcnow(),
                "uid": uuid.uuid4().hex,
            },
            ["name"],
        )
        row = (await self._exec(select(s.registries).where(s.registries.c.name == name))).one()
        if not row.is_default:
            await self._exec(
                update(s.registries).where(s.registries.c.id == row.id).values(is_default=True)
            )
            row = (await self._exec(select(s.registries).where(s.registries.c.id == row.id))).one()
        return self._registry(row)

    async def create_registry(
        self,
        name: str,
        login_server: str | None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str = "local",
        sku: str = "Premium",
        tags: Mapping[str, str] | None = None,
    ) -> RegistryRecord:
        """Insert a registry. Raises Conflict when the name or login server is taken."""
        await self.changed(Topic.REGISTRIES)
        result = await self._exec(
            insert(s.registries)
            .values(
                name=name,
                login_server=login_server,
                subscription_id=subscription_id,
                resource_group=resource_group,
                is_default=False,
                created_at=utcnow(),
                location=location,
                sku=sku,
                tags=_tags_json(tags or {}),
                uid=uuid.uuid4().hex,
            )
            .returning(*s.registries.c)
        )
        return self._registry(result.one())

    async def update_registry_properties(
        self,
        registry_id: int,
        *,
        sku: str | None = None,
        tags: Mapping[str, str] | None = None,
        retention: RetentionPolicy | None = None,
    ) -> RegistryRecord | None:
        """Set the properties given (None: unchanged); the registry after, or None when it
        is gone."""
        await self.changed(Topic.REGISTRIES)
        values: dict[str, Any] = {}
        if sku is not None:
            values["sku"] = sku
        if tags is not None:
            values["tags"] = _tags_json(tags)
        if retention is not None:
            values["retention_enabled"] = retention.enabled
            values["retention_days"] = retention.days
            values["retention_updated_at"] = retention.updated_at
        r = s.registries
        if values:
            await self._exec(update(r).where(r.c.id == registry_id).values(**values))
        return await self.registry_by_id(registry_id)

    async def registry_storage_bytes(self, registry_id: int) -> int:
        """The bytes of the distinct blobs the registry's repositories link (a blob shared by
        two repositories counts once, as it is stored once)."""
        rb, repo, b = s.repository_blobs, s.repositories, s.blobs
        linked = (
            select(rb.c.digest)
            .join(repo, repo.c.id == rb.c.repository_id)
            .where(repo.c.registry_id == registry_id)
        )
        total = await self._exec(
            select(func.coalesce(func.sum(b.c.size), 0)).where(b.c.digest.in_(linked))
        )
        return int(total.scalar_one())

    async def registries_with_retention(self) -> list[RegistryRecord]:
        r = s.registries
        rows = await self._exec(select(r).where(r.c.retention_enabled).order_by(r.c.id))
        return [self._registry(row) for row in rows]

    async def repository_ids(self, registry_id: int) -> list[int]:
        r = s.repositories
        rows = await self._exec(select(r.c.id).where(r.c.registry_id == registry_id))
        return sorted(row.id for row in rows)

    async def manifest_graph(self, repository_id: int) -> ManifestGraph:
        """Every manifest of the repository with its age and subject, the tagged ones, the
        index → child edges, and the ones locked against deletion (by their own attributes
        or the repository's): what retention decides on."""
        m, t, mr, r = s.manifests, s.tags, s.manifest_references, s.repositories
        repository_locked = bool(
            (
                await self._exec(select(locked(r)).where(r.c.id == repository_id))
            ).scalar_one_or_none()
        )
        nodes = []
        locked_manifests = set()
        async for row in self._scan(
            select(m.c.digest, m.c.created_at, m.c.subject_digest, locked(m).label("locked")).where(
                m.c.repository_id == repository_id
            )
        ):
            nodes.append(ManifestNode(row.digest, as_utc(row.created_at), row.subject_digest))
            if row.locked or repository_locked:
                locked_manifests.add(row.digest)
        tagged = {
            row.digest
            async for row in self._scan(
                select(t.c.digest).where(t.c.repository_id == repository_id).distinct()
            )
        }
        edges = [
            (row.manifest_digest, row.child_digest)
            async for row in self._scan(
                select(mr.c.manifest_digest, mr.c.child_digest).where(
                    mr.c.repository_id == repository_id, mr.c.is_manifest
                )
            )
        ]
        return ManifestGraph(
            tuple(nodes), frozenset(tagged), tuple(edges), frozenset(locked_manifests)
        )

    async def registries(self) -> list[RegistryRecord]:
        rows = await self._exec(select(s.registries).order_by(s.registries.c.name))
        return [self._registry(r) for r in rows]

    async def adopt_orphan_registries(self, subscription_id: str, resource_group: str) -> None:
        """Registries created before tenancy existed (the default one) join the default group."""
        await self.changed(Topic.REGISTRIES)
        r = s.registries
        await self._exec(
            update(r)
            .where(r.c.subscription_id.is_(None))
            .values(subscription_id=subscription_id, resource_group=resource_group)
        )

    async def registry_by_name(self, name: str) -> RegistryRecord | None:
        """Names are unique in any letter case (their login servers are)."""
        r = s.registries
        row = (await self._exec(select(r).where(func.lower(r.c.name) == name.lower()))).first()
        return None if row is None else self._registry(row)

    async def registry_by_id(
        self, registry_id: int, *, for_update: bool = False
    ) -> RegistryRecord | None:
        """The registry; `for_update` locks its row to the end of the transaction
        (PostgreSQL; SQLite serialises writers anyway)."""
        r = s.registries
        statement = select(r).where(r.c.id == registry_id)
        if for_update:
            statement = statement.with_for_update()
        row = (await self._exec(statement)).first()
        return None if row is None else self._registry(row)

    async def registries_by_id(self, registry_ids: Iterable[int]) -> dict[int, RegistryRecord]:
        """Those of `registry_ids` that exist, by id, in one keyed statement."""
        wanted = list(set(registry_ids))
        if not wanted:
            return {}
        r = s.registries
        return {
            row.id: self._registry(row)
            for row in await self._exec(select(r).where(r.c.id.in_(wanted)))
        }

    async def registry_by_login_server(self, login_server: str) -> RegistryRecord | None:
        r = s.registries
        row = (
            await self._exec(select(r).where(func.lower(r.c.login_server) == login_server.lower()))
        ).first()
        return None if row is None else self._registry(row)

    async def delete_registry(self, registry_id: int) -> bool:
        await self.changed(Topic.REGISTRIES)
        await self.changed(Topic.ROLES)
        await self.changed(Topic.CREDENTIALS)
        result = await self._exec(delete(s.registries).where(s.registries.c.id == registry_id))
        return bool(result.rowcount)

    # -- service state -----------------------------------------------------------------------
    async def service_state(self) -> dict[str, str]:
        rows = await self._exec(select(s.service_state))
        return {r.key: r.value for r in rows}

    async def set_service_state(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            stmt = self._insert(s.service_state).values(key=key, value=value)
            await self._exec(
                stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )

    # -- repositories ------------------------------------------------------------------------
    async def repository_id(self, registry_id: int, name: str) -> int | None:
        return (
            await self._exec(
                select(s.repositories.c.id).where(
                    s.repositories.c.registry_id == registry_id, s.repositories.c.name == name
                )
            )
        ).scalar()

    async def ensure_repository(self, registry_id: int, name: str) -> int:
        await self._insert_ignore(
            s.repositories,
            {"registry_id": registry_id, "name": name, "created_at": utcnow()},
            ["registry_id", "name"],
        )
        repo_id = await self.repository_id(registry_id, name)
        assert repo_id is not None
        return repo_id

    async def lock_repository(self, repository_id: int, *, exclusive: bool) -> None:
        """Serialise writers of one repository on PostgreSQL (SQLite serialises all writers).

        Manifest pushes take it shared; deletes and garbage collection take it exclusive, so a
        delete never removes what a concurrent push is about to reference.
        """
        await self._exec(
            select(s.repositories.c.id)
            .where(s.repositories.c.id == repository_id)
            .with_for_update(read=not exclusive)
        )

    async def catalog(self, registry_id: int, last: str | None, limit: int) -> list[str]:
        """Repository names after `last`, lexically, at most `limit`; only repositories with
        a manifest or a blob (an abandoned upload does not make a repository)."""
        repo = s.repositories
        has_content = exists().where(s.manifests.c.repository_id == repo.c.id) | exists().where(
            s.repository_blobs.c.repository_id == repo.c.id
        )
        stmt = select(repo.c.name).where(
            repo.c.registry_id == registry_id, repo.c.list_enabled, has_content
        )
        if last is not None:
            stmt = stmt.where(repo.c.name > last)
        rows = await self._exec(stmt.order_by(repo.c.name).limit(limit))
        return [r.name for r in rows]

    # -- blobs -------------------------------------------------------------------------------
    async def blob_size(self, digest: Digest) -> int | None:
        """Size of a committed blob anywhere in the store, or None."""
        return (await self._exec(select(s.blobs.c.size).where(s.blobs.c.digest == digest))).scalar()

    async def repository_blob_size(
        self, registry_id: int, repository: str, digest: Digest
    ) -> int | None:
        """Size of a blob if `repository` may see it, else None."""
        params = {"registry_id": registry_id, "repository": repository, "digest": digest}
        return (await self._exec(_REPOSITORY_BLOB_SIZE, params)).scalar()

    async def record_blob(self, digest: Digest, size: int) -> None:
        """Create or refresh the blob row. On PostgreSQL the upsert also locks the row until
        commit, which keeps garbage collection from deleting it under a concurrent commit."""
        stmt = self._insert(s.blobs).values(digest=digest, size=size, created_at=utcnow())
        stmt = stmt.on_conflict_do_update(
            index_elements=["digest"], set_={"created_at": stmt.excluded.created_at}
        )
        await self._exec(stmt)

    async def link_blob(self, repository_id: int, digest: Digest) -> None:
        """Let a repository see a blob. Raises BlobMissing when the blob row is gone."""
        try:
            async with self._nested():
                await self._insert_ignore(
                    s.repository_blobs,
                    {"repository_id": repository_id, "digest": digest, "linked_at": utcnow()},
                    ["repository_id", "digest"],
                )
        except Conflict:
            raise BlobMissing(str(digest)) from None

    async def link_blobs(self, repository_id: int, digests: Sequence[Digest]) -> None:
        """`link_blob` for many blobs, a few statements in all instead of one (and a
        savepoint) per blob. Raises BlobMissing naming a blob whose row is gone."""
        unique = list(dict.fromkeys(digests))
        now = utcnow()
        for start in range(0, len(unique), _LINK_BATCH):
            batch = unique[start : start + _LINK_BATCH]
            statement = (
                self._insert(s.repository_blobs)
                .values(
                    [
                        {"repository_id": repository_id, "digest": digest, "linked_at": now}
                        for digest in batch
                    ]
                )
                .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
            )
            try:
                async with self._nested():
                    await self._exec(statement)
            except Conflict:
                # Rare (a blob deleted meanwhile): one at a time, to name the missing one.
                for digest in batch:
                    await self.link_blob(repository_id, digest)

    async def unlink_blob(self, registry_id: int, repository: str, digest: Digest) -> bool:
        repo_id = await self.repository_id(registry_id, repository)
        if repo_id is None:
            return False
        result = await self._exec(
            delete(s.repository_blobs).where(
                s.repository_blobs.c.repository_id == repo_id, s.repository_blobs.c.digest == digest
            )
        )
        return bool(result.rowcount)

    async def blob_referenced_in(self, repository_id: int, digest: Digest) -> Digest | None:
        """A manifest in the repository that needs the blob or child, or None."""
        mr = s.manifest_references
        return (
            await self._exec(
                select(mr.c.manifest_digest)
                .where(mr.c.repository_id == repository_id, mr.c.child_digest == digest)
                .limit(1)
            )
        ).scalar()

    async def touch_links(self, repository_id: int, digests: Iterable[Digest]) -> set[Digest]:
        """Refresh the links a new manifest relies on and return those that exist.

        The update row-locks them, and refreshing `linked_at` keeps garbage collection (which
        re-checks it under the lock) from dropping a link this transaction is about to use.
        """
        wanted = list(set(digests))
        if not wanted:
            return set()
        rb = s.repository_blobs
        rows = await self._exec(
            update(rb)
            .where(rb.c.repository_id == repository_id, rb.c.digest.in_(wanted))
            .values(linked_at=utcnow())
            .returning(rb.c.digest)
        )
        return {r.digest for r in rows}

    # -- manifests ---------------------------------------------------------------------------
    async def manifest(
        self, registry_id: int, repository: str, reference: Digest | str
    ) -> ManifestRecord | None:
        """One query for the pull hot path: the manifest `reference` names (a digest, or a
        tag), resolving repository and tag and fetching the bytes."""
        stmt = _MANIFEST_BY_DIGEST if isinstance(reference, Digest) else _MANIFEST_BY_TAG
        params = {"registry_id": registry_id, "repository": repository, "reference": reference}
        row = (await self._exec(stmt, params)).first()
        if row is None:
            return None
        return ManifestRecord(row.digest, row.media_type, row.content, bool(row.readable))

    async def existing_manifests(
        self, repository_id: int, digests: Iterable[Digest]
    ) -> set[Digest]:
        wanted = list(set(digests))
        if not wanted:
            return set()
        m = s.manifests
        rows = await self._exec(
            select(m.c.digest).where(m.c.repository_id == repository_id, m.c.digest.in_(wanted))
        )
        return {r.digest for r in rows}

    async def held_manifest(self, registry_id: int, digest: Digest) -> ManifestRecord | None:
        """The manifest `digest` from any repository of the registry, or from what an
        import job into the registry was queued with (the bytes are the digest's wherever
        they are held), or None."""
        m, repo, queued = s.manifests, s.repositories, s.job_manifests
        stored = (
            select(m.c.digest, m.c.media_type, m.c.content)
            .select_from(m.join(repo, repo.c.id == m.c.repository_id))
            .where(repo.c.registry_id == registry_id, m.c.digest == digest)
        )
        given = select(queued.c.digest, queued.c.media_type, queued.c.content).where(
            queued.c.registry_id == registry_id, queued.c.digest == digest
        )
        row = (await self._exec(union_all(stored, given).limit(1))).first()
        return None if row is None else ManifestRecord(row.digest, row.media_type, row.content)

    async def insert_manifest(
        self,
        repository_id: int,
        digest: Digest,
        media_type: str,
        content: bytes,
        artifact_type: str | None,
        subject_digest: Digest | None,
        annotations: str | None,
        references: Sequence[ManifestReference],
    ) -> bool:
        """Store a manifest and its edges unless present; True when it was new."""
        inserted = await self._insert_ignore(
            s.manifests,
            {
                "repository_id": repository_id,
                "digest": digest,
                "media_type": media_type,
                "size": len(content),
                "content": content,
                "artifact_type": artifact_type,
                "subject_digest": subject_digest,
                "annotations": annotations,
                "created_at": utcnow(),
            },
            ["repository_id", "digest"],
        )
        if inserted and references:
            await self._exec(
                insert(s.manifest_references),
                [
                    {
                        "repository_id": repository_id,
                        "manifest_digest": digest,
                        "child_digest": ref.digest,
                        "is_manifest": ref.is_manifest,
                    }
                    for ref in {r.digest: r for r in references}.values()
                ],
            )
        return inserted

    async def manifest_parent(self, repository_id: int, digest: Digest) -> Digest | None:
        """An index in the repository that lists this manifest as a child, or None."""
        mr = s.manifest_references
        return (
            await self._exec(
                select(mr.c.manifest_digest)
                .where(
                    mr.c.repository_id == repository_id,
                    mr.c.child_digest == digest,
                    mr.c.is_manifest,
                )
                .limit(1)
            )
        ).scalar()

    async def record_absent_children(
        self, repository_id: int, index_digest: Digest, absent: Sequence[tuple[Digest, str]]
    ) -> None:
        """Mark children of a stored index as left out on purpose (a sparse index), each
        with the platform it is for. A child the index already has an edge to (imported
        earlier) is not marked."""
        mr = s.manifest_references
        present = {
            r.child_digest
            for r in await self._exec(
                select(mr.c.child_digest).where(
                    mr.c.repository_id == repository_id, mr.c.manifest_digest == index_digest
                )
            )
        }
        for child, platform in absent:
            if child in present:
                continue
            await self._insert_ignore(
                s.absent_children,
                {
                    "repository_id": repository_id,
                    "index_digest": index_digest,
                    "child_digest": child,
                    "platform": platform[:255],
                },
                ["repository_id", "index_digest", "child_digest"],
            )

    async def settle_absent_children(
        self, repository_id: int, index_digest: Digest, children: Iterable[Digest]
    ) -> None:
        """`children` of a stored index are now in the repository: for each the index had
        left out, add its edge (GC and deletes then see the index needs it) and drop the
        mark. A no-op for an index that is not sparse."""
        ac = s.absent_children
        wanted = list(set(children))
        if not wanted:
            return
        where = (
            ac.c.repository_id == repository_id,
            ac.c.index_digest == index_digest,
            ac.c.child_digest.in_(wanted),
        )
        marked = [r.child_digest for r in await self._exec(select(ac.c.child_digest).where(*where))]
        if not marked:
            return
        await self._exec(
            insert(s.manifest_references),
            [
                {
                    "repository_id": repository_id,
                    "manifest_digest": index_digest,
                    "child_digest": child,
                    "is_manifest": True,
                }
                for child in marked
            ],
        )
        await self._exec(delete(ac).where(*where))

    async def absent_child(
        self, registry_id: int, repository: str, digest: Digest
    ) -> tuple[Digest, str] | None:
        """(index, platform) when a sparse index in the repository left this child out."""
        ac, repo = s.absent_children, s.repositories
        row = (
            await self._exec(
                select(ac.c.index_digest, ac.c.platform)
                .select_from(ac.join(repo, repo.c.id == ac.c.repository_id))
                .where(
                    repo.c.registry_id == registry_id,
                    repo.c.name == repository,
                    ac.c.child_digest == digest,
                )
                .limit(1)
            )
        ).first()
        return None if row is None else (row.index_digest, row.platform)

    async def delete_manifest(self, repository_id: int, digest: Digest) -> bool:
        """Delete a manifest and every tag on it; True when it existed. One locked against
        deletion (by its own attributes, a tag on it or its repository) is kept and False
        returned, whoever asks: callers that must say why check `registry.locks` first."""
        if await self.deletion_locked(repository_id, digest):
            return False
        await self._exec(
            delete(s.tags).where(s.tags.c.repository_id == repository_id, s.tags.c.digest == digest)
        )
        result = await self._exec(
            delete(s.manifests).where(
                s.manifests.c.repository_id == repository_id, s.manifests.c.digest == digest
            )
        )
        return bool(result.rowcount)

    async def referrers(
        self, registry_id: int, repository: str, subject: Digest, artifact_type: str | None
    ) -> list[ManifestSummary]:
        m, repo = s.manifests, s.repositories
        stmt = (
            select(
                m.c.digest,
                m.c.media_type,
                m.c.size,
                m.c.artifact_type,
                m.c.annotations,
                m.c.created_at,
            )
            .select_from(repo.join(m, m.c.repository_id == repo.c.id))
            .where(
                repo.c.registry_id == registry_id,
                repo.c.name == repository,
                m.c.subject_digest == subject,
            )
            .order_by(m.c.created_at, m.c.digest)
        )
        if artifact_type is not None:
            stmt = stmt.where(m.c.artifact_type == artifact_type)
        rows = await self._exec(stmt)
        return [
            ManifestSummary(
                r.digest, r.media_type, r.size, r.artifact_type, r.annotations, as_utc(r.created_at)
            )
            for r in rows
        ]

    # -- ACR listings: one page or one item, never the whole repository ----------------------
    async def _page(
        self,
        stmt: Any,
        key: Any,
        time: Any,
        anchor: Any,
        order: ListingOrder,
        last: str | None,
        limit: int,
    ) -> Any:
        """Rows of `stmt` in `order` after the row whose `key` is `last`, at most `limit`.

        `order` "key" sorts by the key; "timeasc"/"timedesc" by `time`, then the key. A
        `last` that vanished since the previous page continues after its key's position.
        `anchor` is the WHERE clause selecting the row of `last`.
        """
        if last is not None:
            if order == "key" or (await self._exec(select(time).where(anchor))).first() is None:
                stmt = stmt.where(key > last)
            else:
                at = select(time).where(anchor).scalar_subquery()
                beyond = time > at if order == "timeasc" else time < at
                stmt = stmt.where(or_(beyond, and_(time == at, key > last)))
        ordering = (key,) if order == "key" else (time if order == "timeasc" else time.desc(), key)
        return await self._exec(stmt.order_by(*ordering).limit(limit))

    @staticmethod
    def _manifest_listing(repository_id: int) -> Any:
        """Manifests with the total size of the blobs each references (ACR's imageSize)."""
        m, mr, b = s.manifests, s.manifest_references, s.blobs
        blob_bytes = (
            select(cast(func.coalesce(func.sum(b.c.size), 0), BigInteger))
            .select_from(mr.join(b, b.c.digest == mr.c.child_digest))
            .where(
                mr.c.repository_id == m.c.repository_id,
                mr.c.manifest_digest == m.c.digest,
                ~mr.c.is_manifest,
            )
            .scalar_subquery()
        )
        return select(
            m.c.digest,
            m.c.media_type,
            m.c.content,
            m.c.size,
            m.c.created_at,
            blob_bytes.label("blob_bytes"),
            m.c.delete_enabled,
            m.c.write_enabled,
            m.c.read_enabled,
            m.c.list_enabled,
        ).where(m.c.repository_id == repository_id)

    @staticmethod
    def _listed(rows: Any) -> list[tuple[ManifestRecord, int, datetime, Attributes]]:
        return [
            (
                ManifestRecord(r.digest, r.media_type, r.content),
                r.size + r.blob_bytes,
                as_utc(r.created_at),
                _attributes(r),
            )
            for r in rows
        ]

    async def manifests_page(
        self, repository_id: int, order: ListingOrder, last: str | None, limit: int
    ) -> list[tuple[ManifestRecord, int, datetime, Attributes]]:
        """One page of a repository's listable manifests (keyed by digest, timed by
        creation), each with its imageSize, creation time and changeable attributes."""
        m = s.manifests
        anchor = and_(m.c.repository_id == repository_id, m.c.digest == last)
        # Sort narrow rows, then size and fetch only the page: sorting the full rows would
        # compute every manifest's imageSize and carry its bytes through the sorter.
        keys = await self._page(
            select(m.c.digest).where(m.c.repository_id == repository_id, m.c.list_enabled),
            m.c.digest,
            m.c.created_at,
            anchor,
            order,
            last,
            limit,
        )
        digests = [r.digest for r in keys]
        if not digests:
            return []
        rows = await self._exec(
            self._manifest_listing(repository_id).where(m.c.digest.in_(digests))
        )
        by_digest = {r.digest: r for r in rows}
        return self._listed(by_digest[d] for d in digests if d in by_digest)

    async def manifest_listing(
        self, repository_id: int, digest: Digest
    ) -> tuple[ManifestRecord, int, datetime, Attributes] | None:
        """One manifest of a repository with its imageSize, creation time and changeable
        attributes, or None."""
        rows = await self._exec(
            self._manifest_listing(repository_id).where(s.manifests.c.digest == digest)
        )
        listed = self._listed(rows)
        return listed[0] if listed else None

    async def tags_on(
        self, repository_id: int, digests: Iterable[Digest]
    ) -> dict[Digest, list[str]]:
        """Tag names (sorted) on each of `digests` that has any, keyed by the tags' digest index."""
        wanted = list(set(digests))
        if not wanted:
            return {}
        t = s.tags
        rows = await self._exec(
            select(t.c.name, t.c.digest)
            .where(t.c.repository_id == repository_id, t.c.digest.in_(wanted))
            .order_by(t.c.name)
        )
        found: dict[Digest, list[str]] = {}
        for r in rows:
            found.setdefault(r.digest, []).append(r.name)
        return found

    async def repository_summary(
        self, repository_id: int
    ) -> tuple[int, int, datetime | None, datetime | None]:
        """(manifest count, tag count, first, last change) of a repository: the earliest and
        latest of its manifests' creation and its tags' last update; None when empty."""
        m, t = s.manifests, s.tags
        manifests = select(
            func.count().label("n"),
            func.min(m.c.created_at).label("first"),
            func.max(m.c.created_at).label("last"),
        ).where(m.c.repository_id == repository_id)
        tags = select(
            func.count().label("n"),
            func.min(t.c.updated_at).label("first"),
            func.max(t.c.updated_at).label("last"),
        ).where(t.c.repository_id == repository_id)
        mrow = (await self._exec(manifests)).one()
        trow = (await self._exec(tags)).one()
        firsts = [as_utc(v) for v in (mrow.first, trow.first) if v is not None]
        lasts = [as_utc(v) for v in (mrow.last, trow.last) if v is not None]
        return (
            mrow.n,
            trow.n,
            min(firsts) if firsts else None,
            max(lasts) if lasts else None,
        )

    async def delete_repository(self, repository_id: int) -> tuple[list[Digest], list[str]]:
        """Remove a repository with its tags, manifests and blob links; returns (manifest
        digests, tag names) deleted."""
        tags = [
            r.name
            for r in await self._exec(
                select(s.tags.c.name).where(s.tags.c.repository_id == repository_id)
            )
        ]
        digests = [
            r.digest
            for r in await self._exec(
                select(s.manifests.c.digest).where(s.manifests.c.repository_id == repository_id)
            )
        ]
        await self._exec(delete(s.tags).where(s.tags.c.repository_id == repository_id))
        await self._exec(delete(s.manifests).where(s.manifests.c.repository_id == repository_id))
        await self._exec(
            delete(s.repository_blobs).where(s.repository_blobs.c.repository_id == repository_id)
        )
        await self._exec(delete(s.repositories).where(s.repositories.c.id == repository_id))
        return digests, tags

    # -- tags --------------------------------------------------------------------------------
    async def set_tag(self, repository_id: int, name: str, digest: Digest) -> None:
        now = utcnow()
        stmt = self._insert(s.tags).values(
            repository_id=repository_id, name=name, digest=digest, created_at=now, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["repository_id", "name"],
            set_={"digest": stmt.excluded.digest, "updated_at": now},
        )
        await self._exec(stmt)

    async def tag_digest(self, repository_id: int, name: str) -> Digest | None:
        t = s.tags
        return (
            await self._exec(
                select(t.c.digest).where(t.c.repository_id == repository_id, t.c.name == name)
            )
        ).scalar()

    async def delete_tag(self, repository_id: int, name: str) -> bool:
        result = await self._exec(
            delete(s.tags).where(s.tags.c.repository_id == repository_id, s.tags.c.name == name)
        )
        return bool(result.rowcount)

    async def list_tags(self, repository_id: int, last: str | None, limit: int) -> list[str]:
        """Listable tag names after `last`, lexically, at most `limit`."""
        t = s.tags
        stmt = select(t.c.name).where(t.c.repository_id == repository_id, t.c.list_enabled)
        if last is not None:
            stmt = stmt.where(t.c.name > last)
        rows = await self._exec(stmt.order_by(t.c.name).limit(limit))
        return [r.name for r in rows]

    async def tags_of(self, repository_id: int) -> list[TagRecord]:
        t = s.tags
        rows = await self._exec(
            select(t).where(t.c.repository_id == repository_id).order_by(t.c.name)
        )
        return [_tag_record(r) for r in rows]

    async def tags_page(
        self, repository_id: int, order: ListingOrder, last: str | None, limit: int
    ) -> list[TagRecord]:
        """One page of a repository's listable tags (keyed by name, timed by last update)."""
        t = s.tags
        anchor = and_(t.c.repository_id == repository_id, t.c.name == last)
        rows = await self._page(
            select(t).where(t.c.repository_id == repository_id, t.c.list_enabled),
            t.c.name,
            t.c.updated_at,
            anchor,
            order,
            last,
            limit,
        )
        return [_tag_record(r) for r in rows]

    async def tag(self, repository_id: int, name: str) -> TagRecord | None:
        t = s.tags
        row = (
            await self._exec(select(t).where(t.c.repository_id == repository_id, t.c.name == name))
        ).first()
        return None if row is None else _tag_record(row)

    # -- changeable attributes (image locking) -----------------------------------------------
    @staticmethod
    def _attribute_row(
        subject: AttributeSubject, repository_id: int, key: str | Digest | None
    ) -> Any:
        """(table, WHERE clause) of the row carrying `subject`'s attributes: the repository,
        the tag named `key`, or the manifest whose digest is `key`."""
        if subject == "repository":
            return s.repositories, s.repositories.c.id == repository_id
        if subject == "tag":
            t = s.tags
            return t, and_(t.c.repository_id == repository_id, t.c.name == key)
        m = s.manifests
        return m, and_(m.c.repository_id == repository_id, m.c.digest == key)

    async def attributes(
        self, subject: AttributeSubject, repository_id: int, key: str | Digest | None = None
    ) -> Attributes | None:
        """The changeable attributes of a repository, tag or manifest; None when absent."""
        table, where = self._attribute_row(subject, repository_id, key)
        row = (
            await self._exec(
                select(*(table.c[name] for name in s.CHANGEABLE_ATTRIBUTES)).where(where)
            )
        ).first()
        return None if row is None else _attributes(row)

    async def set_attributes(
        self,
        subject: AttributeSubject,
        repository_id: int,
        key: str | Digest | None,
        changes: dict[str, bool],
    ) -> Attributes | None:
        """Change some of the attributes (keys of `changes` are column names of
        `schema.CHANGEABLE_ATTRIBUTES`); the attributes after the change, or None when the
        row is absent. Raises ValueError for another key."""
        unknown = set(changes) - set(s.CHANGEABLE_ATTRIBUTES)
        if unknown:
            raise ValueError(f"not changeable attributes: {sorted(unknown)}")
        if not changes:
            return await self.attributes(subject, repository_id, key)
        table, where = self._attribute_row(subject, repository_id, key)
        row = (
            await self._exec(
                update(table)
                .where(where)
                .values(**changes)
                .returning(*(table.c[name] for name in s.CHANGEABLE_ATTRIBUTES))
            )
        ).first()
        return None if row is None else _attributes(row)

    async def deletion_locked(self, repository_id: int, digest: Digest) -> bool:
        """Whether deleting the manifest is forbidden: it, a tag on it or its repository
        has deleteEnabled or writeEnabled false."""
        m, t, repo = s.manifests, s.tags, s.repositories
        stmt = select(
            exists().where(repo.c.id == repository_id, locked(repo))
            | exists().where(m.c.repository_id == repository_id, m.c.digest == digest, locked(m))
            | exists().where(t.c.repository_id == repository_id, t.c.digest == digest, locked(t))
        )
        return bool((await self._exec(stmt)).scalar())

    async def locked_tags(
        self, repository_id: int, *, digest: Digest | None = None, limit: int = 1
    ) -> list[str]:
        """Names of tags locked against deletion in the repository (only those on `digest`,
        when given), at most `limit`, by name."""
        t = s.tags
        stmt = select(t.c.name).where(t.c.repository_id == repository_id, locked(t))
        if digest is not None:
            stmt = stmt.where(t.c.digest == digest)
        return [r.name for r in await self._exec(stmt.order_by(t.c.name).limit(limit))]

    async def locked_manifests(self, repository_id: int, *, limit: int = 1) -> list[Digest]:
        """Digests of manifests locked against deletion in the repository, at most `limit`."""
        m = s.manifests
        rows = await self._exec(
            select(m.c.digest)
            .where(m.c.repository_id == repository_id, locked(m))
            .order_by(m.c.digest)
            .limit(limit)
        )
        return [r.digest for r in rows]

    # -- uploads -----------------------------------------------------------------------------
    @staticmethod
    def _upload(row: Row[Any]) -> UploadRecord:
        return UploadRecord(
            row.id,
            row.registry_id,
            row.repository,
            row.offset,
            row.algorithm,
            as_utc(row.created_at),
            as_utc(row.updated_at),
        )

    async def create_upload(
        self, upload_id: str, registry_id: int, repository: str, algorithm: str
    ) -> None:
        now = utcnow()
        await self._exec(
            insert(s.uploads).values(
                id=upload_id,
                registry_id=registry_id,
                repository=repository,
                offset=0,
                algorithm=algorithm,
                created_at=now,
                updated_at=now,
            )
        )

    async def upload(self, upload_id: str) -> UploadRecord | None:
        row = (await self._exec(select(s.uploads).where(s.uploads.c.id == upload_id))).first()
        return None if row is None else self._upload(row)

    async def advance_upload(self, upload_id: str, expected: int, offset: int) -> bool:
        """Move the offset forward only if nobody else did (compare-and-set)."""
        result = await self._exec(
            update(s.uploads)
            .where(s.uploads.c.id == upload_id, s.uploads.c.offset == expected)
            .values(offset=offset, updated_at=utcnow())
        )
        return bool(result.rowcount)

    async def delete_upload(self, upload_id: str) -> bool:
        result = await self._exec(delete(s.uploads).where(s.uploads.c.id == upload_id))
        return bool(result.rowcount)

    async def uploads_idle_since(self, cutoff: datetime) -> list[UploadRecord]:
        rows = await self._exec(select(s.uploads).where(s.uploads.c.updated_at < cutoff))
        return [self._upload(r) for r in rows]

    async def upload_ids(self) -> set[str]:
        return {r.id for r in await self._exec(select(s.uploads.c.id))}

    # -- garbage collection ------------------------------------------------------------------
    async def unreferenced_links(self, cutoff: datetime) -> list[tuple[int, Digest]]:
        """Repository↔blob links older than `cutoff` that no manifest of the repository needs."""
        rb, mr = s.repository_blobs, s.manifest_references
        needed = exists().where(
            mr.c.repository_id == rb.c.repository_id, mr.c.child_digest == rb.c.digest
        )
        statement = select(rb.c.repository_id, rb.c.digest).where(rb.c.linked_at < cutoff, ~needed)
        return [(r.repository_id, r.digest) async for r in self._scan(statement)]

    async def drop_link_if_unreferenced(
        self, repository_id: int, digest: Digest, cutoff: datetime
    ) -> bool:
        rb, mr = s.repository_blobs, s.manifest_references
        needed = exists().where(mr.c.repository_id == repository_id, mr.c.child_digest == digest)
        result = await self._exec(
            delete(rb).where(
                rb.c.repository_id == repository_id,
                rb.c.digest == digest,
                rb.c.linked_at < cutoff,
                ~needed,
            )
        )
        return bool(result.rowcount)

    async def orphan_blobs(self, cutoff: datetime) -> list[tuple[Digest, int]]:
        """Blobs no repository links, committed before `cutoff`."""
        b, rb = s.blobs, s.repository_blobs
        pinned = exists().where(s.blob_pins.c.digest == b.c.digest)
        statement = select(b.c.digest, b.c.size).where(
            b.c.created_at < cutoff, ~exists().where(rb.c.digest == b.c.digest), ~pinned
        )
        return [(r.digest, r.size) async for r in self._scan(statement)]

    async def delete_blob_row_if_orphan(self, digest: Digest, cutoff: datetime) -> bool:
        b, rb = s.blobs, s.repository_blobs
        try:
            async with self._nested():
                result = await self._exec(
                    delete(b).where(
                        b.c.digest == digest,
                        b.c.created_at < cutoff,
                        ~exists().where(rb.c.digest == digest),
                        ~exists().where(s.blob_pins.c.digest == digest),
                    )
                )
        except Conflict:
            return False  # a concurrent link or pin won the race
        return bool(result.rowcount)

    async def link_holders(self, digest: Digest) -> set[int]:
        rb = s.repository_blobs
        return {
            r.repository_id
            for r in await self._exec(select(rb.c.repository_id).where(rb.c.digest == digest))
        }

    # -- consistency checks ------------------------------------------------------------------
    async def all_blobs(self) -> list[tuple[Digest, int]]:
        return [
            (r.digest, r.size) for r in await self._exec(select(s.blobs.c.digest, s.blobs.c.size))
        ]

    async def all_uploads(self) -> list[UploadRecord]:
        return [self._upload(r) for r in await self._exec(select(s.uploads))]

    async def dangling_tags(self) -> list[tuple[str, str, Digest]]:
        """(repository, tag, digest) of tags whose manifest row is missing."""
        t, m, repo = s.tags, s.manifests, s.repositories
        rows = await self._exec(
            select(repo.c.name, t.c.name.label("tag"), t.c.digest)
            .select_from(t.join(repo, repo.c.id == t.c.repository_id))
            .where(
                ~exists().where(m.c.repository_id == t.c.repository_id, m.c.digest == t.c.digest)
            )
        )
        return [(r.name, r.tag, r.digest) for r in rows]

    async def missing_references(self) -> list[tuple[str, Digest, Digest, bool]]:
        """(repository, manifest, child, is_manifest) for each reference the repository lacks."""
        mr, m, rb, repo = s.manifest_references, s.manifests, s.repository_blobs, s.repositories
        blob_missing = ~mr.c.is_manifest & ~exists().where(
            rb.c.repository_id == mr.c.repository_id, rb.c.digest == mr.c.child_digest
        )
        child_missing = mr.c.is_manifest & ~exists().where(
            m.c.repository_id == mr.c.repository_id, m.c.digest == mr.c.child_digest
        )
        rows = await self._exec(
            select(repo.c.name, mr.c.manifest_digest, mr.c.child_digest, mr.c.is_manifest)
            .select_from(mr.join(repo, repo.c.id == mr.c.repository_id))
            .where(blob_missing | child_missing)
        )
        return [(r.name, r.manifest_digest, r.child_digest, r.is_manifest) for r in rows]

    async def count_manifests(self) -> int:
        return (await self._exec(select(func.count()).select_from(s.manifests))).scalar_one()

    async def count_tags(self) -> int:
        return (await self._exec(select(func.count()).select_from(s.tags))).scalar_one()

    async def blob_digests(self) -> set[Digest]:
        return {r.digest async for r in self._scan(select(s.blobs.c.digest))}


class Transaction(RegistryQueries):
    """What the store's scopes yield: one connection (a read snapshot or a write
    transaction) with every query group on it. The registry queries are its own methods;
    `identity` and `jobs` share its connection and commit callbacks, so a write that spans
    groups is one transaction and no caller wraps a connection in a group of its own."""

    @cached_property
    def identity(self) -> IdentityQueries:
        """Tenancy, principals, roles, signing keys, per-registry access."""
        group: IdentityQueries = IdentityQueries.joining(self)
        return group

    @cached_property
    def budgets(self) -> BudgetQueries:
        """Upstream rate-limit budgets."""
        group: BudgetQueries = BudgetQueries.joining(self)
        return group

    @cached_property
    def jobs(self) -> JobQueries:
        """Import jobs and the blob pins they hold."""
        group: JobQueries = JobQueries.joining(self)
        return group

    @cached_property
    def batches(self) -> BatchQueries:
        """Batch imports and their items (each an import job)."""
        group: BatchQueries = BatchQueries.joining(self)
        return group
