"""Signing in and out. Sign-in goes through the token endpoint's own code
(`EntraTokens.issue`, with its failure throttle): a user's password grant or a service
principal's client credentials; the token it issues is verified like any management token
and its principal gets a server-side session.

The sign-in form carries a CSRF token too (login CSRF): a random value in a short-lived
cookie of its own and in the form's hidden field, which must match.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from transship.api.auth import origin_of
from transship.errors import DomainError, NotFound, Unauthenticated
from transship.identity.entra import TokenRequest
from transship.identity.portal_sessions import same_token
from transship.identity.throttle import RetryLater
from transship.portal.web import (
    COOKIE,
    PREFIX,
    SESSION,
    SIGN_IN_COOKIE,
    clear_cookie,
    error_page,
    local_next,
    page,
    page_response,
    see_other,
    services_of,
    set_cookie,
)

KINDS = {"user": "password", "sp": "client_credentials"}
_SIGN_IN_TOKEN_SECONDS = 3600


async def _default_tenant(request: web.Request) -> str:
    """The service's root tenant (the one `transship login` signs in to by default)."""
    root = await services_of(request).directory.root_tenant()
    return "" if root is None else root.id


async def _form_page(
    request: web.Request,
    *,
    error: str | None = None,
    status: int = 200,
    kind: str = "user",
    tenant: str | None = None,
    username: str = "",
    next_path: str | None = None,
) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = page_response(
        request,
        "sign_in.html",
        "Sign in",
        status=status,
        error=error,
        sign_in_token=token,
        kind=kind,
        tenant=tenant if tenant is not None else await _default_tenant(request),
        username=username,
        next_path=local_next(next_path if next_path is not None else request.query.get("next")),
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, _SIGN_IN_TOKEN_SECONDS)
    return response


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    session = await services_of(request).portal_sessions.find(request.cookies.get(COOKIE))
    if session is not None:
        raise see_other(local_next(request.query.get("next")))
    return await _form_page(request)


async def sign_in(request: web.Request) -> web.StreamResponse:
    """POST the sign-in form: 303 to `next` (a portal path) with the session cookie, or the
    form again with a plain message (401; 429 while the failure throttle refuses)."""
    try:
        posted = await request.post()
    except ValueError:
        return error_page(request, 400, "The form could not be read.")

    def text(name: str) -> str:
        value = posted.get(name)
        return value if isinstance(value, str) else ""

    if not same_token(text("csrf_token") or None, request.cookies.get(SIGN_IN_COOKIE, "\0")):
        return error_page(
            request,
            403,
            "This sign-in form is stale or did not come from this portal (CSRF token missing "
            "or wrong). Open the sign-in page again.",
            "CsrfTokenInvalid",
        )
    kind = text("kind") if text("kind") in KINDS else "user"
    tenant, username, password = text("tenant").strip(), text("username").strip(), text("password")
    next_path = text("next")
    if not tenant or not username or not password:
        return await _form_page(
            request,
            error="Enter the tenant, the name (or client id) and the password (or secret).",
            status=400,
            kind=kind,
            tenant=tenant,
            username=username,
            next_path=next_path,
        )
    services = services_of(request)
    origin = origin_of(request)
    sp = kind == "sp"
    try:
        issued = await services.entra.issue(
            origin,
            TokenRequest(
                tenant=tenant,
                grant_type=KINDS[kind],
                client_id=username if sp else "",
                client_secret=password if sp else "",
                username="" if sp else username,
                password="" if sp else password,
                scope=f"{origin}/.default",
                address=request.remote,
            ),
        )
        principal = await services.entra.verify(str(issued["access_token"]), {origin})
    except (NotFound, Unauthenticated) as exc:
        message = (
            f"There is no tenant '{tenant}'."
            if isinstance(exc, NotFound)
            else "Sign-in failed: the client id or secret is wrong, or the service principal "
            "is not in this tenant."
            if sp
            else "Sign-in failed: the user name or password is wrong."
        )
        return await _form_page(
            request,
            error=message,
            status=401,
            kind=kind,
            tenant=tenant,
            username=username,
            next_path=next_path,
        )
    except RetryLater as exc:
        return await _form_page(
            request,
            error=f"Too many failed sign-ins: try again in {exc.retry_after} seconds.",
            status=429,
            kind=kind,
            tenant=tenant,
            username=username,
            next_path=next_path,
        )
    except DomainError as exc:
        return await _form_page(
            request, error=exc.message, status=400, kind=kind, tenant=tenant, next_path=next_path
        )
    started = await services.portal_sessions.start(principal)
    response = web.HTTPSeeOther(local_next(next_path))
    set_cookie(
        response,
        request,
        COOKIE,
        started.session_id,
        services.settings.portal_session_ttl_seconds,
    )
    clear_cookie(response, request, SIGN_IN_COOKIE)
    raise response


@page
async def sign_out(request: web.Request) -> web.StreamResponse:
    """End the session (its row goes: the cookie opens nothing any more, on any process)."""
    await services_of(request).portal_sessions.end(request[SESSION])
    response = web.HTTPSeeOther(f"{PREFIX}/sign-in")
    clear_cookie(response, request, COOKIE)
    raise response
