"""The seams of the import engine: where bytes go, where images come from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from transship.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class Credentials:
    """Upstream credentials from the import request. Never logged, never returned."""

    username: str | None
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<redacted>)"


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    content: bytes
    media_type: str
    digest: Digest


class BlobWriter(Protocol):
    """Receives one blob's bytes, verifying them as they arrive."""

    @property
    def offset(self) -> int:
        """Bytes kept so far: where a resumed download must continue."""
        ...

    async def append(self, chunks: AsyncIterator[bytes]) -> None:
        """Append chunks. May raise part way; `offset` then counts only what was kept."""
        ...

    async def reset(self) -> None:
        """Drop everything received (the upstream ignored a Range request)."""
        ...


class ImageSource(Protocol):
    """Where an import reads from: a remote registry, or a registry of this service."""

    async def get_manifest(self, reference: str) -> FetchedManifest:
        """The manifest by tag or digest. Raises ImportFailure (e.g. ManifestUnknown)."""
        ...

    async def fetch_blob(self, digest: Digest, size: int, writer: BlobWriter) -> None:
        """Stream a blob into `writer`, resuming after dropped connections. Raises
        ImportFailure."""
        ...
