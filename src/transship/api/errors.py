"""The one place errors become HTTP responses."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from transship.api import envelopes as e
from transship.api.envelopes import ArmError, OAuthError, OciError
from transship.api.error_map import OCI_PATHS, Surface, envelope_for, surface_of
from transship.errors import DomainError
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
    return _json_response(error.status, error.body(), headers, method)


def _chunk_headers(error: ChunkOutOfOrder) -> dict[str, str]:
    """Where an upload stands, sent with the 416 of a chunk out of order."""
    return {
        "Location": upload_location(error.repository, error.upload_id),
        "Range": range_header(error.offset),
        "Docker-Upload-UUID": error.upload_id,
    }


def domain_response(error: DomainError, path: str, method: str) -> web.Response:
    """A domain error answered in the envelope of the surface `path` belongs to, with the
    code and status of the one table (api/error_map.py)."""
    surface = surface_of(path)
    mapped = envelope_for(error, surface)
    if isinstance(mapped, OciError):
        if isinstance(error, ChunkOutOfOrder):
            mapped.headers.update(_chunk_headers(error))
        return oci_response(mapped, method)
    return envelope_response(mapped, method)


def envelope_response(error: ArmError | OAuthError, method: str) -> web.Response:
    extra = {"Cache-Control": "no-store"} if isinstance(error, OAuthError) else {}
    return _json_response(error.status, error.body(), {**extra, **error.headers}, method)


# Paths answered with the ARM error envelope even when no route matches.
_ARM_PATHS = ("/subscriptions", "/providers/", "/tenants", "/transship/v1/")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except DomainError as error:
        return domain_response(error, request.path, request.method)
    except OciError as error:
        return oci_response(error, request.method)
    except (ArmError, OAuthError) as error:
        return envelope_response(error, request.method)
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
        if surface_of(request.path) is not Surface.OCI:
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
        if request.path.startswith(OCI_PATHS):
            return oci_response(OciError(UNKNOWN, "internal server error"), request.method)
        return _json_response(
            500,
            {"error": {"code": "InternalServerError", "message": "internal server error"}},
            {},
            request.method,
        )
