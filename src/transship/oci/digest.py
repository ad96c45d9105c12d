"""Content digests (`algorithm:encoded`) as defined by the OCI image specification."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

# Registered algorithms and the exact shape of their encoded part. Anything else is refused:
# a registry must not store content under a digest it cannot verify.
_ENCODED_PATTERNS: dict[str, re.Pattern[str]] = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

SUPPORTED_ALGORITHMS = frozenset(_ENCODED_PATTERNS)


class DigestError(ValueError):
    """A string is not a digest this registry can verify."""


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `algorithm:encoded`.

        Raises DigestError when the text breaks the grammar, names an unsupported algorithm,
        or has an encoded part of the wrong length or alphabet (uppercase hex included).
        """
        if not _GRAMMAR.fullmatch(text):
            raise DigestError(f"invalid digest {text!r}: expected algorithm:hex")
        algorithm, _, encoded = text.partition(":")
        pattern = _ENCODED_PATTERNS.get(algorithm)
        if pattern is None:
            raise DigestError(f"unsupported digest algorithm {algorithm!r} in {text!r}")
        if not pattern.fullmatch(encoded):
            raise DigestError(f"invalid {algorithm} digest {text!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of `data`. Raises DigestError for an unsupported algorithm."""
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def new_hasher(algorithm: str = "sha256") -> Hasher:
    """A fresh incremental hasher. Raises DigestError for an unsupported algorithm."""
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


class CountingHasher:
    """Hashes and counts the bytes passed to it (a storage ChunkSink); the count is read
    from the event loop for progress while a worker thread feeds it."""

    def __init__(self, algorithm: str = "sha256", *, resume: Hasher | None = None) -> None:
        """A fresh hash, or one continuing from the state `resume` (counting from zero)."""
        self.hasher = resume if resume is not None else new_hasher(algorithm)
        self.count = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self.hasher.update(data)
        self.count += len(data)
