"""The one table from domain errors to answers (api/error_map.py): every domain error the
layers below raise gets, on each surface, the envelope code and status clients have always
been answered with; and no domain error class can fall through to a 500."""

from __future__ import annotations

import pytest

from transship import errors as d
from transship.api.envelopes import ArmError, OAuthError, OciError
from transship.api.error_map import RULES, Surface, envelope_for, rule_for, surface_of
from transship.identity.throttle import TooManyFailures
from transship.registry.blobs import ChunkOutOfOrder

OCI, ARM, OAUTH = Surface.OCI, Surface.ARM, Surface.OAUTH


@pytest.mark.parametrize("error_class", d.DOMAIN_ERRORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("surface", list(Surface))
def test_every_domain_error_class_has_a_default_on_every_surface(
    error_class: type[d.DomainError], surface: Surface
) -> None:
    defaults = [r for r in RULES if r.error is error_class and r.surface is surface]
    assert any(r.is_default for r in defaults), (error_class.__name__, surface)


def test_every_subclass_of_domain_error_is_listed() -> None:
    """A new class must join DOMAIN_ERRORS (and so the test above) to be mapped."""

    def subclasses(cls: type[d.DomainError]) -> set[type[d.DomainError]]:
        found = set(cls.__subclasses__())
        return found.union(*(subclasses(c) for c in found)) if found else found

    here = {c for c in subclasses(d.DomainError) if c.__module__ == d.__name__}
    assert here == set(d.DOMAIN_ERRORS)


def test_a_specific_rule_is_never_shadowed_by_a_default_before_it() -> None:
    seen_defaults: set[tuple[type[d.DomainError], Surface]] = set()
    for rule in RULES:
        shadowing = {
            (cls, surface)
            for cls, surface in seen_defaults
            if surface is rule.surface and issubclass(rule.error, cls)
        }
        assert not shadowing, rule
        if rule.is_default:
            seen_defaults.add((rule.error, rule.surface))


@pytest.mark.parametrize(
    ("path", "surface"),
    [
        ("/v2/", OCI),
        ("/v2/app/manifests/v1", OCI),
        ("/acr/v1/_catalog", OCI),
        ("/oauth2/token", OCI),
        ("/oauth2/exchange", OCI),
        ("/tenant-1/oauth2/v2.0/token", OAUTH),
        ("/organizations/oauth2/v2.0/token", OAUTH),
        ("/subscriptions/s/resourceGroups/rg", ARM),
        ("/providers/Microsoft.Authorization/roleDefinitions", ARM),
        ("/transship/v1/tenants", ARM),
        ("/healthz", ARM),
    ],
)
def test_surface_of(path: str, surface: Surface) -> None:
    assert surface_of(path) is surface


# (the domain error, the surface) -> (the code, the status) answered before the domain
# errors existed, when the layers raised envelope errors themselves.
CASES: list[tuple[d.DomainError, Surface, str, int]] = [
    # registry/ on the data plane
    (d.NotFound("blob", "sha256:a", "m", detail={"digest": "sha256:a"}), OCI, "BLOB_UNKNOWN", 404),
    (d.NotFound("upload", "u", "m"), OCI, "BLOB_UPLOAD_UNKNOWN", 404),
    (d.NotFound("upload", "u", "m", reason="expired"), OCI, "BLOB_UPLOAD_UNKNOWN", 404),
    (d.NotFound("manifest", "v1", "m"), OCI, "MANIFEST_UNKNOWN", 404),
    (d.NotFound("repository", "app", "m"), OCI, "NAME_UNKNOWN", 404),
    (d.NotFound("registry", "x.localhost", "m"), OCI, "NAME_UNKNOWN", 404),
    (d.Conflict("m", subject="blob", reason="in_use"), OCI, "UNSUPPORTED", 405),
    (d.Conflict("m", subject="manifest", reason="in_use"), OCI, "UNSUPPORTED", 405),
    (d.Conflict("m", subject="upload"), OCI, "BLOB_UPLOAD_INVALID", 400),
    (d.Invalid("digest", "m"), OCI, "DIGEST_INVALID", 400),
    (d.Invalid("digest", "m", reason="algorithm"), OCI, "DIGEST_INVALID", 400),
    (d.Invalid("size", "m"), OCI, "SIZE_INVALID", 400),
    (ChunkOutOfOrder("u", "app", 300, 200), OCI, "BLOB_UPLOAD_INVALID", 416),
    (d.Invalid("tag", "m"), OCI, "MANIFEST_INVALID", 400),
    (d.Invalid("manifest", "m"), OCI, "MANIFEST_INVALID", 400),
    (d.Invalid("manifest", "m", reason="missing_reference"), OCI, "MANIFEST_BLOB_UNKNOWN", 400),
    (d.LimitExceeded("m", subject="manifest"), OCI, "MANIFEST_INVALID", 400),
    (d.TooLarge("m", subject="manifest"), OCI, "SIZE_INVALID", 413),
    (d.TooLarge("m", subject="blob"), OCI, "SIZE_INVALID", 413),
    (TooManyFailures(7, "m"), OCI, "TOOMANYREQUESTS", 429),
    # registry/, identity/ and imports/ on the management API
    (d.NotFound("registry", "r", "m"), ARM, "ResourceNotFound", 404),
    (d.NotFound("scope map", "s", "m", field="scopeMapId"), ARM, "ResourceNotFound", 404),
    (d.NotFound("token", "t", "m"), ARM, "ResourceNotFound", 404),
    (d.NotFound("tenant", "t", "m", field="tenantId"), ARM, "TenantNotFound", 404),
    (d.NotFound("subscription", "s", "m"), ARM, "SubscriptionNotFound", 404),
    (d.NotFound("resource group", "rg", "m"), ARM, "ResourceGroupNotFound", 404),
    (d.Invalid("name", "m", reason="registry_name"), ARM, "InvalidRegistryName", 400),
    (d.Invalid("properties.loginServer", "m"), ARM, "InvalidParameter", 400),
    (d.Invalid("name", "m"), ARM, "InvalidParameter", 400),
    (
        d.Invalid("resourceGroupName", "m", reason="resource_group_name"),
        ARM,
        "InvalidResourceGroupName",
        400,
    ),
    (d.Invalid(None, "m", reason="admin_user_disabled"), ARM, "AdminUserDisabled", 400),
    (d.Invalid("scope", "m", subject="scope"), ARM, "InvalidScope", 400),
    (d.Invalid("roleName", "m", subject="role definition"), ARM, "InvalidRoleDefinition", 400),
    (d.Invalid("scope", "m", subject="role assignment"), ARM, "InvalidRoleAssignment", 400),
    (
        d.Conflict("m", subject="registry", reason="name_taken", field="name"),
        ARM,
        "AlreadyInUse",
        409,
    ),
    (
        d.Conflict("m", subject="role definition", reason="builtin"),
        ARM,
        "RoleDefinitionConflict",
        409,
    ),
    (
        d.Conflict("m", subject="role definition", reason="id_taken"),
        ARM,
        "RoleDefinitionConflict",
        409,
    ),
    (
        d.Conflict("m", subject="role definition", reason="name_taken"),
        ARM,
        "RoleDefinitionWithSameNameExists",
        409,
    ),
    (
        d.Conflict("m", subject="role definition", reason="in_use"),
        ARM,
        "RoleDefinitionHasAssignments",
        409,
    ),
    (d.Conflict("m", subject="role assignment", reason="exists"), ARM, "RoleAssignmentExists", 409),
    (
        d.Conflict("m", subject="role assignment", reason="id_taken"),
        ARM,
        "RoleAssignmentUpdateNotPermitted",
        409,
    ),
    (d.Conflict("m", subject="resource group", reason="in_use"), ARM, "ResourceGroupNotEmpty", 409),
    (d.Conflict("m", subject="scope map", reason="in_use"), ARM, "ScopeMapInUse", 409),
    (d.Conflict("m", subject="scope map"), ARM, "Conflict", 409),
    (d.Conflict("m", subject="user", field="userName"), ARM, "Conflict", 409),
    (
        d.Unsupported("m", subject="role definition", reason="builtin"),
        ARM,
        "CannotDeleteBuiltInRole",
        400,
    ),
    (d.Unsupported("m", subject="scope map", reason="builtin"), ARM, "SystemScopeMapReadOnly", 409),
    (d.Unsupported("m", subject="registry", reason="default"), ARM, "DefaultRegistry", 409),
    (d.Denied("m"), ARM, "AuthorizationFailed", 403),
    (d.Denied("m", field="source.credentials"), ARM, "AuthorizationFailed", 403),
    (d.Denied("m", reason="network", field="source"), ARM, "NetworkAccessDenied", 403),
    (d.Denied("m", reason="cross_tenant"), ARM, "CrossTenantImportNeedsCredentials", 403),
    (d.Unauthenticated("m", reason="source_credentials"), ARM, "InvalidSourceCredentials", 401),
    (TooManyFailures(7, "m"), ARM, "TooManyRequests", 429),
    # identity/entra.py on the Entra token endpoints
    (d.NotFound("tenant", "t", "AADSTS90002: m"), OAUTH, "invalid_request", 400),
    (d.Invalid("scope", "AADSTS70011: m"), OAUTH, "invalid_scope", 400),
    (d.Unauthenticated("AADSTS7000215: m", subject="client"), OAUTH, "invalid_client", 401),
    (d.Unauthenticated("AADSTS50126: m", subject="user"), OAUTH, "invalid_grant", 400),
    (d.Unsupported("AADSTS70003: m", subject="grant type"), OAUTH, "unsupported_grant_type", 400),
    (TooManyFailures(7, "m"), OAUTH, "temporarily_unavailable", 429),
]


@pytest.mark.parametrize(
    ("error", "surface", "code", "status"),
    CASES,
    ids=[f"{type(c[0]).__name__}-{c[1]}-{c[2]}-{i}" for i, c in enumerate(CASES)],
)
def test_the_table_answers_as_before(
    error: d.DomainError, surface: Surface, code: str, status: int
) -> None:
    rule = rule_for(error, surface)
    assert (rule.code, rule.status) == (code, status)


def test_an_oci_answer_carries_the_message_and_the_detail() -> None:
    error = d.NotFound(
        "blob", "sha256:a", "blob sha256:a is not in repository app", detail={"digest": "sha256:a"}
    )
    answer = envelope_for(error, OCI)
    assert isinstance(answer, OciError)
    assert answer.body() == {
        "errors": [
            {
                "code": "BLOB_UNKNOWN",
                "message": "blob sha256:a is not in repository app",
                "detail": {"digest": "sha256:a"},
            }
        ]
    }
    without = envelope_for(d.NotFound("manifest", "v1", "gone"), OCI)
    assert without.body() == {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "gone"}]}


def test_an_arm_answer_names_the_field_as_target_only_when_there_is_one() -> None:
    answer = envelope_for(d.Invalid("properties.loginServer", "read-only"), ARM)
    assert isinstance(answer, ArmError)
    assert answer.body() == {
        "error": {
            "code": "InvalidParameter",
            "message": "read-only",
            "target": "properties.loginServer",
        }
    }
    untargeted = envelope_for(d.Denied("no"), ARM)
    assert untargeted.body() == {"error": {"code": "AuthorizationFailed", "message": "no"}}


def test_an_oauth_answer_is_rfc_6749_as_entra_answers() -> None:
    answer = envelope_for(d.Unauthenticated("AADSTS7000215: bad", subject="client"), OAUTH)
    assert isinstance(answer, OAuthError)
    assert answer.body() == {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: bad",
        "error_codes": [401],
    }


@pytest.mark.parametrize("surface", list(Surface))
def test_too_many_requests_says_when_to_retry(surface: Surface) -> None:
    answer = envelope_for(TooManyFailures(7, "slow down"), surface)
    assert answer.status == 429 and answer.headers == {"Retry-After": "7"}
    assert envelope_for(d.NotFound("blob", "b", "m"), surface).headers == {}
