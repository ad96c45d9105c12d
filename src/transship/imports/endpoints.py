"""Where an upstream registry host is reached: base URL and TLS settings.

`resolve_endpoint` maps the host named in an import request to the URL the client talks to,
using the per-host overrides of the settings (`Settings.upstreams`, like containerd's
`hosts.toml`):

- Docker Hub's three names (`docker.io`, `index.docker.io`, `registry-1.docker.io`) all mean
  `https://registry-1.docker.io`. An override may be keyed by any of them; `docker.io`, the
  canonical name, wins when several are configured.
- `endpoint` replaces `https://<host>` (a mirror, a local stand-in). It may carry a path
  prefix; `/v2/…` is appended to it.
- `insecure` allows an `http://` endpoint, and with an `https://` endpoint skips
  certificate verification. An insecure host with no `endpoint` is reached over plain
  `http://host[:port]` (a lab or loopback registry, as Docker's insecure registries).
- `ca_file` trusts that PEM bundle in addition to the system's trust store.
- Any other host is `https://host[:port]` with normal verification.

Nothing here does I/O except reading `ca_file` when a context is built.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from ssl import SSLContext
from typing import Literal

from yarl import URL

from transship.config import UpstreamHost
from transship.oci.reference import DOCKER_HUB, DOCKER_HUB_ALIASES

DOCKER_HUB_URL = "https://registry-1.docker.io"

# Looked up in this order for a Docker Hub name (after the name as requested).
_DOCKER_HUB_KEYS = (DOCKER_HUB, "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to reach one upstream registry.

    `host`: the host as named in the request (what error messages and logs name).
    `base_url`: `scheme://host[:port][/prefix]` without a trailing slash; `/v2/…` follows.
    `ssl`: an `ssl.SSLContext` (custom trust), `False` (verification skipped: `insecure`), or
    `None` (the default verification; also for `http://`, where it does not apply).
    `trusted`: an `[upstreams]` entry names this host (and does not say `trusted = false`),
    so the administrator chose where it is: the egress policy trusts the endpoint's host for
    imports from it.
    """

    host: str
    base_url: str
    ssl: SSLContext | Literal[False] | None = None
    trusted: bool = False

    @property
    def url(self) -> URL:
        """`base_url` as a yarl URL."""
        return URL(self.base_url)

    @property
    def aiohttp_ssl(self) -> SSLContext | bool:
        """The value for aiohttp's `ssl=` request argument."""
        return True if self.ssl is None else self.ssl


def _override_for(host: str, upstreams: Mapping[str, UpstreamHost]) -> UpstreamHost | None:
    by_name = {name.lower(): value for name, value in upstreams.items()}
    key = host.lower()
    if key in DOCKER_HUB_ALIASES:
        for candidate in (DOCKER_HUB, key, *_DOCKER_HUB_KEYS):
            if candidate in by_name:
                return by_name[candidate]
        return None
    return by_name.get(key)


def _default_base(host: str) -> str:
    if host.lower() in DOCKER_HUB_ALIASES:
        return DOCKER_HUB_URL
    return f"https://{host}"


def _parse_base(host: str, text: str, *, what: str) -> URL:
    bad = f"invalid {what} {_redacted(text)!r} for upstream host {host!r}"
    try:
        url = URL(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{bad}: {exc}") from None
    if "://" not in text:
        # "mirror:5000" parses as the scheme "mirror": say what is missing instead.
        raise ValueError(f"{bad}: no scheme (write https://…, or http://… with insecure = true)")
    if url.scheme not in ("http", "https"):
        raise ValueError(f"{bad}: the scheme must be http or https")
    if not url.host:
        raise ValueError(f"{bad}: no host in the URL")
    if url.user is not None or url.password is not None:
        raise ValueError(f"{bad}: credentials do not belong in the URL")
    if url.query_string or url.fragment:
        raise ValueError(f"{bad}: no query or fragment allowed")
    try:
        url.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError(f"{bad}: {exc}") from None
    return url


def _redacted(text: str) -> str:
    """`text` with any user information of its authority replaced by `***` (messages must
    not carry a password written into an endpoint by mistake)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{path}"


def _ssl_context(host: str, ca_file: object) -> SSLContext:
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load ca_file for upstream host {host!r}: {exc}") from None
    return context


def resolve_endpoint(host: str, upstreams: Mapping[str, UpstreamHost]) -> Endpoint:
    """The endpoint for `host` (`name[:port]` as in an image reference).

    Raises ValueError naming the host when the host or its configured endpoint is not a
    usable URL, when a plain-HTTP endpoint is configured without `insecure`, or when the
    `ca_file` cannot be loaded.
    """
    if not host or "/" in host or "@" in host:
        raise ValueError(f"invalid upstream host {host!r}")
    override = _override_for(host, upstreams)
    text = override.endpoint if override is not None and override.endpoint else None
    insecure = override is not None and override.insecure
    default = _default_base(host)
    if insecure and text is None:
        # An insecure host with no endpoint given speaks plain HTTP (a lab or loopback
        # registry); give an https:// endpoint to keep TLS without verification.
        default = "http://" + default.removeprefix("https://")
    url = _parse_base(host, text or default, what="endpoint" if text else "host")
    if url.scheme == "http" and not insecure:
        raise ValueError(
            f"endpoint {str(url)!r} for upstream host {host!r} is plain http://; set "
            "insecure = true to allow it"
        )
    context: SSLContext | Literal[False] | None = None
    if url.scheme == "https":
        if insecure:
            context = False
        elif override is not None and override.ca_file is not None:
            context = _ssl_context(host, override.ca_file)
    base = str(url.with_path(url.path.rstrip("/"))).rstrip("/")
    trusted = override is not None and override.trusted
    return Endpoint(host=host, base_url=base, ssl=context, trusted=trusted)
