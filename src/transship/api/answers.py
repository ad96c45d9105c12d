"""A JSON answer from a wire model: the one way handlers write a JSON body."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from transship.wire.base import Answer


def json_answer(
    body: Answer, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An answer with `body`, serialised by its model (`application/json`, UTF-8)."""
    return web.json_response(text=body.to_json(), status=status, headers=headers)
