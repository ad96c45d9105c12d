"""What a cache rule may say, as ACR has it, and how it maps a repository upstream. Pure.

A rule maps a target repository of the registry to a source repository upstream
(`host/path`). Either both are static (`hello-world` ← `docker.io/library/hello-world`) or
both end in a wildcard (`library/*` ← `docker.io/library/*`; the registry-level `*` ←
`mcr.microsoft.com/*`). A target is covered by one rule: no two rules share a target, and
wildcard rules never overlap one another. A static rule may sit under a wildcard rule; it is
the more specific and wins (ACR's rule).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from transship.errors import Invalid
from transship.oci.reference import MAX_REPOSITORY_LENGTH, REPOSITORY_PATTERN

# ACR's names of cache rules and credential sets: 5 to 50 letters, digits and dashes.
NAME_PATTERN = re.compile(r"[A-Za-z0-9-]{5,50}")
# ACR's documented bound of cache rules per registry; credential sets get the same.
MAX_CACHE_RULES = 1000
MAX_CREDENTIAL_SETS = 1000
MAX_SOURCE_LENGTH = 512
WILDCARD = "*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
# A login server: DNS labels (with a dot, or `localhost`) and an optional port. Lower-cased
# before the match.
LOGIN_SERVER_PATTERN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})+|localhost)(?::[0-9]{{1,5}})?")


@dataclass(frozen=True, slots=True)
class Repositories:
    """A rule's two ends, checked: the upstream `host`, the source path below it (without
    the wildcard; "" for a registry-level rule) and the target (without the wildcard: "" for
    `*`, `library` for `library/*`)."""

    host: str
    source_path: str
    target: str
    wildcard: bool

    @property
    def source_repository(self) -> str:
        """The source as the rule shows it."""
        if not self.wildcard:
            return f"{self.host}/{self.source_path}"
        return "/".join(p for p in (self.host, self.source_path, WILDCARD) if p)

    @property
    def target_repository(self) -> str:
        """The target as the rule shows it."""
        if not self.wildcard:
            return self.target
        return "/".join(p for p in (self.target, WILDCARD) if p)

    def upstream_of(self, repository: str) -> str | None:
        """The upstream repository `repository` maps to under this rule, or None when the
        rule does not cover it."""
        if not self.wildcard:
            return self.source_path if repository == self.target else None
        if self.target:
            if not repository.startswith(self.target + "/"):
                return None
            rest = repository[len(self.target) + 1 :]
        else:
            rest = repository
        return f"{self.source_path}/{rest}" if self.source_path else rest


def check_name(name: str, field: str, subject: str) -> str:
    """A cache rule's or credential set's name. Raises Invalid(field)."""
    if not NAME_PATTERN.fullmatch(name):
        raise Invalid(
            field,
            f"{subject} name {name!r} must be 5 to 50 letters, digits and dashes",
            subject=subject,
        )
    return name


def check_login_server(text: str, field: str = "loginServer") -> str:
    """An upstream registry's login server, `host[:port]`, lower-cased. Raises
    Invalid(field)."""
    host = text.strip().lower()
    if not LOGIN_SERVER_PATTERN.fullmatch(host):
        raise Invalid(
            field,
            f"{field} {text!r} is not a registry login server (host[:port], without a scheme "
            "or path)",
            subject="credential set",
        )
    return host


def _path(text: str, field: str, what: str) -> tuple[str, bool]:
    """(path without its wildcard, whether it had one). "" with a wildcard: `*` alone."""
    wildcard = text == WILDCARD or text.endswith("/" + WILDCARD)
    path = text[: -len(WILDCARD)].rstrip("/") if wildcard else text
    if WILDCARD in path:
        raise Invalid(
            field,
            f"{field} {text!r}: a wildcard is allowed only as the last path segment ('/*')",
            subject="cache rule",
        )
    if path and not REPOSITORY_PATTERN.fullmatch(path):
        raise Invalid(
            field,
            f"{field} {text!r} is not a valid {what}: lowercase letters, digits and "
            "separators (., _, __, -) between path segments",
            subject="cache rule",
        )
    if not path and not wildcard:
        raise Invalid(field, f"{field} is empty", subject="cache rule")
    return path, wildcard


def check_repositories(source: str, target: str) -> Repositories:
    """Check a rule's source (`host/path`, `host/path/*` or `host/*`) and target
    (`repo`, `prefix/*` or `*`). Raises Invalid naming sourceRepository or
    targetRepository."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise Invalid(
            "sourceRepository",
            f"sourceRepository is longer than {MAX_SOURCE_LENGTH} characters",
            subject="cache rule",
        )
    host, slash, rest = source.partition("/")
    if not slash or not rest:
        raise Invalid(
            "sourceRepository",
            f"sourceRepository {source!r} must name the upstream registry and a repository "
            "(docker.io/library/nginx, mcr.microsoft.com/*)",
            subject="cache rule",
        )
    host = check_login_server(host, "sourceRepository")
    source_path, source_wildcard = _path(rest, "sourceRepository", "source repository")
    if len(target) > MAX_REPOSITORY_LENGTH:
        raise Invalid(
            "targetRepository",
            f"targetRepository is longer than {MAX_REPOSITORY_LENGTH} characters",
            subject="cache rule",
        )
    target_path, target_wildcard = _path(target, "targetRepository", "repository name")
    if source_wildcard != target_wildcard:
        raise Invalid(
            "targetRepository",
            f"sourceRepository {source!r} and targetRepository {target!r} must both end in "
            "a wildcard ('/*') or neither",
            subject="cache rule",
        )
    return Repositories(host, source_path, target_path, source_wildcard)


def _covers(prefix: str, other: str) -> bool:
    """Whether the wildcard under `prefix` covers `other` (a prefix or a repository)."""
    return not prefix or other == prefix or other.startswith(prefix + "/")


def check_overlap(new: Repositories, existing: Iterable[tuple[str, Repositories]]) -> None:
    """Refuse `new` when another rule (name, repositories) has its target, or when both are
    wildcard rules that overlap (`*` and `library/*`; `library/*` and `library/py/*`).
    Raises Invalid("targetRepository")."""
    for name, other in existing:
        if other.target_repository == new.target_repository:
            raise Invalid(
                "targetRepository",
                f"targetRepository {new.target_repository!r} is already the target of cache "
                f"rule {name!r}; a target repository is covered by one rule only",
                subject="cache rule",
                reason="overlap",
            )
        if (
            new.wildcard
            and other.wildcard
            and (_covers(new.target, other.target) or _covers(other.target, new.target))
        ):
            raise Invalid(
                "targetRepository",
                f"targetRepository {new.target_repository!r} overlaps the wildcard rule "
                f"{name!r} ({other.target_repository!r}); wildcard rules may not overlap",
                subject="cache rule",
                reason="overlap",
            )


def parse_repositories(source: str, target: str) -> Repositories:
    """A stored rule's repositories (checked when stored)."""
    return check_repositories(source, target)
