"""Read-only views of a registry's content for the web portal: repositories and tags one
page at a time (search, sort by name, date or size), each tag's platforms, and a manifest
taken apart (index children, layers, config, referrers). Nothing here decides who may
see what: the portal authorizes each page with the API's checks before calling.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from transship.errors import NotFound
from transship.metadata.browse import BrowseQueries, BrowseSort, RepositoryRow, TagRow
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.oci import mediatypes as mt
from transship.oci.digest import Digest
from transship.oci.manifest import ManifestError, ParsedManifest, parse_manifest
from transship.registry.manifests import ManifestService
from transship.storage.base import BlobStore

PAGE_SIZE = 100
T = TypeVar("T")
# A config larger than this is not read for display (images' configs are a few kB).
_MAX_CONFIG_BYTES = 1 << 20
# How deep the referrers tree goes (a signature of an SBOM of an image is depth 2).
_MAX_REFERRER_DEPTH = 4
_MAX_REFERRERS = 200
_IMAGE_CONFIGS = (mt.OCI_CONFIG, "application/vnd.docker.container.image.v1+json")


@dataclass(frozen=True, slots=True)
class BrowsePage(Generic[T]):
    """One page of a listing: its items, its number (from 1), and the total count."""

    items: list[T]
    page: int
    total: int
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True, slots=True)
class TagView:
    row: TagRow
    platforms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Child:
    """An entry of an index: the platform it is for and the child manifest's digest."""

    platform: str
    digest: Digest
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class Layer:
    digest: Digest
    size: int
    media_type: str
    percent: float


@dataclass(frozen=True, slots=True)
class ConfigView:
    """What an image config says of how the image runs, and its history."""

    platform: str | None
    entrypoint: list[str] | None
    cmd: list[str] | None
    env: list[str]
    labels: dict[str, str]
    working_dir: str | None
    user: str | None
    created: str | None
    history: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Referrer:
    """A manifest referring to another (signature, SBOM, attestation) and its own referrers."""

    digest: Digest
    artifact_type: str
    media_type: str
    size: int
    annotations: dict[str, str]
    referrers: list[Referrer] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ManifestView:
    digest: Digest
    media_type: str
    content: bytes
    is_index: bool
    children: list[Child]
    layers: list[Layer]
    total_size: int
    config: ConfigView | None
    artifact_type: str | None
    subject: Digest | None
    referrers: list[Referrer]

    @property
    def pretty(self) -> str:
        """The manifest as indented JSON (its exact bytes when they are not JSON)."""
        try:
            return json.dumps(json.loads(self.content), indent=2, ensure_ascii=False)
        except ValueError:
            return self.content.decode("utf-8", "replace")


def _page_bounds(page: int) -> tuple[int, int]:
    number = max(1, page)
    return number, (number - 1) * PAGE_SIZE


class BrowseService:
    """Listings and manifest views for the portal; every read is a page or a keyed lookup."""

    def __init__(self, meta: MetadataStore, store: BlobStore, manifests: ManifestService) -> None:
        self._meta = meta
        self._store = store
        self._manifests = manifests

    async def repositories(
        self, registry: RegistryRecord, fragment: str, sort: BrowseSort, page: int
    ) -> BrowsePage[RepositoryRow]:
        number, offset = _page_bounds(page)
        async with self._meta.reading() as q:
            rows, total = await BrowseQueries.joining(q).repositories_page(
                registry.id, fragment, sort, offset, PAGE_SIZE
            )
        return BrowsePage(rows, number, total)

    async def repository_count(self, registry: RegistryRecord) -> int:
        async with self._meta.reading() as q:
            _, total = await BrowseQueries.joining(q).repositories_page(
                registry.id, "", "name", 0, 1
            )
        return int(total)

    async def tags(
        self,
        registry: RegistryRecord,
        repository: str,
        fragment: str,
        sort: BrowseSort,
        page: int,
    ) -> BrowsePage[TagView]:
        """A page of the repository's tags with their platforms. Raises NotFound."""
        number, offset = _page_bounds(page)
        async with self._meta.reading() as q:
            repo_id = await q.repository_id(registry.id, repository)
            if repo_id is None:
                raise NotFound("repository", repository, f"repository {repository} is not known")
            queries: BrowseQueries = BrowseQueries.joining(q)
            rows, total = await queries.tags_page(repo_id, fragment, sort, offset, PAGE_SIZE)
            contents = await queries.manifest_contents(repo_id, list({r.digest for r in rows}))
        platforms = await self._platforms(contents)
        return BrowsePage(
            [TagView(row, platforms.get(row.digest, ())) for row in rows], number, total
        )

    async def _platforms(
        self, contents: dict[Digest, tuple[str, bytes]]
    ) -> dict[Digest, tuple[str, ...]]:
        """Each manifest's platforms: an index's from its entries, an image's from its
        config (read from the store, all of the page's at once)."""
        found: dict[Digest, tuple[str, ...]] = {}
        configs: dict[Digest, Digest] = {}
        for digest, (media_type, content) in contents.items():
            parsed = _parse(content, media_type)
            if parsed is None:
                continue
            if parsed.is_index:
                found[digest] = tuple(
                    str(d.platform) for d in parsed.manifests if d.platform is not None
                )
            elif parsed.config is not None and parsed.config.size <= _MAX_CONFIG_BYTES:
                configs[digest] = parsed.config.digest
        documents = await asyncio.gather(*(self._config(c) for c in configs.values()))
        for digest, document in zip(configs, documents, strict=True):
            platform = _platform_of(document)
            if platform:
                found[digest] = (platform,)
        return found

    async def _config(self, digest: Digest) -> dict[str, Any] | None:
        try:
            data = b"".join([chunk async for chunk in self._store.read(digest)])
        except FileNotFoundError:
            return None
        try:
            document = json.loads(data)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    async def manifest(
        self, registry: RegistryRecord, repository: str, reference: str
    ) -> ManifestView:
        """A manifest by tag or digest, taken apart. Raises NotFound, Denied (locked)."""
        record = await self._manifests.get(registry, repository, reference)
        parsed = _parse(record.content, record.media_type)
        children: list[Child] = []
        layers: list[Layer] = []
        config: ConfigView | None = None
        if parsed is not None and parsed.is_index:
            children = [
                Child(
                    str(d.platform) if d.platform else "unknown",
                    d.digest,
                    d.size,
                    d.media_type,
                )
                for d in parsed.manifests
            ]
        elif parsed is not None:
            total = sum(d.size for d in parsed.layers) or 1
            layers = [
                Layer(d.digest, d.size, d.media_type, round(100 * d.size / total, 2))
                for d in parsed.layers
            ]
            if (
                parsed.config is not None
                and parsed.config.size <= _MAX_CONFIG_BYTES
                and parsed.config.media_type in _IMAGE_CONFIGS
            ):
                config = _config_view(await self._config(parsed.config.digest))
        referrers = await self._referrers(registry, repository, record.digest, 0, [0])
        sizes = [d.size for d in parsed.blobs] if parsed is not None else []
        return ManifestView(
            digest=record.digest,
            media_type=record.media_type,
            content=record.content,
            is_index=parsed is not None and parsed.is_index,
            children=children,
            layers=layers,
            total_size=len(record.content) + sum(sizes),
            config=config,
            artifact_type=None if parsed is None else parsed.referrer_artifact_type,
            subject=None if parsed is None or parsed.subject is None else parsed.subject.digest,
            referrers=referrers,
        )

    async def _referrers(
        self,
        registry: RegistryRecord,
        repository: str,
        subject: Digest,
        depth: int,
        seen: list[int],
    ) -> list[Referrer]:
        """The referrers of `subject` and theirs, to a bounded depth and count."""
        if depth >= _MAX_REFERRER_DEPTH or seen[0] >= _MAX_REFERRERS:
            return []
        index = json.loads(
            await self._manifests.referrers(registry, repository, str(subject), None)
        )
        out = []
        for entry in index.get("manifests", []):
            seen[0] += 1
            if seen[0] > _MAX_REFERRERS:
                break
            digest = Digest.parse(entry["digest"])
            out.append(
                Referrer(
                    digest,
                    str(entry.get("artifactType") or entry.get("mediaType") or ""),
                    str(entry.get("mediaType", "")),
                    int(entry.get("size", 0)),
                    {str(k): str(v) for k, v in (entry.get("annotations") or {}).items()},
                    await self._referrers(registry, repository, digest, depth + 1, seen),
                )
            )
        return out


def _parse(content: bytes, media_type: str) -> ParsedManifest | None:
    try:
        return parse_manifest(content, media_type)
    except ManifestError:
        return None


def _platform_of(document: dict[str, Any] | None) -> str | None:
    if document is None:
        return None
    os_, arch = document.get("os"), document.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str):
        return None
    variant = document.get("variant")
    return f"{os_}/{arch}/{variant}" if isinstance(variant, str) and variant else f"{os_}/{arch}"


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list):
        return [str(v) for v in value]
    return None


def _config_view(document: dict[str, Any] | None) -> ConfigView | None:
    if document is None:
        return None
    run = document.get("config")
    run = run if isinstance(run, dict) else {}
    labels = run.get("Labels")
    history = document.get("history")
    return ConfigView(
        platform=_platform_of(document),
        entrypoint=_strings(run.get("Entrypoint")),
        cmd=_strings(run.get("Cmd")),
        env=_strings(run.get("Env")) or [],
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        working_dir=run.get("WorkingDir") if isinstance(run.get("WorkingDir"), str) else None,
        user=run.get("User") if isinstance(run.get("User"), str) else None,
        created=document.get("created") if isinstance(document.get("created"), str) else None,
        history=[h for h in history if isinstance(h, dict)] if isinstance(history, list) else [],
    )
