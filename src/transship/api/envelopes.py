"""The response envelopes of the API's three surfaces, and their codes.

Only `api/` builds them: the error middleware renders domain errors into them through the
mapping table (`api/error_map.py`), and handlers raise them directly for problems of HTTP
itself (a bad query parameter, a body too large, a missing header).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class OciErrorCode:
    code: str
    status: int


# Codes of the OCI distribution spec, with the status registries answer them with.
BLOB_UNKNOWN = OciErrorCode("BLOB_UNKNOWN", 404)
BLOB_UPLOAD_INVALID = OciErrorCode("BLOB_UPLOAD_INVALID", 400)
BLOB_UPLOAD_UNKNOWN = OciErrorCode("BLOB_UPLOAD_UNKNOWN", 404)
DIGEST_INVALID = OciErrorCode("DIGEST_INVALID", 400)
MANIFEST_BLOB_UNKNOWN = OciErrorCode("MANIFEST_BLOB_UNKNOWN", 400)
MANIFEST_INVALID = OciErrorCode("MANIFEST_INVALID", 400)
MANIFEST_UNKNOWN = OciErrorCode("MANIFEST_UNKNOWN", 404)
NAME_INVALID = OciErrorCode("NAME_INVALID", 400)
NAME_UNKNOWN = OciErrorCode("NAME_UNKNOWN", 404)
SIZE_INVALID = OciErrorCode("SIZE_INVALID", 400)
UNAUTHORIZED = OciErrorCode("UNAUTHORIZED", 401)
DENIED = OciErrorCode("DENIED", 403)
UNSUPPORTED = OciErrorCode("UNSUPPORTED", 405)
TOO_MANY_REQUESTS = OciErrorCode("TOOMANYREQUESTS", 429)
# Not in the spec's table but used with the statuses the spec prescribes.
RANGE_INVALID = OciErrorCode("BLOB_UPLOAD_INVALID", 416)
MANIFEST_TOO_LARGE = OciErrorCode("SIZE_INVALID", 413)


class OciError(Exception):
    """An error answered with the OCI envelope `{"errors":[{"code","message","detail"}]}`."""

    def __init__(
        self,
        code: OciErrorCode,
        message: str,
        detail: Any = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status if status is not None else code.status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


@dataclass
class ArmError(Exception):
    """An error answered with the ARM envelope `{"error":{"code","message","details"}}`."""

    status: int
    code: str
    message: str
    target: str | None = None
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return {"error": error}


@dataclass(frozen=True, slots=True)
class OAuthError(Exception):
    """An error of an OAuth 2.0 token endpoint (RFC 6749 section 5.2), answered as
    `{"error","error_description","error_codes"}` the way Entra ID answers it."""

    status: int
    # invalid_request | invalid_client | invalid_grant | unauthorized_client |
    # unsupported_grant_type | invalid_scope
    error: str
    description: str
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.description)

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": self.description,
            "error_codes": [self.status],
        }
