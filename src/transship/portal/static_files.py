"""The portal's static assets (CSS, JS), served from the package: nothing to fetch from a
CDN (the service may run offline). Read once, then kept in memory."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
_FILES: dict[str, tuple[bytes, str]] = {}


def _load() -> dict[str, tuple[bytes, str]]:
    if not _FILES:
        folder = resources.files("transship.portal") / "static"
        for entry in folder.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in _TYPES:
                _FILES[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return _FILES


async def static_file(request: web.Request) -> web.StreamResponse:
    """GET /portal/static/{name}: a packaged asset, cacheable for an hour; 404 otherwise."""
    found = _load().get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    return web.Response(
        body=body,
        content_type=content_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def preload() -> None:
    """Read the assets now (at application start, off the request path)."""
    _load()
