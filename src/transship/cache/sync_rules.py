"""What a sync rule says (a Transship extension; ACR has no equivalent): which upstream
repositories to mirror into which repository of a registry, which of their tags, which
platforms and referrers, how often, and whether tags deleted upstream are untagged here.

Values only, validated and serialisable; the credentials are kept apart (sealed on the rule's
row, never in its definition).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from transship.cache.tag_filters import TagFilter
from transship.errors import Invalid
from transship.imports.model import PlatformSubset, ReferrerSelection
from transship.oci.reference import InvalidReference, normalize_docker_hub, validate_repository

MAX_SOURCE_REPOSITORIES = 100
# Rule names as ACR names its child resources (cache rules, webhooks): letters, digits, '-'.
RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,48}[A-Za-z0-9]")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?"
)


def check_rule_name(name: str) -> str:
    """Raises Invalid naming `ruleName` unless `name` is 3-50 letters, digits and '-'
    (starting and ending with a letter or digit)."""
    if not RULE_NAME.fullmatch(name):
        raise Invalid(
            "ruleName",
            f"The sync rule name {name!r} is invalid: use 3 to 50 letters, digits and '-', "
            "starting and ending with a letter or digit.",
        )
    return name


@dataclass(frozen=True, slots=True)
class SyncRuleSpec:
    """A rule's definition.

    `source_repositories` are repositories on `source_host` (Docker Hub names normalised:
    `alpine` is `library/alpine` there). Each lands in `target_for(source)`: with one source
    repository, `target_repository` itself (default: the source's name); with several,
    `target_repository/<source>` (default: the source's name). `interval_seconds` None: the
    rule runs on demand only."""

    source_host: str
    source_repositories: tuple[str, ...]
    target_repository: str | None
    tag_filter: TagFilter
    platform_subset: PlatformSubset | None
    referrers: ReferrerSelection | None
    interval_seconds: int | None
    mirror_deletions: bool

    def target_for(self, source_repository: str) -> str:
        if self.target_repository is None:
            return source_repository
        if len(self.source_repositories) == 1:
            return self.target_repository
        return f"{self.target_repository}/{source_repository}"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "sourceRegistry": self.source_host,
            "sourceRepositories": list(self.source_repositories),
            "targetRepository": self.target_repository,
            "tagFilter": self.tag_filter.to_dict(),
            "intervalSeconds": self.interval_seconds,
            "mirrorDeletions": self.mirror_deletions,
        }
        if self.platform_subset is not None:
            data["platformSubset"] = self.platform_subset.to_dict()
        if self.referrers is not None:
            data["referrers"] = self.referrers.to_dict()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> SyncRuleSpec:
        data: dict[str, Any] = json.loads(text)
        tags = data.get("tagFilter") or {}
        return cls(
            source_host=data["sourceRegistry"],
            source_repositories=tuple(data["sourceRepositories"]),
            target_repository=data.get("targetRepository"),
            tag_filter=TagFilter(
                tags.get("include"), tags.get("exclude"), tags.get("semver"), tags.get("newest")
            ),
            platform_subset=(
                PlatformSubset.from_dict(data["platformSubset"])
                if data.get("platformSubset")
                else None
            ),
            referrers=(
                ReferrerSelection.from_dict(data["referrers"])
                if data.get("referrers") is not None
                else None
            ),
            interval_seconds=data.get("intervalSeconds"),
            mirror_deletions=bool(data.get("mirrorDeletions", False)),
        )


def source_host(text: str, field: str = "sourceRegistry") -> str:
    """The upstream host[:port] `text` names (a scheme and trailing '/' are dropped),
    lowercased. Raises Invalid naming `field`."""
    host = text.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if not host or not _HOST.fullmatch(host):
        raise Invalid(field, f"{field} {text!r} is not a registry host[:port].")
    return host.lower()


def source_repositories(
    host: str, repositories: tuple[str, ...], field: str = "sourceRepositories"
) -> tuple[str, tuple[str, ...]]:
    """(host, repositories) with Docker Hub's names normalised (`docker.io` and `alpine`
    become `docker.io` and `library/alpine`). Raises Invalid naming `field[i]` for an
    invalid or repeated repository, `field` for an empty or too long list."""
    if not repositories:
        raise Invalid(field, f"{field} must list at least one repository.")
    if len(repositories) > MAX_SOURCE_REPOSITORIES:
        raise Invalid(
            field, f"{field} lists {len(repositories)}; the limit is {MAX_SOURCE_REPOSITORIES}."
        )
    found: list[str] = []
    normalised_host = host
    for index, repository in enumerate(repositories):
        where = f"{field}[{index}]"
        try:
            validate_repository(repository)
        except InvalidReference as exc:
            raise Invalid(
                where, f"{where} {repository!r} is not a repository name: {exc}"
            ) from None
        normalised_host, name = normalize_docker_hub(host, repository)
        if name in found:
            raise Invalid(where, f"{where} {repository!r} is listed twice.")
        found.append(name)
    return normalised_host.lower(), tuple(found)


def target_repository(text: str | None, field: str = "targetRepository") -> str | None:
    """Raises Invalid naming `field` unless `text` is None or a repository name."""
    if text is None:
        return None
    try:
        validate_repository(text)
    except InvalidReference as exc:
        raise Invalid(field, f"{field} {text!r} is not a repository name: {exc}") from None
    return text


def interval(seconds: int | None, minimum: int, field: str = "intervalSeconds") -> int | None:
    """Raises Invalid naming `field` when `seconds` is below `minimum` (the setting
    sync_min_interval_seconds)."""
    if seconds is None:
        return None
    if seconds < minimum:
        raise Invalid(
            field,
            f"{field} must be at least {minimum} (setting sync_min_interval_seconds), or "
            "omitted for a rule that runs on demand only.",
        )
    return seconds
