"""Manifests, tags, referrers and the catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass

from transship.errors import Conflict, Invalid, LimitExceeded, NotFound, TooLarge
from transship.metadata.queries import MetadataStore, RegistryQueries
from transship.metadata.records import ManifestRecord, ManifestReference, RegistryRecord
from transship.metadata.webhooks import EventDraft, EventRequest, webhook_queries
from transship.oci import mediatypes as mt
from transship.oci.digest import Digest, DigestError
from transship.oci.manifest import ManifestError, ParsedManifest, parse_manifest
from transship.oci.reference import InvalidReference, parse_tag_or_digest
from transship.registry import locks

MAX_TAGS_PER_PUT = 64


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    more: bool


def parse_reference(reference: str, *, writing: bool) -> Digest | str:
    """Parse a tag-or-digest path segment: a Digest, or the tag.

    Raises Invalid("digest") for a malformed digest. A malformed tag is Invalid("tag") when
    pushing and NotFound("manifest") when reading (no manifest can have that name).
    """
    try:
        return parse_tag_or_digest(reference)
    except DigestError as exc:
        raise Invalid("digest", str(exc), detail={"reference": reference}) from None
    except InvalidReference as exc:
        if writing:
            raise Invalid("tag", str(exc), detail={"tag": reference}) from None
        raise NotFound("manifest", reference, str(exc), detail={"tag": reference}) from None


def references_of(parsed: ParsedManifest) -> list[ManifestReference]:
    """What a manifest needs in its repository: blobs (foreign layers excepted) and children."""
    refs = [ManifestReference(d.digest, False) for d in parsed.blobs if not d.is_foreign]
    refs += [ManifestReference(d.digest, True) for d in parsed.manifests]
    return refs


async def store_manifest(
    q: RegistryQueries, repository_id: int, digest: Digest, content: bytes, parsed: ParsedManifest
) -> None:
    """Insert a manifest row with its edges (a no-op when present). The caller has checked
    that what it references exists in the repository. An index already stored sparse (a
    platform subset) gains the edges of the children `parsed` lists, which are now present."""
    inserted = await q.insert_manifest(
        repository_id,
        digest,
        parsed.media_type,
        content,
        parsed.referrer_artifact_type,
        parsed.subject.digest if parsed.subject else None,
        json.dumps(dict(parsed.annotations)) if parsed.annotations else None,
        references_of(parsed),
    )
    if not inserted and parsed.manifests:
        await q.settle_absent_children(repository_id, digest, [d.digest for d in parsed.manifests])


class ManifestService:
    def __init__(
        self,
        meta: MetadataStore,
        max_manifest_bytes: int,
        page_max: int,
        max_index_children: int = 1000,
    ) -> None:
        self._meta = meta
        self.max_manifest_bytes = max_manifest_bytes
        self._max_index_children = max_index_children
        self._page_max = page_max

    async def get(
        self, registry: RegistryRecord, repository: str, reference: str
    ) -> ManifestRecord:
        """Raises NotFound("manifest") (or a reference error) when absent, Denied (reason
        "locked") when the repository, the tag asked by or the manifest is not readable."""
        ref = parse_reference(reference, writing=False)
        # The pull path's keyed lookup: inline on the loop (see MetadataStore.fast_read).
        async with self._meta.fast_read() as q:
            record = await q.manifest(registry.id, repository, ref)
        if record is None:
            raise await self._unknown(registry, repository, reference, ref)
        locks.check_readable(record.readable, repository, reference)
        return record

    async def _unknown(
        self, registry: RegistryRecord, repository: str, reference: str, ref: Digest | str
    ) -> NotFound:
        """The NotFound of a manifest read that found nothing: for a child a platform-subset
        import left out of a sparse index, one that names its platform (clients show it)."""
        absent = None
        if isinstance(ref, Digest):
            async with self._meta.reading() as q:
                absent = await q.absent_child(registry.id, repository, ref)
        if absent is None:
            return NotFound(
                "manifest",
                reference,
                f"manifest {reference} is not in repository {repository}",
                detail={"reference": reference},
            )
        index, platform = absent
        return NotFound(
            "manifest",
            reference,
            f"manifest {reference} ({platform}) of index {index} is a platform not imported "
            f"into this registry: repository {repository} holds a platform subset of that "
            "index; import the platform to pull it",
            detail={"reference": reference, "index": str(index), "platform": platform},
        )

    async def put(
        self,
        registry: RegistryRecord,
        repository: str,
        reference: str,
        content: bytes,
        content_type: str | None,
        extra_tags: tuple[str, ...] = (),
        event_request: EventRequest | None = None,
    ) -> PushedManifest:
        """Store a manifest byte-for-byte and move its tags in one transaction, with the
        `push` events of the registry's webhooks (one per tag; one untagged by digest).

        Raises Invalid (field "manifest", "tag" or "digest"; reason "missing_reference" for
        content the repository lacks), LimitExceeded("manifest"), TooLarge, or Denied
        (reason "locked") when the repository or a tag is locked against writes; on any error
        nothing is stored.
        """
        if len(content) > self.max_manifest_bytes:
            raise TooLarge(
                f"manifest is {len(content)} bytes; the limit is {self.max_manifest_bytes}",
                subject="manifest",
            )
        ref = parse_reference(reference, writing=True)
        tags = [] if isinstance(ref, Digest) else [ref]
        for tag in extra_tags:
            if isinstance(parse_reference(tag, writing=True), Digest):
                raise Invalid(
                    "tag", f"tag parameter {tag!r} is a digest, not a tag", detail={"tag": tag}
                )
            if tag not in tags:
                tags.append(tag)
        if len(tags) > MAX_TAGS_PER_PUT:
            raise LimitExceeded(f"at most {MAX_TAGS_PER_PUT} tags per request", subject="manifest")
        try:
            parsed = parse_manifest(content, content_type)
        except ManifestError as exc:
            raise Invalid("manifest", str(exc)) from None
        digest = Digest.of(content, ref.algorithm if isinstance(ref, Digest) else "sha256")
        if isinstance(ref, Digest) and digest != ref:
            raise Invalid(
                "digest",
                f"manifest content has digest {digest}, not {ref}",
                detail={"digest": str(ref)},
            )
        if len(parsed.manifests) > self._max_index_children:
            raise LimitExceeded(
                f"the index lists {len(parsed.manifests)} manifests; "
                f"the limit is {self._max_index_children}",
                subject="manifest",
            )
        refs = references_of(parsed)
        async with self._meta.writing() as q:
            repo_id = await q.ensure_repository(registry.id, repository)
            await q.lock_repository(repo_id, exclusive=False)
            await locks.check_writable(q, repo_id, repository, tags)
            linked = await q.touch_links(repo_id, [r.digest for r in refs if not r.is_manifest])
            for ref_ in refs:
                if not ref_.is_manifest and ref_.digest not in linked:
                    raise Invalid(
                        "manifest",
                        f"blob {ref_.digest} referenced by the manifest is not in repository "
                        f"{repository}",
                        reason="missing_reference",
                        detail={"digest": str(ref_.digest)},
                    )
            present = await q.existing_manifests(repo_id, [r.digest for r in refs if r.is_manifest])
            for ref_ in refs:
                if ref_.is_manifest and ref_.digest not in present:
                    raise Invalid(
                        "manifest",
                        f"manifest {ref_.digest} listed by the index is not in repository "
                        f"{repository}",
                        reason="missing_reference",
                        detail={"digest": str(ref_.digest)},
                    )
            await store_manifest(q, repo_id, digest, content, parsed)
            for tag in tags:
                await q.set_tag(repo_id, tag, digest)
            pushed: list[EventDraft] = [
                EventDraft("push", repository, digest, tag, parsed.media_type, len(content))
                for tag in (list[str | None](tags) or [None])
            ]
            await webhook_queries(q).record_events(registry.id, pushed, event_request)
        return PushedManifest(
            digest, parsed.subject.digest if parsed.subject else None, tuple(tags)
        )

    async def delete(
        self,
        registry: RegistryRecord,
        repository: str,
        reference: str,
        event_request: EventRequest | None = None,
    ) -> None:
        """By digest: the manifest and its tags; by tag: only the tag. Records the `delete`
        event of the registry's webhooks in the same transaction.

        Raises NotFound("manifest"), Conflict (reason "in_use") while an index in the
        repository lists it (deleting it would leave the index pointing at nothing), or
        Denied (reason "locked") when the repository, the tag, the manifest or one of its
        tags is locked against deletion; nothing is deleted then.
        """
        ref = parse_reference(reference, writing=False)
        async with self._meta.writing() as q:
            repo_id = await q.repository_id(registry.id, repository)
            unknown = NotFound(
                "manifest", reference, f"manifest {reference} is not in repository {repository}"
            )
            if repo_id is None:
                raise unknown
            await q.lock_repository(repo_id, exclusive=True)
            events = webhook_queries(q)
            if not isinstance(ref, Digest):
                tagged = await q.tag_digest(repo_id, ref)
                if tagged is None:
                    raise unknown
                await locks.check_tag_deletable(q, repo_id, repository, ref)
                await q.delete_tag(repo_id, ref)
                draft = EventDraft("delete", repository, tagged, ref)
                await events.record_events(registry.id, [draft], event_request)
                return
            parent = await q.manifest_parent(repo_id, ref)
            if parent is not None:
                raise Conflict(
                    f"manifest {ref} is listed by index {parent} in {repository}; "
                    "delete the index first",
                    subject="manifest",
                    reason="in_use",
                    detail={"digest": str(ref), "index": str(parent)},
                )
            if not await q.existing_manifests(repo_id, [ref]):
                raise unknown
            await locks.check_manifest_deletable(q, repo_id, repository, ref)
            record = await q.manifest(registry.id, repository, ref)
            if not await q.delete_manifest(repo_id, ref):
                raise unknown
            draft = EventDraft(
                "delete", repository, ref, None, record.media_type if record else None
            )
            await events.record_events(registry.id, [draft], event_request)

    async def tags(
        self, registry: RegistryRecord, repository: str, last: str | None, n: int | None
    ) -> Page:
        """Tags in lexical order after `last`. Raises NotFound("repository") when unknown."""
        limit = self._limit(n)
        async with self._meta.reading() as q:
            repo_id = await q.repository_id(registry.id, repository)
            if repo_id is None:
                raise NotFound(
                    "repository",
                    repository,
                    f"repository {repository} is not known",
                    detail={"name": repository},
                )
            if limit == 0:
                return Page([], False)
            names = await q.list_tags(repo_id, last, limit + 1)
        return Page(names[:limit], len(names) > limit)

    async def catalog(self, registry: RegistryRecord, last: str | None, n: int | None) -> Page:
        limit = self._limit(n)
        if limit == 0:
            return Page([], False)
        async with self._meta.reading() as q:
            names = await q.catalog(registry.id, last, limit + 1)
        return Page(names[:limit], len(names) > limit)

    def _limit(self, n: int | None) -> int:
        return self._page_max if n is None else min(n, self._page_max)

    async def referrers(
        self, registry: RegistryRecord, repository: str, subject: str, artifact_type: str | None
    ) -> bytes:
        """The referrers index (an OCI image index) of `subject`; empty when none."""
        try:
            subject_digest = Digest.parse(subject)
        except DigestError as exc:
            raise Invalid("digest", str(exc), detail={"digest": subject}) from None
        async with self._meta.reading() as q:
            found = await q.referrers(registry.id, repository, subject_digest, artifact_type)
        manifests = []
        for item in found:
            descriptor: dict[str, object] = {
                "mediaType": item.media_type,
                "digest": str(item.digest),
                "size": item.size,
            }
            if item.artifact_type:
                descriptor["artifactType"] = item.artifact_type
            if item.annotations:
                descriptor["annotations"] = json.loads(item.annotations)
            manifests.append(descriptor)
        return json.dumps(
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
        ).encode()
