"""The client request behind a webhook event, as ACR's event `request` object shows it."""

from __future__ import annotations

import uuid

from aiohttp import hdrs, web

from transship.metadata.webhooks import EventRequest


def event_request(request: web.Request) -> EventRequest:
    """The `request` object of the events `request` causes: its id (the client's
    x-ms-client-request-id, else a new one), Host, method, User-Agent and peer address."""
    return EventRequest(
        id=request.headers.get("x-ms-client-request-id") or str(uuid.uuid4()),
        host=request.host,
        method=request.method,
        useragent=request.headers.get(hdrs.USER_AGENT, ""),
        addr=request.remote or "",
    )
