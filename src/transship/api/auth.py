"""Authentication of the management API: the bootstrap admin credential (Basic), until the
identity issue brings principals and tokens."""

from __future__ import annotations

import base64
import binascii

from aiohttp import hdrs, web

from transship.errors import ArmError
from transship.identity.bootstrap import AdminVerifier


async def require_admin(request: web.Request, verifier: AdminVerifier) -> None:
    """Raises ArmError 401 AuthenticationFailed unless the request carries the admin credential."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            username, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username = password = ""
        if await verifier.allows(username, password):
            return
    raise ArmError(
        401,
        "AuthenticationFailed",
        "Authentication failed: send the admin credential with HTTP Basic authentication.",
        headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="transship"'},
    )
