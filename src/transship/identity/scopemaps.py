"""ACR scope maps: the repository permissions that registry tokens carry.

Pure: no I/O. A scope-map action reads `repositories/<pattern>/<permission>`:

- `<permission>` is one of `PERMISSIONS` (`content/read`, `content/write`, `content/delete`,
  `metadata/read`, `metadata/write`);
- `<pattern>` is a repository name (lowercase components `[a-z0-9]+(?:[._-][a-z0-9]+)*`
  joined by `/`), or such a name followed by `/*` (every repository under that prefix, at
  any depth), or exactly `*` (every repository).

Action strings are case-sensitive and have one spelling, so `str(parse_action(text)) == text`
for every accepted `text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

CONTENT_READ: Final = "content/read"
CONTENT_WRITE: Final = "content/write"
CONTENT_DELETE: Final = "content/delete"
METADATA_READ: Final = "metadata/read"
METADATA_WRITE: Final = "metadata/write"
PERMISSIONS: Final[tuple[str, ...]] = (
    CONTENT_READ,
    CONTENT_WRITE,
    CONTENT_DELETE,
    METADATA_READ,
    METADATA_WRITE,
)
ALL_REPOSITORIES: Final = "*"

_PREFIX: Final = "repositories/"
_COMPONENT: Final = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_REPOSITORY: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")

# Docker token action name -> the scope-map permission that grants it.
DOCKER_ACTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "pull": CONTENT_READ,
        "push": CONTENT_WRITE,
        "delete": CONTENT_DELETE,
        "metadata_read": METADATA_READ,
        "metadata_write": METADATA_WRITE,
    }
)
_DOCKER_ACTION_OF: Final = {permission: name for name, permission in DOCKER_ACTIONS.items()}


class InvalidScopeAction(ValueError):
    """A scope-map action (or its pattern or permission) breaks the grammar."""


def is_valid_pattern(pattern: str) -> bool:
    """Whether `pattern` is `*`, a repository name, or a repository name followed by `/*`."""
    if pattern == ALL_REPOSITORIES:
        return True
    name = pattern.removesuffix("/*")
    return _REPOSITORY.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class ScopeAction:
    """One permission on the repositories a pattern names; validated on construction
    (InvalidScopeAction). `str()` gives the canonical action string."""

    pattern: str
    permission: str

    def __post_init__(self) -> None:
        if not is_valid_pattern(self.pattern):
            raise InvalidScopeAction(
                f"invalid repository pattern {self.pattern!r}: a repository name, optionally "
                "followed by '/*', or '*'"
            )
        if self.permission not in PERMISSIONS:
            raise InvalidScopeAction(
                f"invalid scope-map permission {self.permission!r}: one of {', '.join(PERMISSIONS)}"
            )

    def __str__(self) -> str:
        return f"{_PREFIX}{self.pattern}/{self.permission}"


def parse_action(text: str) -> ScopeAction:
    """Parse `repositories/<pattern>/<permission>`; raise InvalidScopeAction naming `text`."""
    try:
        if not text.startswith(_PREFIX):
            raise InvalidScopeAction("it must start with 'repositories/'")
        pattern, _, permission = text[len(_PREFIX) :].rpartition("/")
        pattern, _, kind = pattern.rpartition("/")
        return ScopeAction(pattern, f"{kind}/{permission}")
    except InvalidScopeAction as problem:
        raise InvalidScopeAction(
            f"invalid scope-map action {text!r}: {problem}; expected "
            "'repositories/<repository pattern>/<content|metadata>/<read|write|delete>'"
        ) from None


def parse_actions(texts: Iterable[str]) -> tuple[ScopeAction, ...]:
    """`parse_action` over `texts`, in order (the first bad one raises)."""
    return tuple(parse_action(text) for text in texts)


def pattern_matches(pattern: str, repository: str) -> bool:
    """Whether `pattern` covers `repository` (compared literally, as given).

    `*` matches every repository; `a/*` matches `a/x` and `a/x/y` but not `a` nor `ab/x`;
    any other pattern matches exactly that name. An invalid pattern matches nothing.
    """
    if pattern == ALL_REPOSITORIES:
        return True
    if not is_valid_pattern(pattern):
        return False
    if pattern.endswith("/*"):
        prefix = pattern[:-1]  # keeps the trailing "/"
        return len(repository) > len(prefix) and repository.startswith(prefix)
    return repository == pattern


def granted_permissions(actions: Iterable[ScopeAction], repository: str) -> frozenset[str]:
    """The scope-map permissions (`PERMISSIONS` values) `actions` give on `repository`."""
    return frozenset(
        action.permission for action in actions if pattern_matches(action.pattern, repository)
    )


def granted_docker_actions(actions: Iterable[ScopeAction], repository: str) -> frozenset[str]:
    """The docker token action names (`DOCKER_ACTIONS` keys) `actions` give on `repository`.

    Exactly what is granted, with one implication as in ACR: `content/read` also gives
    `metadata_read`. (`push` is reported without `pull` unless `content/read` is held.)
    """
    permissions = granted_permissions(actions, repository)
    names = {_DOCKER_ACTION_OF[permission] for permission in permissions}
    if CONTENT_READ in permissions:
        names.add("metadata_read")
    return frozenset(names)


def catalog_allowed(actions: Iterable[ScopeAction]) -> bool:
    """Whether `registry:catalog:*` is allowed: some action gives `metadata/read` or
    `content/read` on the pattern `*`."""
    return any(
        action.pattern == ALL_REPOSITORIES and action.permission in (METADATA_READ, CONTENT_READ)
        for action in actions
    )


def _on_all(*permissions: str) -> tuple[ScopeAction, ...]:
    return tuple(ScopeAction(ALL_REPOSITORIES, permission) for permission in permissions)


# The system scope maps every ACR registry has, by name.
SYSTEM_SCOPE_MAPS: Final[Mapping[str, tuple[ScopeAction, ...]]] = MappingProxyType(
    {
        "_repositories_admin": _on_all(
            CONTENT_READ, CONTENT_WRITE, CONTENT_DELETE, METADATA_READ, METADATA_WRITE
        ),
        "_repositories_pull": _on_all(CONTENT_READ),
        "_repositories_pull_metadata_read": _on_all(CONTENT_READ, METADATA_READ),
        "_repositories_push": _on_all(CONTENT_READ, CONTENT_WRITE),
        "_repositories_push_metadata_write": _on_all(
            CONTENT_READ, CONTENT_WRITE, METADATA_READ, METADATA_WRITE
        ),
    }
)
