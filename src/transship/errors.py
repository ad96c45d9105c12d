"""The domain errors every layer below `api/` raises.

They say what went wrong in the service's own words — a thing not found, a collision, an
invalid field, a refusal — and know nothing of HTTP, status numbers or response envelopes:
`api/` alone turns them into answers, from one table (`transship.api.error_map`), in the
envelope of the surface the request came in on (OCI, ARM or OAuth).

Every error carries:
- `message`: the text the client is shown. It is safe to show: it never quotes a secret.
- `subject`: the kind of thing concerned ("manifest", "blob", "registry", "scope map", …).
- `reason`: a short word telling apart cases of one kind that clients see differently (a
  registry name that is invalid vs. reserved both are `Invalid`; the API answers them with
  different codes because `reason` differs).
- `field`: the request field at fault, where there is one (ARM's `target`).
- `detail`: small facts safe to show, for envelopes that carry them (OCI's `detail`).
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """The base of every domain error; raise one of its subclasses."""

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        reason: str | None = None,
        field: str | None = None,
        detail: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.subject = subject
        self.reason = reason
        self.field = field
        self.detail = dict(detail) if detail is not None else None


class NotFound(DomainError):
    """The `subject` named `name` does not exist, or the caller may not know it exists."""

    def __init__(
        self,
        subject: str,
        name: str,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        detail: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, subject=subject, reason=reason, field=field, detail=detail)
        self.name = name


class Conflict(DomainError):
    """A write collided with the stored state: a unique key (a name, an id) is taken, a row it
    refers to is gone, or other things still depend on what is to be deleted (`reason`
    "in_use"). metadata/ raises it in place of the database driver's IntegrityError, which
    never leaves metadata/; services that catch it raise their own, naming the subject. The
    message never quotes the values written."""


class Invalid(DomainError):
    """A value the caller sent is not acceptable; `field` names it (None when the request as a
    whole, not one field, is at fault)."""

    def __init__(
        self,
        field: str | None,
        message: str,
        *,
        subject: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, subject=subject, reason=reason, field=field, detail=detail)


class Unauthenticated(DomainError):
    """The credentials given do not prove who the caller is."""


class Denied(DomainError):
    """The caller is known but may not do this (role, scope, network rule, tenant)."""


class LimitExceeded(DomainError):
    """A count the service bounds (tags per request, children of an index) is over its
    limit."""


class TooLarge(LimitExceeded):
    """Content is larger than the service accepts."""


class Unsupported(DomainError):
    """The operation is not offered on this subject (a built-in role, the default registry,
    an unknown grant type)."""


class UpstreamFailure(DomainError):
    """A registry or service this one depends on failed or refused."""


class TooManyRequests(DomainError):
    """Refused for now; the same request may succeed after `retry_after` whole seconds (at
    least 1)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        subject: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, subject=subject, reason=reason)
        self.retry_after = max(1, retry_after)


# Every concrete domain error class; api/ has a mapping for each on every surface.
DOMAIN_ERRORS: tuple[type[DomainError], ...] = (
    NotFound,
    Conflict,
    Invalid,
    Unauthenticated,
    Denied,
    LimitExceeded,
    TooLarge,
    Unsupported,
    UpstreamFailure,
    TooManyRequests,
)
