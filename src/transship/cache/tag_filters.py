"""Which upstream tags a sync rule copies: regular expressions, a semver range and the newest
N by semver. Pure: no I/O, no settings.

A filter applies its parts in this order, each to what the previous one kept:

1. `include`: a tag is kept when the regular expression matches the whole tag (default:
   every tag);
2. `exclude`: a tag is dropped when the regular expression matches the whole tag;
3. `semver`: a tag is kept when it is a semantic version (`1.2.3`, `v1.2`, `1.2.3-rc.1`)
   within the range; tags that are no version are dropped;
4. `newest`: the N highest semantic versions are kept (tags that are no version are
   dropped); equal versions (`v1.2` and `1.2.0`) are ordered by tag name.

Ranges are written as npm and Cargo write them: comparators joined by spaces all hold
(`>=1.2 <2`), alternatives joined by `||`; `^1.2` (same major), `~1.2` (same minor), `1.x`
or `1.2.*` (a wildcard part), `=1.2.3` or `1.2.3` (exact). A pre-release (`-rc.1`) is kept
only by a range that names a pre-release itself: `>=2.0.0-rc.0` includes `2.0.0-rc.1`, `>=1`
does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

from transship.errors import Invalid

MAX_PATTERN_LENGTH = 256
MAX_RANGE_LENGTH = 256
MAX_NEWEST = 10_000

_VERSION = re.compile(
    r"v?(?P<major>0|[1-9]\d{0,8})(?:\.(?P<minor>0|[1-9]\d{0,8}))?(?:\.(?P<patch>0|[1-9]\d{0,8}))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_COMPARATOR = re.compile(r"(?P<op>\^|~|>=|<=|>|<|=)?\s*(?P<version>\S+)")
_PARTIAL = re.compile(
    r"v?(?P<major>\d{1,9}|[xX*])(?:\.(?P<minor>\d{1,9}|[xX*]))?(?:\.(?P<patch>\d{1,9}|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_WILDCARDS = frozenset({"x", "X", "*"})


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A semantic version; ordered by precedence (a pre-release sorts before its release;
    build metadata is ignored)."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The version a tag names, or None when it names none. Missing minor and patch
        parts are 0 (`v1.2` is 1.2.0)."""
        found = _VERSION.fullmatch(text)
        if found is None:
            return None
        pre = found["pre"]
        return cls(
            int(found["major"]),
            int(found["minor"] or 0),
            int(found["patch"] or 0),
            () if pre is None else tuple(int(p) if p.isdigit() else p for p in pre.split(".")),
        )

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
        # A release outranks its pre-releases; numeric identifiers rank below alphanumeric.
        parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.release, 0 if self.pre else 1, parts)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


@dataclass(frozen=True, slots=True)
class _Comparator:
    op: str  # one of > >= < <= =
    version: Version
    # Written by the user (not a bound a partial version or ^ ~ implies): only such a
    # comparator's pre-release lets pre-releases of its version in.
    named: bool = False

    def holds(self, version: Version) -> bool:
        if self.op == ">":
            return version > self.version
        if self.op == ">=":
            return version >= self.version
        if self.op == "<":
            return version < self.version
        if self.op == "<=":
            return version <= self.version
        return version == self.version


@dataclass(frozen=True, slots=True)
class SemverRange:
    """A parsed range (see the module docstring): alternatives of comparator sets."""

    text: str
    alternatives: tuple[tuple[_Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str, field: str = "semver") -> SemverRange:
        """Raises Invalid naming `field` when `text` is no range."""
        if not text.strip():
            raise Invalid(field, f"{field} is empty; give a range such as '>=1.2 <2' or '^1.4'.")
        if len(text) > MAX_RANGE_LENGTH:
            raise Invalid(field, f"{field} is longer than {MAX_RANGE_LENGTH} characters.")
        alternatives = []
        for part in text.split("||"):
            comparators: list[_Comparator] = []
            words = _words(part)
            if not words:
                raise Invalid(field, f"{field} {text!r}: an alternative of '||' is empty.")
            for word in words:
                comparators.extend(_comparators(word, text, field))
            alternatives.append(tuple(comparators))
        return cls(text, tuple(alternatives))

    def contains(self, version: Version) -> bool:
        for comparators in self.alternatives:
            if version.pre and not any(
                c.named and c.version.pre and c.version.release == version.release
                for c in comparators
            ):
                continue
            if all(c.holds(version) for c in comparators):
                return True
        return False


def _words(part: str) -> list[str]:
    """The comparators of one alternative; an operator separated from its version by
    spaces (`>= 1.2`) is joined to it."""
    words: list[str] = []
    pending = ""
    for word in part.split():
        if word in ("^", "~", ">=", "<=", ">", "<", "="):
            pending += word
            continue
        words.append(pending + word)
        pending = ""
    if pending:
        words.append(pending)
    return words


def _comparators(word: str, text: str, field: str) -> list[_Comparator]:
    found = _COMPARATOR.fullmatch(word)
    partial = None if found is None else _PARTIAL.fullmatch(found["version"])
    if found is None or partial is None:
        raise Invalid(
            field,
            f"{field} {text!r}: {word!r} is not a comparator (e.g. '>=1.2.0', '^1.4', '~2.1', "
            "'1.x').",
        )
    op = found["op"] or "="
    parts = [partial["major"], partial["minor"], partial["patch"]]
    pre_text = partial["pre"]
    pre = (
        () if pre_text is None else tuple(int(p) if p.isdigit() else p for p in pre_text.split("."))
    )
    # How many leading parts are given (a wildcard or a missing part ends them).
    given = 0
    for value in parts:
        if value is None or value in _WILDCARDS:
            break
        given += 1
    if pre and given < 3:
        raise Invalid(field, f"{field} {text!r}: {word!r} has a pre-release but no patch part.")
    numbers = [int(p) if i < given and p is not None else 0 for i, p in enumerate(parts)]
    low = Version(numbers[0], numbers[1], numbers[2], pre)
    if given == 0:
        if op in ("<", ">"):
            # `<*` / `>*` hold for nothing.
            return [_Comparator("<", Version(0, 0, 0, (0,)))]
        return [_Comparator(">=", Version(0, 0, 0))]
    if op == "^":
        if numbers[0] > 0 or given == 1:
            high = Version(numbers[0] + 1, 0, 0, (0,))
        elif numbers[1] > 0 or given == 2:
            high = Version(0, numbers[1] + 1, 0, (0,))
        else:
            high = Version(0, 0, numbers[2] + 1, (0,))
        return [_Comparator(">=", low, named=True), _Comparator("<", high)]
    if op == "~":
        high = (
            Version(numbers[0] + 1, 0, 0, (0,))
            if given == 1
            else Version(numbers[0], numbers[1] + 1, 0, (0,))
        )
        return [_Comparator(">=", low, named=True), _Comparator("<", high)]
    if given == 3:
        return [_Comparator(op, low, named=True)]
    # A partial version stands for every version it covers: [low, next).
    high = (
        Version(numbers[0] + 1, 0, 0, (0,))
        if given == 1
        else Version(numbers[0], numbers[1] + 1, 0, (0,))
    )
    if op == "=":
        return [_Comparator(">=", low), _Comparator("<", high)]
    if op == ">":
        return [_Comparator(">=", high)]
    if op == ">=":
        return [_Comparator(">=", low)]
    if op == "<":
        return [_Comparator("<", low)]
    return [_Comparator("<", high)]  # <=


@dataclass(frozen=True, slots=True)
class TagFilter:
    """What a sync rule keeps of the upstream's tags (see the module docstring). Build it
    with `TagFilter.parse`, which validates every part."""

    include: str | None = None
    exclude: str | None = None
    semver: str | None = None
    newest: int | None = None

    @classmethod
    def parse(
        cls,
        include: str | None = None,
        exclude: str | None = None,
        semver: str | None = None,
        newest: int | None = None,
        *,
        field: str = "tagFilter",
    ) -> TagFilter:
        """Raises Invalid naming `{field}.include` / `.exclude` (not a regular expression,
        or too long), `{field}.semver` (not a range) or `{field}.newest` (not 1..10000)."""
        for name, pattern in (("include", include), ("exclude", exclude)):
            if pattern is not None:
                _compile(pattern, f"{field}.{name}")
        if semver is not None:
            SemverRange.parse(semver, f"{field}.semver")
        if newest is not None and not 1 <= newest <= MAX_NEWEST:
            raise Invalid(f"{field}.newest", f"{field}.newest must be between 1 and {MAX_NEWEST}.")
        return cls(include, exclude, semver, newest)

    def select(self, tags: Iterable[str]) -> list[str]:
        """The tags kept, in the order given (newest N: highest version first)."""
        kept = list(tags)
        if self.include is not None:
            pattern = _compile(self.include, "include")
            kept = [t for t in kept if pattern.fullmatch(t)]
        if self.exclude is not None:
            pattern = _compile(self.exclude, "exclude")
            kept = [t for t in kept if not pattern.fullmatch(t)]
        if self.semver is None and self.newest is None:
            return kept
        versions = [(t, Version.parse(t)) for t in kept]
        versioned = [(t, v) for t, v in versions if v is not None]
        if self.semver is not None:
            wanted = SemverRange.parse(self.semver)
            versioned = [(t, v) for t, v in versioned if wanted.contains(v)]
        if self.newest is None:
            return [t for t, _ in versioned]
        versioned.sort(key=lambda tv: tv[0])
        versioned.sort(key=lambda tv: tv[1], reverse=True)
        return [t for t, _ in versioned[: self.newest]]

    def to_dict(self) -> dict[str, str | int]:
        found: dict[str, str | int | None] = {
            "include": self.include,
            "exclude": self.exclude,
            "semver": self.semver,
            "newest": self.newest,
        }
        return {k: v for k, v in found.items() if v is not None}


def _compile(pattern: str, field: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise Invalid(field, f"{field} is longer than {MAX_PATTERN_LENGTH} characters.")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise Invalid(field, f"{field} is not a regular expression: {exc}.") from None
