"""`transship.metadata`: Database, MetadataStore, its Transaction and RegistryQueries on
SQLite and PostgreSQL.

Every test runs twice through the `database_url` fixture of tests/conftest.py: once on a
SQLite file in tmp_path, once on a fresh PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from transship.errors import Conflict
from transship.metadata.db import Database, DatabaseUrlError, async_url
from transship.metadata.queries import BlobMissing, MetadataStore, RegistryQueries
from transship.metadata.records import ManifestReference, RegistryRecord
from transship.metadata.schema import DigestType
from transship.metadata.scope import SCAN_SLICE, utcnow
from transship.oci.digest import Digest, DigestError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PAST = datetime(2000, 1, 1, tzinfo=UTC)


def digest(label: str) -> Digest:
    return Digest.of(label.encode())


def future() -> datetime:
    return utcnow() + timedelta(hours=1)


async def tick() -> datetime:
    """Wait until the clock has moved past its reading at the call, and return the new
    reading: every timestamp taken before the call is strictly earlier, every one taken
    after the return at least as late. Waits on the clock itself (microseconds), not for a
    guessed time."""
    start = utcnow()
    while (now := utcnow()) <= start:
        await asyncio.sleep(0)
    return now


def assert_utc_now(value: datetime) -> None:
    """Aware, UTC, and actually now (not local wall-clock time labelled UTC)."""
    assert value.tzinfo is not None, value
    assert value.utcoffset() == timedelta(0), value
    assert abs(utcnow() - value) < timedelta(minutes=5), value


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def url(database_url: str | None, tmp_path: Path) -> str:
    return database_url or f"sqlite:///{tmp_path}/m.db"


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    database = Database(url, durable=False)
    await database.migrate()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def store(db: Database) -> MetadataStore:
    return MetadataStore(db)


@pytest.fixture
async def registry(store: MetadataStore) -> RegistryRecord:
    async with store.writing() as q:
        return await q.ensure_default_registry("default")


async def add_manifest(
    q: RegistryQueries,
    repo_id: int,
    label: str,
    *,
    blobs: Sequence[str] = (),
    children: Sequence[str] = (),
    subject: str | None = None,
    artifact_type: str | None = None,
    media_type: str = OCI_MANIFEST,
) -> str:
    content = json.dumps({"label": label}).encode()
    manifest_digest = digest(label)
    references = [ManifestReference(b, False) for b in blobs] + [
        ManifestReference(c, True) for c in children
    ]
    await q.insert_manifest(
        repo_id,
        manifest_digest,
        media_type,
        content,
        artifact_type,
        subject,
        json.dumps({"l": label}),
        references,
    )
    return manifest_digest


# -- database and migrations ------------------------------------------------------------------


def test_async_url() -> None:
    assert async_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert async_url("postgresql://u:p@h:5/d") == "postgresql+asyncpg://u:p@h:5/d"
    assert async_url("postgres://u@h/d").startswith("postgresql+asyncpg://")
    with pytest.raises(DatabaseUrlError, match="mysql"):
        async_url("mysql://u@h/d")


async def test_migrate_twice_is_idempotent(
    db: Database, store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "keep/me")
    await db.migrate()
    await db.migrate()
    async with db.read() as conn:
        versions = (
            (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        )
    assert len(versions) == 1
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "keep/me") == repo_id  # data survives


@pytest.mark.empty_database
async def test_concurrent_migrations_on_a_fresh_database(
    url: str, database_url: str | None
) -> None:
    databases = [Database(url, durable=False) for _ in range(3)]
    try:
        results = await asyncio.gather(*(d.migrate() for d in databases), return_exceptions=True)
        assert results == [None, None, None]
        store = MetadataStore(databases[0])
        async with store.writing() as q:
            first = await q.ensure_default_registry("default")
        async with MetadataStore(databases[1]).writing() as q:
            assert await q.ensure_default_registry("default") == first
    finally:
        for d in databases:
            await d.close()


async def test_sqlite_first_start_waits_for_another_writer(tmp_path: Path) -> None:
    """Two processes starting at once on a new SQLite file: while the other one holds a write
    transaction (before the file is in WAL mode), `migrate` must wait its turn, not fail with
    "database is locked" from the connect-time `PRAGMA journal_mode=WAL`."""
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE other_process_was_here (x INTEGER)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    db = Database(f"sqlite:///{path}", durable=False)
    try:
        await db.migrate()
        async with MetadataStore(db).writing() as q:
            assert (await q.ensure_default_registry("default")).is_default
    finally:
        release.join()
        other.close()
        await db.close()


# -- registries -------------------------------------------------------------------------------


async def test_default_registry_created_once(store: MetadataStore) -> None:
    async with store.writing() as q:
        first = await q.ensure_default_registry("default")
    async with store.writing() as q:
        again = await q.ensure_default_registry("default")
        # Another name later does not make a second default.
        other_name = await q.ensure_default_registry("renamed")
    assert first.is_default
    assert again == first
    assert other_name == first
    async with store.reading() as q:
        registries = await q.registries()
    assert registries == [first]
    assert_utc_now(first.created_at)


async def test_default_registry_adopts_an_existing_registry_of_that_name(
    store: MetadataStore,
) -> None:
    async with store.writing() as q:
        created = await q.create_registry("main", "main.localhost:5000")
    assert not created.is_default
    async with store.writing() as q:
        default = await q.ensure_default_registry("main")
    assert default.id == created.id
    assert default.is_default
    assert default.login_server == "main.localhost:5000"
    async with store.reading() as q:
        assert len(await q.registries()) == 1


async def test_create_registry(store: MetadataStore, registry: RegistryRecord) -> None:
    async with store.writing() as q:
        record = await q.create_registry("myreg", "myreg.localhost:5000", "sub-1", "rg-1")
    assert record.name == "myreg"
    assert record.login_server == "myreg.localhost:5000"
    assert (record.subscription_id, record.resource_group) == ("sub-1", "rg-1")
    assert not record.is_default
    assert record.id != registry.id
    assert_utc_now(record.created_at)
    async with store.reading() as q:
        assert [r.name for r in await q.registries()] == ["default", "myreg"]  # ordered by name


async def test_create_registry_duplicate_name_is_a_conflict(store: MetadataStore) -> None:
    async with store.writing() as q:
        await q.create_registry("dup", "a.localhost")
    with pytest.raises(Conflict):
        async with store.writing() as q:
            await q.create_registry("dup", "b.localhost")
    async with store.reading() as q:
        assert [(r.name, r.login_server) for r in await q.registries()] == [("dup", "a.localhost")]


async def test_create_registry_duplicate_login_server_is_a_conflict(store: MetadataStore) -> None:
    async with store.writing() as q:
        await q.create_registry("one", "same.localhost:5000")
    with pytest.raises(Conflict):
        async with store.writing() as q:
            await q.create_registry("two", "same.localhost:5000")
    async with store.reading() as q:
        assert [r.name for r in await q.registries()] == ["one"]


async def test_registries_without_login_server_do_not_collide(store: MetadataStore) -> None:
    async with store.writing() as q:
        await q.create_registry("a", None)
        await q.create_registry("b", None)
    async with store.reading() as q:
        assert [r.login_server for r in await q.registries()] == [None, None]


async def test_failed_write_scope_rolls_back_everything(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    with pytest.raises(Conflict):
        async with store.writing() as q:
            await q.ensure_repository(registry.id, "rolled/back")
            await q.create_registry("default", None)  # name taken
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "rolled/back") is None


async def test_a_conflict_quotes_no_value_and_keeps_the_driver_error_as_cause(
    store: MetadataStore,
) -> None:
    """IntegrityError never leaves metadata/; the Conflict names no value written."""
    async with store.writing() as q:
        await q.create_registry("secretname", "secret-host.localhost")
    with pytest.raises(Conflict) as raised:
        async with store.writing() as q:
            await q.create_registry("secretname", "other.localhost")
    assert "secret" not in str(raised.value)
    assert type(raised.value.__cause__).__name__ == "IntegrityError"


async def test_a_scope_joined_with_within_commits_and_rolls_back_with_its_caller(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    committed: list[str] = []
    with pytest.raises(RuntimeError):
        async with store.writing() as outer:
            await outer.ensure_repository(registry.id, "outer")
            async with store.writing(outer) as inner:
                assert inner is outer
                await inner.ensure_repository(registry.id, "inner")
                inner.on_commit(lambda: committed.append("inner"))
            raise RuntimeError("a later step fails")
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "inner") is None
        assert await q.repository_id(registry.id, "outer") is None
    assert committed == []  # rolled back: no callback

    async with store.writing() as outer:
        async with store.writing(outer) as inner:
            await inner.ensure_repository(registry.id, "inner")
            inner.on_commit(lambda: committed.append("inner"))
        assert committed == []  # not before the caller's commit
    assert committed == ["inner"]
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "inner") is not None


# -- repositories -----------------------------------------------------------------------------


async def test_ensure_repository_is_idempotent(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        first = await q.ensure_repository(registry.id, "team/app")
        again = await q.ensure_repository(registry.id, "team/app")
        other = await q.ensure_repository(registry.id, "team/other")
    async with store.writing() as q:
        later = await q.ensure_repository(registry.id, "team/app")
    assert first == again == later
    assert other != first
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "team/app") == first
        assert await q.repository_id(registry.id, "team/missing") is None


async def test_same_repository_name_in_two_registries(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        second = await q.create_registry("second", "second.localhost")
        a = await q.ensure_repository(registry.id, "app")
        b = await q.ensure_repository(second.id, "app")
    assert a != b
    async with store.reading() as q:
        assert await q.repository_id(second.id, "app") == b


async def test_lock_repository_in_a_write_scope(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "locked")
        await q.lock_repository(repo_id, exclusive=True)
        await q.lock_repository(repo_id, exclusive=False)
        assert await q.repository_id(registry.id, "locked") == repo_id


# -- blobs and links --------------------------------------------------------------------------


async def test_record_link_and_unlink_blob(store: MetadataStore, registry: RegistryRecord) -> None:
    blob = digest("layer")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        other_id = await q.ensure_repository(registry.id, "other")
        await q.record_blob(blob, 1234)
        await q.link_blob(repo_id, blob)
        await q.link_blob(repo_id, blob)  # idempotent
    async with store.reading() as q:
        assert await q.blob_size(blob) == 1234
        assert await q.blob_size(digest("absent")) is None
        assert await q.repository_blob_size(registry.id, "app", blob) == 1234
        assert await q.repository_blob_size(registry.id, "other", blob) is None
        assert await q.repository_blob_size(registry.id, "missing", blob) is None
        assert await q.link_holders(blob) == {repo_id}
        assert await q.jobs.linked_blobs([blob, digest("absent")], registry.id) == {blob}
        assert await q.jobs.linked_blobs([blob], registry.id + 1000) == set()
        assert await q.jobs.linked_blobs([blob], registry.id + 1000, (registry.id, "app")) == {blob}
        assert (
            await q.jobs.linked_blobs([blob], registry.id + 1000, (registry.id, "other")) == set()
        )
    async with store.writing() as q:
        assert await q.unlink_blob(registry.id, "app", blob) is True
        assert await q.unlink_blob(registry.id, "app", blob) is False
        assert await q.unlink_blob(registry.id, "no-such-repo", blob) is False
        assert await q.unlink_blob(registry.id, "other", blob) is False
    async with store.reading() as q:
        assert await q.repository_blob_size(registry.id, "app", blob) is None
        assert await q.blob_size(blob) == 1234  # the blob row outlives its links
        assert await q.link_holders(blob) == set()
    assert other_id != repo_id


async def test_record_blob_twice_keeps_one_row(store: MetadataStore) -> None:
    blob = digest("twice")
    async with store.writing() as q:
        await q.record_blob(blob, 10)
    async with store.writing() as q:
        await q.record_blob(blob, 10)
    async with store.reading() as q:
        assert await q.blob_size(blob) == 10
        assert [d for d, _ in await q.all_blobs() if d == blob] == [blob]


async def test_record_blob_refreshes_created_at(store: MetadataStore) -> None:
    # Re-recording protects a blob being re-committed from the orphan sweep.
    blob = digest("refresh")
    async with store.writing() as q:
        await q.record_blob(blob, 1)
    between = await tick()
    await tick()
    async with store.reading() as q:
        assert blob in {d for d, _ in await q.orphan_blobs(between)}
    async with store.writing() as q:
        await q.record_blob(blob, 1)
    async with store.reading() as q:
        assert blob not in {d for d, _ in await q.orphan_blobs(between)}


async def test_link_blob_to_missing_blob_raises_and_keeps_the_transaction(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    present = digest("present")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        with pytest.raises(BlobMissing):
            await q.link_blob(repo_id, digest("missing"))
        # The transaction is still usable and commits what came before and after.
        await q.record_blob(present, 5)
        await q.link_blob(repo_id, present)
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "app") == repo_id
        assert await q.repository_blob_size(registry.id, "app", present) == 5
        assert await q.link_holders(digest("missing")) == set()


async def test_link_blobs_links_many_in_batches_and_is_idempotent(
    store: MetadataStore, registry: RegistryRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("transship.metadata.queries._LINK_BATCH", 3)  # several statements
    blobs = [digest(f"many-{i}") for i in range(7)]
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        for i, blob in enumerate(blobs):
            await q.record_blob(blob, i + 1)
        await q.link_blob(repo_id, blobs[4])  # one already linked
        await q.link_blobs(repo_id, [*blobs, blobs[0]])  # and one listed twice
        await q.link_blobs(repo_id, blobs)  # again: nothing changes
        await q.link_blobs(repo_id, [])
    async with store.reading() as q:
        for i, blob in enumerate(blobs):
            assert await q.repository_blob_size(registry.id, "app", blob) == i + 1
            assert await q.link_holders(blob) == {repo_id}


async def test_link_blobs_names_a_missing_blob_and_keeps_the_transaction(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    present, missing, later = digest("p"), digest("gone"), digest("later")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.record_blob(present, 5)
        await q.record_blob(later, 6)
        with pytest.raises(BlobMissing) as caught:
            await q.link_blobs(repo_id, [present, missing, later])
        assert str(caught.value) == str(missing)
        await q.link_blobs(repo_id, [later])  # the transaction is still usable
    async with store.reading() as q:
        assert await q.repository_blob_size(registry.id, "app", later) == 6
        assert await q.link_holders(missing) == set()


async def test_touch_links(store: MetadataStore, registry: RegistryRecord) -> None:
    a, b, absent = digest("a"), digest("b"), digest("absent")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        other_id = await q.ensure_repository(registry.id, "other")
        for blob in (a, b):
            await q.record_blob(blob, 1)
        await q.link_blob(repo_id, a)
        await q.link_blob(other_id, b)
    cutoff = await tick()
    await tick()
    async with store.writing() as q:
        assert await q.touch_links(repo_id, [a, a, b, absent]) == {a}  # only this repo's links
        assert await q.touch_links(repo_id, []) == set()
    async with store.reading() as q:
        # The touched link is younger than the cutoff now; the other one is not.
        assert await q.unreferenced_links(cutoff) == [(other_id, b)]


# -- manifests, references, tags --------------------------------------------------------------


async def test_insert_manifest_and_references(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    config, layer = digest("config"), digest("layer")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        for blob in (config, layer):
            await q.record_blob(blob, 1)
            await q.link_blob(repo_id, blob)
        image = await add_manifest(q, repo_id, "image", blobs=[config, layer, layer])
        index = await add_manifest(q, repo_id, "index", children=[image], media_type=OCI_INDEX)
        # Inserting the same manifest again is a no-op that says so.
        assert not await q.insert_manifest(
            repo_id, image, OCI_MANIFEST, b"other", None, None, None, []
        )
    async with store.reading() as q:
        assert await q.existing_manifests(repo_id, [image, index, digest("nope")]) == {image, index}
        assert await q.existing_manifests(repo_id, []) == set()
        assert await q.blob_referenced_in(repo_id, layer) == image
        assert await q.blob_referenced_in(repo_id, digest("nope")) is None
        assert await q.manifest_parent(repo_id, image) == index
        assert await q.manifest_parent(repo_id, index) is None
        assert await q.manifest_parent(repo_id, layer) is None  # a blob, not a child manifest
        record = await q.manifest(registry.id, "app", image)
    assert record is not None
    assert record.content == json.dumps({"label": "image"}).encode()  # first insert wins
    assert (record.digest, record.media_type) == (image, OCI_MANIFEST)


async def test_manifest_bytes_are_stored_exactly(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    content = b'{\n  "schemaVersion" : 2,\t"x": "\\u00e9\xc3\xa9"\n}\n\x00\xff'
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.insert_manifest(repo_id, digest("raw"), OCI_MANIFEST, content, None, None, None, [])
    async with store.reading() as q:
        record = await q.manifest(registry.id, "app", digest("raw"))
    assert record is not None and record.content == content


async def test_manifest_by_tag_and_by_digest(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        other_reg = await q.create_registry("other", "other.localhost")
        other_repo = await q.ensure_repository(other_reg.id, "app")
        m = await add_manifest(q, repo_id, "m")
        await q.set_tag(repo_id, "v1", m)
        await add_manifest(q, other_repo, "elsewhere")
    async with store.reading() as q:
        by_tag = await q.manifest(registry.id, "app", "v1")
        by_digest = await q.manifest(registry.id, "app", m)
        assert by_tag == by_digest
        assert by_tag is not None and by_tag.digest == m
        assert await q.manifest(registry.id, "app", "v2") is None
        assert await q.manifest(registry.id, "app", str(m)) is None  # a digest's text is no tag
        assert await q.manifest(registry.id, "missing", m) is None
        # Registries are isolated.
        assert await q.manifest(other_reg.id, "app", m) is None
        assert await q.manifest(registry.id, "app", digest("elsewhere")) is None


async def test_tags(store: MetadataStore, registry: RegistryRecord) -> None:
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        m1 = await add_manifest(q, repo_id, "m1")
        m2 = await add_manifest(q, repo_id, "m2")
        for name in ("b", "a", "d", "c", "e"):
            await q.set_tag(repo_id, name, m1)
    async with store.reading() as q:
        assert await q.tag_digest(repo_id, "a") == m1
        assert await q.tag_digest(repo_id, "zzz") is None
        # Pagination: lexical order, `last` exclusive.
        assert await q.list_tags(repo_id, None, 100) == ["a", "b", "c", "d", "e"]
        assert await q.list_tags(repo_id, None, 2) == ["a", "b"]
        assert await q.list_tags(repo_id, "b", 2) == ["c", "d"]
        assert await q.list_tags(repo_id, "d", 2) == ["e"]
        assert await q.list_tags(repo_id, "e", 2) == []
        assert await q.list_tags(repo_id, "bb", 10) == ["c", "d", "e"]  # `last` need not exist
        before = {t.name: t for t in await q.tags_of(repo_id)}
    await tick()
    async with store.writing() as q:
        await q.set_tag(repo_id, "a", m2)  # move
    async with store.reading() as q:
        assert await q.tag_digest(repo_id, "a") == m2
        after = {t.name: t for t in await q.tags_of(repo_id)}
    assert after["a"].created_at == before["a"].created_at
    assert after["a"].updated_at > before["a"].updated_at
    assert after["b"] == before["b"]
    for tag in after.values():
        assert_utc_now(tag.created_at)
        assert_utc_now(tag.updated_at)
    async with store.writing() as q:
        assert await q.delete_tag(repo_id, "a") is True
        assert await q.delete_tag(repo_id, "a") is False
        assert await q.delete_tag(repo_id, "never") is False
    async with store.reading() as q:
        assert await q.list_tags(repo_id, None, 100) == ["b", "c", "d", "e"]
        assert await q.manifest(registry.id, "app", m2) is not None  # manifest stays


async def test_tags_are_case_sensitive_and_per_repository(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        a = await q.ensure_repository(registry.id, "a")
        b = await q.ensure_repository(registry.id, "b")
        ma = await add_manifest(q, a, "ma")
        mb = await add_manifest(q, b, "mb")
        await q.set_tag(a, "Latest", ma)
        await q.set_tag(a, "latest", ma)
        await q.set_tag(b, "latest", mb)
    async with store.reading() as q:
        assert await q.list_tags(a, None, 10) == ["Latest", "latest"]
        assert await q.tag_digest(b, "latest") == mb
        assert await q.tag_digest(b, "Latest") is None


async def test_tag_must_point_at_a_manifest_of_the_repository(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        other_id = await q.ensure_repository(registry.id, "other")
        elsewhere = await add_manifest(q, other_id, "elsewhere")
    with pytest.raises(Conflict):
        async with store.writing() as q:
            await q.set_tag(repo_id, "v1", digest("never pushed"))
    with pytest.raises(Conflict):
        async with store.writing() as q:
            await q.set_tag(repo_id, "v1", elsewhere)
    async with store.reading() as q:
        assert await q.list_tags(repo_id, None, 10) == []


async def test_delete_manifest_removes_its_tags_and_references(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    layer = digest("layer")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.record_blob(layer, 1)
        await q.link_blob(repo_id, layer)
        m = await add_manifest(q, repo_id, "m", blobs=[layer])
        keep = await add_manifest(q, repo_id, "keep")
        await q.set_tag(repo_id, "v1", m)
        await q.set_tag(repo_id, "v2", m)
        await q.set_tag(repo_id, "stay", keep)
    async with store.writing() as q:
        assert await q.delete_manifest(repo_id, m) is True
        assert await q.delete_manifest(repo_id, m) is False
    async with store.reading() as q:
        assert await q.list_tags(repo_id, None, 10) == ["stay"]
        assert await q.manifest(registry.id, "app", m) is None
        assert await q.blob_referenced_in(repo_id, layer) is None
        assert await q.dangling_tags() == []


# -- referrers ----------------------------------------------------------------------------------


async def test_referrers(store: MetadataStore, registry: RegistryRecord) -> None:
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        subject = await add_manifest(q, repo_id, "subject")
        other_subject = await add_manifest(q, repo_id, "other-subject")
        sbom = await add_manifest(
            q, repo_id, "sbom", subject=subject, artifact_type="application/spdx+json"
        )
        await tick()
        sig = await add_manifest(
            q,
            repo_id,
            "sig",
            subject=subject,
            artifact_type="application/vnd.cncf.notary.signature",
        )
        await tick()
        sbom2 = await add_manifest(
            q, repo_id, "sbom2", subject=subject, artifact_type="application/spdx+json"
        )
        await add_manifest(
            q, repo_id, "unrelated", subject=other_subject, artifact_type="application/spdx+json"
        )
        other_repo = await q.ensure_repository(registry.id, "other")
        await add_manifest(
            q, other_repo, "other-repo-ref", subject=subject, artifact_type="application/spdx+json"
        )
    async with store.reading() as q:
        everything = await q.referrers(registry.id, "app", subject, None)
        sboms = await q.referrers(registry.id, "app", subject, "application/spdx+json")
        none = await q.referrers(registry.id, "app", subject, "application/unknown")
        no_subject = await q.referrers(registry.id, "app", digest("nothing"), None)
        missing_repo = await q.referrers(registry.id, "missing", subject, None)
    assert [r.digest for r in everything] == [sbom, sig, sbom2]  # oldest first
    assert [r.digest for r in sboms] == [sbom, sbom2]
    assert none == no_subject == missing_repo == []
    first = everything[0]
    assert first.media_type == OCI_MANIFEST
    assert first.artifact_type == "application/spdx+json"
    assert first.size == len(json.dumps({"label": "sbom"}).encode())
    assert first.annotations == json.dumps({"l": "sbom"})
    for summary in everything:
        assert_utc_now(summary.created_at)


# -- uploads --------------------------------------------------------------------------------


async def test_upload_lifecycle(store: MetadataStore, registry: RegistryRecord) -> None:
    upload_id = "0123456789abcdef0123456789abcdef"
    async with store.writing() as q:
        await q.create_upload(upload_id, registry.id, "team/app", "sha256")
    async with store.reading() as q:
        record = await q.upload(upload_id)
        assert await q.upload("f" * 32) is None
        assert await q.upload_ids() == {upload_id}
    assert record is not None
    assert (record.id, record.registry_id, record.repository, record.offset, record.algorithm) == (
        upload_id,
        registry.id,
        "team/app",
        0,
        "sha256",
    )
    assert_utc_now(record.created_at)
    assert_utc_now(record.updated_at)
    async with store.writing() as q:
        assert await q.advance_upload(upload_id, 0, 100) is True
        # Compare-and-set: a stale expected offset is refused and changes nothing.
        assert await q.advance_upload(upload_id, 0, 50) is False
        assert await q.advance_upload(upload_id, 99, 150) is False
        assert await q.advance_upload(upload_id, 100, 5_000_000_000) is True  # beyond 32 bits
        assert await q.advance_upload("f" * 32, 0, 1) is False
    async with store.reading() as q:
        advanced = await q.upload(upload_id)
    assert advanced is not None and advanced.offset == 5_000_000_000
    assert advanced.created_at == record.created_at
    assert advanced.updated_at >= record.updated_at
    async with store.writing() as q:
        assert await q.delete_upload(upload_id) is True
        assert await q.delete_upload(upload_id) is False
    async with store.reading() as q:
        assert await q.upload(upload_id) is None
        assert await q.upload_ids() == set()


async def test_duplicate_upload_id_is_integrity_error(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    upload_id = "a" * 32
    async with store.writing() as q:
        await q.create_upload(upload_id, registry.id, "app", "sha256")
    with pytest.raises(Conflict):
        async with store.writing() as q:
            await q.create_upload(upload_id, registry.id, "app", "sha512")


async def test_concurrent_advances_only_one_wins(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    upload_id = "b" * 32
    async with store.writing() as q:
        await q.create_upload(upload_id, registry.id, "app", "sha256")

    async def advance(to: int) -> bool:
        async with store.writing() as q:
            return await q.advance_upload(upload_id, 0, to)

    results = await asyncio.gather(*(advance(n) for n in (10, 20, 30, 40)))
    assert sorted(results) == [False, False, False, True]
    async with store.reading() as q:
        record = await q.upload(upload_id)
    assert record is not None
    assert record.offset == (10, 20, 30, 40)[results.index(True)]


async def test_uploads_idle_since(store: MetadataStore, registry: RegistryRecord) -> None:
    idle, busy = "c" * 32, "d" * 32
    async with store.writing() as q:
        await q.create_upload(idle, registry.id, "app", "sha256")
        await q.create_upload(busy, registry.id, "app", "sha256")
    cutoff = await tick()
    await tick()
    async with store.writing() as q:
        assert await q.advance_upload(busy, 0, 10)  # activity refreshes updated_at
    async with store.reading() as q:
        assert [u.id for u in await q.uploads_idle_since(cutoff)] == [idle]
        assert await q.uploads_idle_since(PAST) == []
        assert {u.id for u in await q.uploads_idle_since(future())} == {idle, busy}


async def test_cutoffs_compare_instants_not_wall_clock(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    """A cutoff is an aware datetime: the same instant written in another zone must select
    the same rows (PostgreSQL compares instants; SQLite must not compare wall-clock text)."""
    upload_id = "e" * 32
    blob = digest("zoned")
    async with store.writing() as q:
        await q.create_upload(upload_id, registry.id, "app", "sha256")
        await q.record_blob(blob, 1)
    cutoff = await tick()
    east = cutoff.astimezone(timezone(timedelta(hours=5)))  # same instant, wall clock 5h ahead
    west = cutoff.astimezone(timezone(timedelta(hours=-5)))  # same instant, wall clock 5h behind
    async with store.reading() as q:
        assert [u.id for u in await q.uploads_idle_since(cutoff)] == [upload_id]
        assert [u.id for u in await q.uploads_idle_since(east)] == [upload_id]
        assert [u.id for u in await q.uploads_idle_since(west)] == [upload_id]
        assert [d for d, _ in await q.orphan_blobs(west)] == [blob]


# -- garbage collection queries --------------------------------------------------------------


async def test_unreferenced_links_and_drop(store: MetadataStore, registry: RegistryRecord) -> None:
    used, unused = digest("used"), digest("unused")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        other_id = await q.ensure_repository(registry.id, "other")
        for blob in (used, unused):
            await q.record_blob(blob, 1)
            await q.link_blob(repo_id, blob)
        await q.link_blob(other_id, used)  # needed in `app`, not in `other`
        await add_manifest(q, repo_id, "m", blobs=[used])
    async with store.reading() as q:
        assert sorted(await q.unreferenced_links(future())) == sorted(
            [(repo_id, unused), (other_id, used)]
        )
        assert await q.unreferenced_links(PAST) == []  # grace period: nothing old enough
    async with store.writing() as q:
        assert await q.drop_link_if_unreferenced(repo_id, used, future()) is False  # still needed
        assert await q.drop_link_if_unreferenced(repo_id, unused, PAST) is False  # too young
        assert await q.drop_link_if_unreferenced(repo_id, unused, future()) is True
        assert await q.drop_link_if_unreferenced(repo_id, unused, future()) is False  # gone
        assert await q.drop_link_if_unreferenced(other_id, used, future()) is True
    async with store.reading() as q:
        assert await q.unreferenced_links(future()) == []
        assert await q.link_holders(used) == {repo_id}
        assert await q.link_holders(unused) == set()


async def test_manifest_child_references_protect_nothing_else(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    # A child manifest reference (is_manifest) of the same digest as a linked blob keeps the
    # link: unreferenced_links looks at every reference of the repository.
    blob = digest("dual")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.record_blob(blob, 1)
        await q.link_blob(repo_id, blob)
        await add_manifest(q, repo_id, "index", children=[blob], media_type=OCI_INDEX)
    async with store.reading() as q:
        assert await q.unreferenced_links(future()) == []


async def test_orphan_blobs_and_delete_blob_row(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    linked, orphan = digest("linked"), digest("orphan")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.record_blob(linked, 10)
        await q.record_blob(orphan, 20)
        await q.link_blob(repo_id, linked)
    async with store.reading() as q:
        assert await q.orphan_blobs(future()) == [(orphan, 20)]
        assert await q.orphan_blobs(PAST) == []
    async with store.writing() as q:
        assert await q.delete_blob_row_if_orphan(linked, future()) is False  # a link exists
        assert await q.delete_blob_row_if_orphan(orphan, PAST) is False  # too young
        assert await q.delete_blob_row_if_orphan(orphan, future()) is True
        assert await q.delete_blob_row_if_orphan(orphan, future()) is False  # already gone
        assert await q.delete_blob_row_if_orphan(digest("never"), future()) is False
        # The transaction is still usable after the refusals.
        await q.record_blob(digest("after"), 1)
    async with store.reading() as q:
        assert await q.blob_size(linked) == 10
        assert await q.blob_size(orphan) is None
        assert await q.blob_size(digest("after")) == 1


async def test_unlinked_blob_becomes_orphan(store: MetadataStore, registry: RegistryRecord) -> None:
    blob = digest("will be unlinked")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.record_blob(blob, 1)
        await q.link_blob(repo_id, blob)
    async with store.writing() as q:
        assert await q.delete_blob_row_if_orphan(blob, future()) is False
        assert await q.unlink_blob(registry.id, "app", blob)
        assert await q.delete_blob_row_if_orphan(blob, future()) is True
    async with store.reading() as q:
        assert await q.blob_size(blob) is None


# -- catalog ----------------------------------------------------------------------------------


async def test_catalog_lists_only_repositories_with_content(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    blob = digest("blob")
    async with store.writing() as q:
        other = await q.create_registry("other", "other.localhost")
        with_manifest = await q.ensure_repository(registry.id, "b/with-manifest")
        with_blob = await q.ensure_repository(registry.id, "a/with-blob")
        await q.ensure_repository(registry.id, "c/empty")  # an abandoned upload's repository
        also = await q.ensure_repository(registry.id, "d/also")
        elsewhere = await q.ensure_repository(other.id, "e/elsewhere")
        await q.record_blob(blob, 1)
        await q.link_blob(with_blob, blob)
        await q.link_blob(elsewhere, blob)
        await add_manifest(q, with_manifest, "m")
        await add_manifest(q, also, "n")
    async with store.reading() as q:
        assert await q.catalog(registry.id, None, 100) == [
            "a/with-blob",
            "b/with-manifest",
            "d/also",
        ]
        assert await q.catalog(registry.id, None, 2) == ["a/with-blob", "b/with-manifest"]
        assert await q.catalog(registry.id, "b/with-manifest", 2) == ["d/also"]
        assert await q.catalog(registry.id, "c", 10) == ["d/also"]
        assert await q.catalog(registry.id, "d/also", 10) == []
        assert await q.catalog(other.id, None, 10) == ["e/elsewhere"]
    async with store.writing() as q:
        assert await q.unlink_blob(registry.id, "a/with-blob", blob)
    async with store.reading() as q:
        assert await q.catalog(registry.id, None, 100) == ["b/with-manifest", "d/also"]


# -- scopes -------------------------------------------------------------------------------------


async def test_reads_see_committed_writes_only(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        await q.ensure_repository(registry.id, "committed")
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "committed") is not None
    with pytest.raises(RuntimeError, match="abort"):
        async with store.writing() as q:
            await q.ensure_repository(registry.id, "aborted")
            raise RuntimeError("abort")
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "aborted") is None


async def test_counts(store: MetadataStore, registry: RegistryRecord) -> None:
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.record_blob(digest("x"), 1)
        m = await add_manifest(q, repo_id, "m")
        await q.set_tag(repo_id, "t", m)
        await q.create_upload("9" * 32, registry.id, "app", "sha256")
    async with store.reading() as q:
        assert await q.count_manifests() == 1
        assert await q.count_tags() == 1


# -- one transaction object, every query group on it --------------------------------------------
async def test_the_query_groups_of_a_write_are_one_transaction(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    """Registry, job and identity rows written through one scope commit together, and roll
    back together; the groups share the scope's commit callbacks."""

    class Abandon(Exception):
        pass

    committed: list[str] = []
    with pytest.raises(Abandon):
        async with store.writing() as q:
            await q.ensure_repository(registry.id, "app")
            await q.jobs.create_job("a" * 32, registry.id, "{}", None)
            await q.identity.add_tenant("t-rolled-back", "never")
            q.identity.on_commit(lambda: committed.append("identity"))
            raise Abandon
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "app") is None
        assert await q.jobs.job("a" * 32) is None
        assert await q.identity.tenant("t-rolled-back") is None
    assert committed == []

    async with store.writing() as q:
        await q.ensure_repository(registry.id, "app")
        await q.jobs.create_job("b" * 32, registry.id, "{}", None)
        await q.identity.add_tenant("t-kept", "kept")
        q.identity.on_commit(lambda: committed.append("identity"))
        q.jobs.on_commit(lambda: committed.append("jobs"))
        assert q.jobs is q.jobs and q.jobs.conn is q.conn is q.identity.conn
    assert committed == ["identity", "jobs"]
    async with store.reading() as q:
        assert await q.repository_id(registry.id, "app") is not None
        assert await q.jobs.job("b" * 32) is not None
        assert await q.identity.tenant("t-kept") is not None


# -- digests keep their type down to the column ---------------------------------------------------
async def test_digest_columns_hand_back_digests(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    blob = Digest.of(b"layer", "sha512")
    async with store.writing() as q:
        repo_id = await q.ensure_repository(registry.id, "app")
        await q.record_blob(blob, 5)
        await q.link_blob(repo_id, blob)
        manifest = await add_manifest(q, repo_id, "m", blobs=[blob])
        await q.set_tag(repo_id, "v1", manifest)
    async with store.reading() as q:
        tagged = await q.tag_digest(repo_id, "v1")
        assert isinstance(tagged, Digest) and tagged == manifest
        (tag,) = await q.tags_of(repo_id)
        assert isinstance(tag.digest, Digest)
        assert await q.blob_digests() == {blob}
        assert await q.blob_referenced_in(repo_id, blob) == manifest
        # Stored as the digest's text, so other tools (and older rows) read the same thing.
        stored = (await q.conn.execute(text("SELECT digest FROM blobs"))).scalar_one()
        assert stored == str(blob)


async def test_a_digest_column_that_no_longer_parses_is_an_error(
    store: MetadataStore, registry: RegistryRecord
) -> None:
    async with store.writing() as q:
        await q.conn.execute(
            text("INSERT INTO blobs (digest, size, created_at) VALUES (:d, 1, :t)"),
            {"d": "sha256:damaged", "t": utcnow()},
        )
    async with store.reading() as q:
        with pytest.raises(DigestError):
            await q.blob_digests()


async def test_gc_scans_let_the_loop_run_between_slices(
    store: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows of a GC scan are converted on the loop's thread: building a 20,000-row list
    at once held the loop ~20 ms. Scans now yield between slices: no more than a slice of
    digests is converted between two turns of the loop (counted, not timed)."""
    count = 3 * SCAN_SLICE + 1
    async with store.writing() as q:
        for n in range(count):
            await q.record_blob(Digest.of(f"blob {n}".encode()), n)
    converted = 0
    convert = DigestType.process_result_value

    def counting(self: DigestType, value: str | None, dialect: Any) -> Digest | None:
        nonlocal converted
        converted += 1
        return convert(self, value, dialect)

    monkeypatch.setattr(DigestType, "process_result_value", counting)
    later = utcnow() + timedelta(hours=1)
    for scan in ("blob_digests", "orphan_blobs"):
        seen: list[int] = []

        async def ticker(done: asyncio.Event, seen: list[int]) -> None:
            while not done.is_set():
                seen.append(converted)
                await asyncio.sleep(0)

        done = asyncio.Event()
        async with store.reading() as q:
            running = asyncio.create_task(ticker(done, seen))
            try:
                found = await (
                    q.blob_digests() if scan == "blob_digests" else q.orphan_blobs(later)
                )
            finally:
                done.set()
                await running
        seen.append(converted)
        assert len(found) == count, scan
        most = max(after - before for before, after in itertools.pairwise(seen))
        assert most <= SCAN_SLICE, (scan, most)
