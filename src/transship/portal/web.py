"""The request side every portal page shares: the session cookie, the signed-in principal
(handed to the API's own `authorize` as its caller), CSRF checks on every POST, and errors
shown as pages.

A page handler is wrapped by `page`: without a live session it answers 303 to the sign-in
page; a POST whose `csrf_token` field is missing or wrong answers 403 before the handler
runs (so nothing changes); ArmError and domain errors become an error page with the API's
status and message.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import MultiDictProxy

from transship.api.auth import CALLER
from transship.api.envelopes import ArmError
from transship.api.error_map import Surface, envelope_for
from transship.api.services import Services
from transship.api.v2 import SERVICES
from transship.errors import DomainError
from transship.identity.portal_sessions import PortalSession, same_token
from transship.portal.render import render

log = logging.getLogger(__name__)

PREFIX = "/portal"
COOKIE = "transship_session"
SIGN_IN_COOKIE = "transship_sign_in"
SESSION: web.RequestKey[PortalSession] = web.RequestKey("portal_session", PortalSession)
FORM: web.RequestKey[MultiDictProxy[Any]] = web.RequestKey("portal_form", MultiDictProxy)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]


def is_https(request: web.Request) -> bool:
    return request.scheme == "https"


def set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int
) -> None:
    """A portal cookie: HttpOnly, SameSite=Strict, Path=/portal, Secure under https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def clear_cookie(response: web.StreamResponse, request: web.Request, name: str) -> None:
    response.del_cookie(
        name, path=PREFIX, secure=is_https(request), httponly=True, samesite="Strict"
    )


def local_next(value: str | None) -> str:
    """Where to go after signing in: `value` only when it is a path of the portal (never
    another site, nor `//host`), else the registries page."""
    unsafe = any(c in (value or "") for c in "\\\r\n")
    if value and value.startswith(PREFIX + "/") and not unsafe:
        return value
    return PREFIX + "/"


def sign_in_location(request: web.Request) -> str:
    target = request.path_qs if request.method == "GET" else PREFIX + "/"
    return f"{PREFIX}/sign-in?{urlencode({'next': target})}"


def form(request: web.Request) -> MultiDictProxy[Any]:
    """The POST form `page` read and checked."""
    return request[FORM]


def field(request: web.Request, name: str) -> str:
    """A text field of the form, stripped ("" when absent)."""
    value = request[FORM].get(name)
    return value.strip() if isinstance(value, str) else ""


def base_context(request: web.Request, title: str, **extra: Any) -> dict[str, Any]:
    """What every page's layout needs: its title, the signed-in principal (None on the
    sign-in page) and the CSRF token for its forms."""
    session = request.get(SESSION)
    return {
        "title": title,
        "principal": None if session is None else session.principal,
        "csrf_token": "" if session is None else session.csrf_token,
        "error": None,
        "notice": None,
        **extra,
    }


def page_response(
    request: web.Request,
    template: str,
    title: str,
    *,
    status: int = 200,
    **context: Any,
) -> web.Response:
    return render(template, base_context(request, title, **context), status=status)


def error_page(
    request: web.Request, status: int, message: str, code: str | None = None
) -> web.Response:
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict"}
    title = titles.get(status, "Error" if status >= 500 else "Request refused")
    return page_response(
        request, "error.html", title, status=status, error=message, code=code, status_code=status
    )


def see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def page(handler: Handler) -> Handler:
    """Wrap a page handler: session, caller, CSRF, errors (see the module docstring)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        services = services_of(request)
        session = await services.portal_sessions.find(request.cookies.get(COOKIE))
        if session is None:
            raise see_other(sign_in_location(request))
        request[SESSION] = session
        # The API's `caller` returns this principal: every check below is the API's own.
        request[CALLER] = session.principal
        if request.method == "POST":
            try:
                posted = await request.post()
            except ValueError:
                return error_page(request, 400, "The form could not be read.")
            if not same_token(_text(posted.get("csrf_token")), session.csrf_token):
                return error_page(
                    request,
                    403,
                    "This form did not come from your portal session (its CSRF token is "
                    "missing or wrong). Nothing was changed; reload the page and try again.",
                    "CsrfTokenInvalid",
                )
            request[FORM] = posted
        try:
            return await handler(request)
        except ArmError as exc:
            return error_page(request, exc.status, exc.message, exc.code)
        except DomainError as exc:
            mapped = envelope_for(exc, Surface.ARM)
            assert isinstance(mapped, ArmError)
            return error_page(request, mapped.status, mapped.message, mapped.code)

    return functools.wraps(handler)(wrapped)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def registry_path(sub: str, rg: str, name: str) -> str:
    return f"{PREFIX}/registries/{quote(sub, safe='')}/{quote(rg, safe='')}/{quote(name, safe='')}"


def match(request: web.Request) -> Mapping[str, str]:
    return request.match_info
