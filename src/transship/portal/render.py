"""Rendering portal pages: one Jinja2 environment over the package's templates, with
autoescaping on (every value a page shows came from a user or an upstream)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("transship.portal", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def size_text(value: int | None) -> str:
    """Bytes for people: 1.5 MB, 320 kB (decimal units, as registries' UIs show them)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"  # pragma: no cover - the loop always returns


def time_text(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


_ENV.filters["size"] = size_text
_ENV.filters["when"] = time_text
_ENV.filters["q"] = lambda value: quote(str(value), safe="")
_ENV.filters["qpath"] = lambda value: quote(str(value), safe="/:@")


def render(
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The page `template` rendered with `context`, as HTML. Pages are never cached: they
    show what the signed-in principal may see now."""
    text = _ENV.get_template(template).render(**context)
    response = web.Response(
        status=status, text=text, content_type="text/html", charset="utf-8", headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        # Inline style attributes only for the layer bars' widths; no inline script.
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    return response
