"""The one place errors become HTTP responses."""

from __future__ import annotations

import json
import logging
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from transship import errors as e
from transship.errors import ArmError, OAuthError, OciError
from transship.identity.throttle import RetryLater
from transship.registry.blobs import ChunkOutOfOrder

log = logging.getLogger(__name__)

DISTRIBUTION_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
UNKNOWN = e.OciErrorCode("UNKNOWN", 500)


def _json_response(
    status: int, body: dict[str, object], headers: dict[str, str], method: str
) -> web.Response:
    data = b"" if method == "HEAD" else json.dumps(body).encode()
    response = web.Response(
        status=status, body=data, content_type="application/json", headers=headers
    )
    return response


def upload_location(repository: str, upload_id: str) -> str:
    return f"/v2/{repository}/blobs/uploads/{upload_id}"


def range_header(offset: int) -> str:
    """The `Range` of an upload status: inclusive end; `0-0` also stands for empty."""
    return f"0-{max(offset - 1, 0)}"


def oci_response(error: OciError, method: str) -> web.Response:
    headers = {**DISTRIBUTION_VERSION_HEADER, **error.headers}
    if isinstance(error, ChunkOutOfOrder):
        headers.update(
            {
                "Location": upload_location(error.repository, error.upload_id),
                "Range": range_header(error.offset),
                "Docker-Upload-UUID": error.upload_id,
            }
        )
    return _json_response(error.status, error.body(), headers, method)


# Paths answered with the ARM error envelope even when no route matches.
_ARM_PATHS = ("/subscriptions", "/providers/", "/tenants", "/transship/v1/")
# The data plane's paths (OCI envelope) and the Entra token endpoints (OAuth envelope).
_OCI_PATHS = ("/v2", "/acr/", "/oauth2/")
_ENTRA_PATHS = re.compile(r"/[^/]+/oauth2/")


def retry_later_error(error: RetryLater, path: str) -> OciError | ArmError | OAuthError:
    """A credential check refused for now (too many failures, hashing pool full): 429 with
    `Retry-After`, in the envelope of the surface `path` belongs to."""
    headers = {"Retry-After": str(error.retry_after)}
    if path.startswith(_OCI_PATHS):
        return OciError(e.TOO_MANY_REQUESTS, error.message, headers=headers)
    if _ENTRA_PATHS.match(path):
        return OAuthError(429, "temporarily_unavailable", error.message, headers=headers)
    return ArmError(429, "TooManyRequests", error.message, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except RetryLater as error:
        mapped = retry_later_error(error, request.path)
        if isinstance(mapped, OciError):
            return oci_response(mapped, request.method)
        extra = {"Cache-Control": "no-store"} if isinstance(mapped, OAuthError) else {}
        return _json_response(
            mapped.status, mapped.body(), {**extra, **mapped.headers}, request.method
        )
    except OciError as error:
        return oci_response(error, request.method)
    except ArmError as error:
        return _json_response(error.status, error.body(), error.headers, request.method)
    except OAuthError as error:
        return _json_response(
            error.status,
            error.body(),
            {"Cache-Control": "no-store", **error.headers},
            request.method,
        )
    except web.HTTPException as exc:
        if request.path.startswith(_ARM_PATHS) and exc.status in (404, 405):
            arm_error = ArmError(
                exc.status,
                "NotFound" if exc.status == 404 else "MethodNotAllowed",
                f"No route for {request.method} {request.path}."
                if exc.status == 404
                else f"{request.method} is not supported on {request.path}.",
                headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
            )
            return _json_response(
                arm_error.status, arm_error.body(), arm_error.headers, request.method
            )
        if not request.path.startswith(("/v2", "/acr/", "/oauth2/")):
            raise
        if exc.status == 405:
            return oci_response(
                OciError(e.UNSUPPORTED, f"{request.method} is not supported on {request.path}"),
                request.method,
            )
        if exc.status == 404:
            return oci_response(
                OciError(e.OciErrorCode("NOT_FOUND", 404), f"no such endpoint: {request.path}"),
                request.method,
            )
        if exc.status == 413:
            return oci_response(
                OciError(e.SIZE_INVALID, "request body too large", status=413), request.method
            )
        raise
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith(("/v2", "/acr/", "/oauth2/")):
            return oci_response(OciError(UNKNOWN, "internal server error"), request.method)
        return _json_response(
            500,
            {"error": {"code": "InternalServerError", "message": "internal server error"}},
            {},
            request.method,
        )
