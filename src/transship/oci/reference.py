"""Repository names, tags and image references (`[host/]repo[:tag][@digest]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from transship.oci.digest import Digest, DigestError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_PATTERN = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# A registry host: DNS labels or an IPv6 literal in brackets, with an optional port.
_HOST_PATTERN = re.compile(
    r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?"
)
MAX_REPOSITORY_LENGTH = 255

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"


class InvalidReference(ValueError):
    """A repository name, tag or image reference breaks the OCI grammar."""


def validate_repository(name: str) -> str:
    """Return `name` if it is a valid repository name; raise InvalidReference otherwise."""
    if len(name) > MAX_REPOSITORY_LENGTH:
        raise InvalidReference(
            f"repository name {name[:40]!r}… is longer than {MAX_REPOSITORY_LENGTH} characters"
        )
    if not REPOSITORY_PATTERN.fullmatch(name):
        raise InvalidReference(
            f"invalid repository name {name!r}: lowercase letters, digits and separators "
            "(., _, __, -) between path components"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag; raise InvalidReference otherwise."""
    if not TAG_PATTERN.fullmatch(tag):
        raise InvalidReference(
            f"invalid tag {tag!r}: up to 128 of [A-Za-z0-9_.-], not starting with . or -"
        )
    return tag


def parse_tag_or_digest(text: str) -> Digest | str:
    """A manifest reference as a registry resolves it: a `Digest`, or a validated tag.

    No tag contains ':', so text with one is a digest. Raises DigestError for a malformed
    digest and InvalidReference for a malformed tag. Callers keep the result and test it
    with isinstance, never the text again.
    """
    if ":" in text:
        return Digest.parse(text)
    return validate_tag(text)


def _is_host(component: str) -> bool:
    # Docker's rule: the first component is a host if it has a '.' or ':' or is 'localhost'.
    return ("." in component or ":" in component or component == "localhost") and bool(
        _HOST_PATTERN.fullmatch(component)
    )


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed `[host/]repository[:tag][@digest]`. `host` is None when none was written."""

    host: str | None
    repository: str
    tag: str | None
    digest: Digest | None

    @classmethod
    def parse(cls, text: str, *, allow_host: bool = True) -> ImageReference:
        """Parse an image reference.

        Raises InvalidReference naming the offending part. With `allow_host=False` the first
        path component is always part of the repository name (ACR's `sourceImage`).
        """
        if not text:
            raise InvalidReference("empty image reference")
        remainder, digest = text, None
        if "@" in remainder:
            remainder, _, digest_text = remainder.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except DigestError as exc:
                raise InvalidReference(f"invalid digest in reference {text!r}: {exc}") from None
        host: str | None = None
        first, sep, rest = remainder.partition("/")
        if allow_host and sep and _is_host(first):
            host, remainder = first, rest
        tag: str | None = None
        last_slash = remainder.rfind("/")
        colon = remainder.rfind(":")
        if colon > last_slash:
            remainder, tag = remainder[:colon], remainder[colon + 1 :]
            validate_tag(tag)
        validate_repository(remainder)
        return cls(host, remainder, tag, digest)

    @property
    def reference(self) -> Digest | str:
        """The digest or tag a registry resolves: the digest wins, then the tag, then `latest`."""
        if self.digest is not None:
            return self.digest
        return self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}" if self.host else self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def normalize_docker_hub(host: str, repository: str) -> tuple[str, str]:
    """Map Docker Hub aliases to `docker.io` and give one-part names the `library/` prefix."""
    if host.lower() in DOCKER_HUB_ALIASES:
        if "/" not in repository:
            repository = f"library/{repository}"
        return DOCKER_HUB, repository
    return host, repository
