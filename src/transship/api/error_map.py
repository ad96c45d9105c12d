"""The one table from domain errors to answers: for a domain error raised on a surface (the
OCI data plane, ARM management, the Entra OAuth token endpoints), the envelope code and the
HTTP status it is answered with.

Rules are tried in order and the first that matches wins, so specific rules (a subject, a
reason, a field) come before the default of their class. Every class of
`transship.errors.DOMAIN_ERRORS` has a default on every surface (a test checks it), so no
domain error can fall through to a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from transship import errors as d
from transship.api.envelopes import ArmError, OAuthError, OciError, OciErrorCode


class Surface(StrEnum):
    OCI = "oci"  # /v2, /acr/v1 and the ACR token endpoints: {"errors":[…]}
    ARM = "arm"  # management (and anything else): {"error":{…}}
    OAUTH = "oauth"  # the Entra token endpoints /{tenant}/oauth2/…: RFC 6749 errors


# The data plane's paths (OCI envelope) and the Entra token endpoints (OAuth envelope).
OCI_PATHS = ("/v2", "/acr/", "/oauth2/")
_ENTRA_PATHS = re.compile(r"/[^/]+/oauth2/")


def surface_of(path: str) -> Surface:
    """The surface a request path belongs to; management is the default."""
    if path.startswith(OCI_PATHS):
        return Surface.OCI
    if _ENTRA_PATHS.match(path):
        return Surface.OAUTH
    return Surface.ARM


@dataclass(frozen=True, slots=True)
class Rule:
    """Answer `error` on `surface` with `code` and `status` when the error's subject, reason
    and field equal those given here (None matches anything)."""

    error: type[d.DomainError]
    surface: Surface
    code: str
    status: int
    subject: str | None = None
    reason: str | None = None
    field: str | None = None

    def matches(self, error: d.DomainError, surface: Surface) -> bool:
        return (
            surface is self.surface
            and isinstance(error, self.error)
            and (self.subject is None or error.subject == self.subject)
            and (self.reason is None or error.reason == self.reason)
            and (self.field is None or error.field == self.field)
        )

    @property
    def is_default(self) -> bool:
        return self.subject is None and self.reason is None and self.field is None


_O, _A, _T = Surface.OCI, Surface.ARM, Surface.OAUTH

RULES: tuple[Rule, ...] = (
    # -- OCI ------------------------------------------------------------------------------
    Rule(d.NotFound, _O, "BLOB_UNKNOWN", 404, subject="blob"),
    Rule(d.NotFound, _O, "BLOB_UPLOAD_UNKNOWN", 404, subject="upload"),
    Rule(d.NotFound, _O, "MANIFEST_UNKNOWN", 404, subject="manifest"),
    Rule(d.NotFound, _O, "NAME_UNKNOWN", 404, subject="repository"),
    Rule(d.NotFound, _O, "NAME_UNKNOWN", 404, subject="registry"),
    Rule(d.NotFound, _O, "TAG_UNKNOWN", 404, subject="tag"),
    Rule(d.NotFound, _O, "NOT_FOUND", 404),
    Rule(d.Conflict, _O, "UNSUPPORTED", 405, reason="in_use"),
    Rule(d.Conflict, _O, "BLOB_UPLOAD_INVALID", 400, subject="upload"),
    Rule(d.Conflict, _O, "CONFLICT", 409),
    Rule(d.Invalid, _O, "MANIFEST_BLOB_UNKNOWN", 400, reason="missing_reference"),
    Rule(d.Invalid, _O, "DIGEST_INVALID", 400, field="digest"),
    Rule(d.Invalid, _O, "SIZE_INVALID", 400, field="size"),
    Rule(d.Invalid, _O, "BLOB_UPLOAD_INVALID", 416, field="range"),
    Rule(d.Invalid, _O, "MANIFEST_INVALID", 400, field="manifest"),
    Rule(d.Invalid, _O, "MANIFEST_INVALID", 400, field="tag"),
    Rule(d.Invalid, _O, "NAME_INVALID", 400, field="name"),
    Rule(d.Invalid, _O, "INVALID_REQUEST", 400),
    Rule(d.Unauthenticated, _O, "UNAUTHORIZED", 401),
    # A locked repository, tag or manifest (changeable attributes): ACR's code and status.
    Rule(d.Denied, _O, "REGISTRY_DISALLOWED_OPERATION", 405, reason="locked"),
    Rule(d.Denied, _O, "DENIED", 403),
    Rule(d.TooLarge, _O, "SIZE_INVALID", 413),
    Rule(d.LimitExceeded, _O, "MANIFEST_INVALID", 400, subject="manifest"),
    Rule(d.LimitExceeded, _O, "DENIED", 403),
    Rule(d.Unsupported, _O, "UNSUPPORTED", 405),
    Rule(d.UpstreamFailure, _O, "UNKNOWN", 502),
    Rule(d.TooManyRequests, _O, "TOOMANYREQUESTS", 429),
    # -- ARM ------------------------------------------------------------------------------
    Rule(d.NotFound, _A, "TenantNotFound", 404, subject="tenant"),
    Rule(d.NotFound, _A, "SubscriptionNotFound", 404, subject="subscription"),
    Rule(d.NotFound, _A, "ResourceGroupNotFound", 404, subject="resource group"),
    Rule(d.NotFound, _A, "ResourceNotFound", 404),
    Rule(d.Conflict, _A, "AlreadyInUse", 409, subject="registry", reason="name_taken"),
    Rule(
        d.Conflict, _A, "RoleDefinitionConflict", 409, subject="role definition", reason="builtin"
    ),
    Rule(
        d.Conflict, _A, "RoleDefinitionConflict", 409, subject="role definition", reason="id_taken"
    ),
    Rule(
        d.Conflict,
        _A,
        "RoleDefinitionWithSameNameExists",
        409,
        subject="role definition",
        reason="name_taken",
    ),
    Rule(
        d.Conflict,
        _A,
        "RoleDefinitionHasAssignments",
        409,
        subject="role definition",
        reason="in_use",
    ),
    Rule(d.Conflict, _A, "RoleAssignmentExists", 409, subject="role assignment", reason="exists"),
    Rule(
        d.Conflict,
        _A,
        "RoleAssignmentUpdateNotPermitted",
        409,
        subject="role assignment",
        reason="id_taken",
    ),
    Rule(d.Conflict, _A, "ResourceGroupNotEmpty", 409, subject="resource group", reason="in_use"),
    Rule(d.Conflict, _A, "ScopeMapInUse", 409, subject="scope map", reason="in_use"),
    Rule(d.Conflict, _A, "Conflict", 409),
    Rule(d.Invalid, _A, "InvalidRegistryName", 400, reason="registry_name"),
    Rule(d.Invalid, _A, "InvalidResourceGroupName", 400, reason="resource_group_name"),
    Rule(d.Invalid, _A, "AdminUserDisabled", 400, reason="admin_user_disabled"),
    Rule(d.Invalid, _A, "InvalidScope", 400, subject="scope"),
    Rule(d.Invalid, _A, "InvalidRoleDefinition", 400, subject="role definition"),
    Rule(d.Invalid, _A, "InvalidRoleAssignment", 400, subject="role assignment"),
    Rule(d.Invalid, _A, "InvalidParameter", 400),
    Rule(d.Unauthenticated, _A, "InvalidSourceCredentials", 401, reason="source_credentials"),
    Rule(d.Unauthenticated, _A, "InvalidAuthenticationToken", 401),
    Rule(d.Denied, _A, "NetworkAccessDenied", 403, reason="network"),
    Rule(d.Denied, _A, "CrossTenantImportNeedsCredentials", 403, reason="cross_tenant"),
    Rule(d.Denied, _A, "OperationDisallowed", 409, reason="locked"),
    Rule(d.Denied, _A, "AuthorizationFailed", 403),
    Rule(d.TooLarge, _A, "RequestTooLarge", 413),
    Rule(d.LimitExceeded, _A, "QuotaExceeded", 400),
    Rule(
        d.Unsupported,
        _A,
        "CannotDeleteBuiltInRole",
        400,
        subject="role definition",
        reason="builtin",
    ),
    Rule(d.Unsupported, _A, "SystemScopeMapReadOnly", 409, subject="scope map", reason="builtin"),
    Rule(d.Unsupported, _A, "DefaultRegistry", 409, subject="registry", reason="default"),
    Rule(d.Unsupported, _A, "FeatureNotSupported", 400, reason="feature"),
    Rule(d.Unsupported, _A, "OperationNotAllowed", 400),
    Rule(d.UpstreamFailure, _A, "BadGateway", 502),
    Rule(d.TooManyRequests, _A, "TooManyRequests", 429),
    # -- OAuth (RFC 6749 section 5.2, as Entra ID answers) ---------------------------------
    Rule(d.NotFound, _T, "invalid_request", 400),
    Rule(d.Conflict, _T, "invalid_request", 400),
    Rule(d.Invalid, _T, "invalid_scope", 400, field="scope"),
    Rule(d.Invalid, _T, "invalid_request", 400),
    Rule(d.Unauthenticated, _T, "invalid_client", 401, subject="client"),
    Rule(d.Unauthenticated, _T, "invalid_grant", 400),
    Rule(d.Denied, _T, "unauthorized_client", 400),
    Rule(d.TooLarge, _T, "invalid_request", 400),
    Rule(d.LimitExceeded, _T, "invalid_request", 400),
    Rule(d.Unsupported, _T, "unsupported_grant_type", 400, subject="grant type"),
    Rule(d.Unsupported, _T, "invalid_request", 400),
    Rule(d.UpstreamFailure, _T, "temporarily_unavailable", 503),
    Rule(d.TooManyRequests, _T, "temporarily_unavailable", 429),
)


def rule_for(error: d.DomainError, surface: Surface) -> Rule:
    """The first rule matching `error` on `surface`. Raises LookupError for an error class
    the table does not know (a test keeps every class of DOMAIN_ERRORS known)."""
    for rule in RULES:
        if rule.matches(error, surface):
            return rule
    raise LookupError(f"no answer for {type(error).__name__} on the {surface} surface")


Envelope = OciError | ArmError | OAuthError


def envelope_for(error: d.DomainError, surface: Surface) -> Envelope:
    """The envelope error that answers `error` on `surface`: the rule's code and status, the
    error's message, its `detail` (OCI) or `field` as `target` (ARM), and `Retry-After` for
    TooManyRequests."""
    rule = rule_for(error, surface)
    headers = (
        {"Retry-After": str(error.retry_after)} if isinstance(error, d.TooManyRequests) else {}
    )
    if surface is Surface.OCI:
        return OciError(
            OciErrorCode(rule.code, rule.status), error.message, error.detail, headers=headers
        )
    if surface is Surface.OAUTH:
        return OAuthError(rule.status, rule.code, error.message, headers=headers)
    return ArmError(rule.status, rule.code, error.message, target=error.field, headers=headers)
