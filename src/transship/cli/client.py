"""HTTP client for a Transship server: the ARM-style management API and the ACR data plane.

Blocking stdlib HTTP (`http.client`): the CLI makes one request at a time, and a blocking
client keeps Ctrl-C, timeouts and redirects simple and explicit. This module never imports
server code — it knows the service only through its HTTP contract.

Credentials are sent only to the configured server: URLs the server hands back (operation
Location / Azure-AsyncOperation, Link pages, token realms) are re-based onto the configured
origin, never followed to another host.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from transship import __version__
from transship.cli.profile import Profile

API_VERSION = "2025-04-01"
PROVIDER = "Microsoft.ContainerRegistry"
USER_AGENT = f"transship-cli/{__version__}"
DEFAULT_TIMEOUT = 60.0
PAGE_SIZE = 100

_ARM_ID = re.compile(
    r"/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/(?P<namespace>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)/?",
    re.IGNORECASE,
)
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]*))')


def is_arm_id(text: str) -> bool:
    """True for `/subscriptions/{s}/resourceGroups/{g}/providers/{ns}/{type}/{name}`."""
    return _ARM_ID.fullmatch(text) is not None


def arm_id_name(text: str) -> str | None:
    match = _ARM_ID.fullmatch(text)
    return match.group("name") if match else None


class TransportError(Exception):
    """The server could not be reached or answered with something that is not HTTP."""


@dataclass(eq=False)
class ApiError(Exception):
    """The service refused a request: an ARM `{"error":…}` or OCI `{"errors":[…]}` envelope."""

    status: int
    code: str
    message: str
    target: str | None = None
    details: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        return f"({self.code}) {self.message}"


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise TransportError(
                f"the server answered {self.status} with a body that is not JSON"
            ) from None


def error_from(status: int, reason: str, body: bytes) -> ApiError:
    """The service's error envelope as an ApiError (either envelope, or the bare status)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("code"):
            details = error.get("details")
            return ApiError(
                status,
                str(error["code"]),
                str(error.get("message") or ""),
                target=error.get("target") if isinstance(error.get("target"), str) else None,
                details=details if isinstance(details, list) else [],
            )
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            message = str(first.get("message") or "")
            detail = first.get("detail")
            if detail and not isinstance(detail, dict | list):
                message = f"{message}: {detail}" if message else str(detail)
            return ApiError(status, str(first.get("code") or f"HTTP{status}"), message, details=errors[1:])
    text = body.decode("utf-8", "replace").strip()[:200] if body else ""
    return ApiError(status, f"HTTP{status}", f"{reason}{': ' + text if text else ''}")


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP-date: ignore, poll at the default pace
    return seconds if seconds >= 0 else None


def next_link(value: str | None) -> str | None:
    """The target of `Link: <…>; rel="next"`, if any."""
    if not value:
        return None
    match = _LINK_NEXT.search(value)
    return match.group(1) if match else None


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = value.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


class HttpClient:
    """Requests against one server; the credential is attached only to it."""

    def __init__(
        self,
        server: str,
        username: str,
        password: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        parts = urlsplit(server)
        self.server = server
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._basic = f"Basic {token}"

    @property
    def basic_authorization(self) -> str:
        return self._basic

    def target(self, url: str, query: Mapping[str, str] | None = None) -> str:
        """The request target on this server for `url` (a path, or a URL the server gave)."""
        parts = urlsplit(url)
        path = parts.path or "/"
        own_url = bool(parts.netloc) and (parts.scheme, parts.netloc) == (self._scheme, self._netloc)
        if not own_url:
            # A path (ours, or one the server gave), or a URL naming another origin: relative
            # to this server's base URL.
            if not path.startswith("/"):
                path = f"/{path}"
            if self._prefix and not path.startswith(f"{self._prefix}/"):
                path = f"{self._prefix}{path}"
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if query:  # explicit parameters replace the URL's own
            pairs = [(k, v) for k, v in pairs if k not in query] + list(query.items())
        return urlunsplit(("", "", path, urlencode(pairs, quote_via=quote), ""))

    def absolute(self, url: str) -> str:
        """`url` (a path or a URL the server gave) as the URL this client would request."""
        return f"{self._scheme}://{self._netloc}{self.target(url)}"

    def request(
        self,
        method: str,
        url: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        authorization: str | None = "basic",
        expect: Sequence[int] = (),
    ) -> Response:
        """Send one request. A status >= 400 not in `expect` raises ApiError."""
        send = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if authorization == "basic":
            send["Authorization"] = self._basic
        elif authorization:
            send["Authorization"] = authorization
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            send["Content-Type"] = "application/json"
        send.update(headers or {})
        connection: http.client.HTTPConnection
        if self._scheme == "https":
            connection = http.client.HTTPSConnection(
                self._netloc, timeout=self._timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self._netloc, timeout=self._timeout)
        try:
            connection.request(method, self.target(url, query), body=payload, headers=send)
            raw = connection.getresponse()
            response = Response(raw.status, raw.headers, raw.read())
            reason = raw.reason
        except (OSError, http.client.HTTPException) as exc:
            detail = str(exc) or type(exc).__name__
            raise TransportError(f"cannot reach {self.server}: {detail}") from None
        finally:
            connection.close()
        if response.status >= 400 and response.status not in expect:
            raise error_from(response.status, reason, response.body)
        return response


class ManagementApi:
    """The ARM-style management API (and the Transship extensions) for one login."""

    def __init__(self, profile: Profile, http: HttpClient | None = None) -> None:
        self.profile = profile
        self.http = http or HttpClient(profile.server, profile.username, profile.password)
        self._info: dict[str, str] | None = dict(profile.info) if _complete(profile.info) else None

    # -- plumbing -----------------------------------------------------------------------
    def call(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        expect: Sequence[int] = (),
    ) -> Response:
        return self.http.request(
            method, url, query={"api-version": API_VERSION}, body=body, expect=expect
        )

    def fetch_info(self) -> dict[str, Any]:
        data = self.http.request("GET", "/transship/v1/info").json()
        if not isinstance(data, dict):
            raise TransportError("GET /transship/v1/info did not return an object")
        return data

    @property
    def info(self) -> dict[str, str]:
        if self._info is None:
            data = self.fetch_info()
            missing = [k for k in ("subscriptionId", "resourceGroup", "location") if not data.get(k)]
            if missing:
                raise TransportError(f"GET /transship/v1/info lacks {', '.join(missing)}")
            self._info = {k: str(v) for k, v in data.items() if isinstance(v, str | int)}
        return self._info

    @property
    def subscription(self) -> str:
        return self.info["subscriptionId"]

    @property
    def default_resource_group(self) -> str:
        return self.info["resourceGroup"]

    @property
    def location(self) -> str:
        return self.info["location"]

    # -- registries ---------------------------------------------------------------------
    def registry_id(self, name: str, resource_group: str | None = None) -> str:
        group = resource_group or self.default_resource_group
        return (
            f"/subscriptions/{_seg(self.subscription)}/resourceGroups/{_seg(group)}"
            f"/providers/{PROVIDER}/registries/{_seg(name)}"
        )

    def list_registries(self, resource_group: str | None = None) -> list[dict[str, Any]]:
        scope = f"/subscriptions/{_seg(self.subscription)}"
        if resource_group:
            scope += f"/resourceGroups/{_seg(resource_group)}"
        return self._values(f"{scope}/providers/{PROVIDER}/registries")

    def get_registry(self, name: str, resource_group: str | None = None) -> dict[str, Any]:
        return _object(self.call("GET", self.registry_id(name, resource_group)))

    def put_registry(
        self, name: str, body: dict[str, Any], resource_group: str | None = None
    ) -> dict[str, Any]:
        return _object(self.call("PUT", self.registry_id(name, resource_group), body=body))

    def delete_registry(self, name: str, resource_group: str | None = None) -> bool:
        """True when deleted, False when there was nothing to delete (204)."""
        return self.call("DELETE", self.registry_id(name, resource_group)).status != 204

    # -- imports ------------------------------------------------------------------------
    def import_image(
        self, name: str, parameters: dict[str, Any], resource_group: str | None = None
    ) -> Response:
        return self.call("POST", f"{self.registry_id(name, resource_group)}/importImage", body=parameters)

    def list_imports(self, name: str, resource_group: str | None = None) -> list[dict[str, Any]]:
        return self._values(f"{self.registry_id(name, resource_group)}/importOperations")

    def operation_status_url(self, operation_id: str) -> str:
        return (
            f"/subscriptions/{_seg(self.subscription)}/providers/{PROVIDER}"
            f"/locations/{_seg(self.location)}/operationStatuses/{_seg(operation_id)}"
        )

    def get_operation(self, operation_id: str) -> dict[str, Any]:
        return _object(self.call("GET", self.operation_status_url(operation_id)))

    def get_operation_url(self, url: str) -> Response:
        """Poll a status URL the server handed out (re-based onto this server)."""
        return self.call("GET", url)

    def cancel_operation(self, operation_id: str) -> dict[str, Any]:
        return _object(self.call("POST", f"{self.operation_status_url(operation_id)}/cancel"))

    def _values(self, url: str) -> list[dict[str, Any]]:
        values: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            data = _object(self.call("GET", next_url))
            page = data.get("value")
            if not isinstance(page, list):
                raise TransportError(f"GET {url} did not return a value list")
            values += [v for v in page if isinstance(v, dict)]
            link = data.get("nextLink")
            next_url = link if isinstance(link, str) and link else None
        return values


class DataPlane:
    """The ACR data plane of one registry: requests to the server URL with `Host` set to the
    registry's login server; follows `Link` pages and answers auth challenges (Bearer via
    the realm's token endpoint, or Basic) with the login's credential."""

    def __init__(self, http: HttpClient, login_server: str | None) -> None:
        self.http = http
        self.login_server = login_server
        self._authorization: str | None = None

    def request(
        self, method: str, url: str, query: Mapping[str, str] | None = None
    ) -> Response:
        # No login server (the default registry may have none): the server's own host
        # name, which reaches the default registry.
        headers = {"Host": self.login_server} if self.login_server else {}
        response = self.http.request(
            method, url, query=query, headers=headers,
            authorization=self._authorization, expect=(401,),
        )
        if response.status != 401:
            return response
        challenge = response.header("WWW-Authenticate") or ""
        self._authorization = self._answer(challenge, response)
        return self.http.request(
            method, url, query=query, headers=headers, authorization=self._authorization
        )

    def _answer(self, challenge: str, response: Response) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            return self.http.basic_authorization
        if scheme == "bearer" and params.get("realm"):
            query = {k: v for k, v in params.items() if k in ("service", "scope") and v}
            headers = {"Host": self.login_server} if self.login_server else {}
            token = self.http.request("GET", params["realm"], query=query, headers=headers).json()
            value = token.get("access_token") or token.get("token") if isinstance(token, dict) else None
            if isinstance(value, str) and value:
                return f"Bearer {value}"
        raise error_from(401, "Unauthorized", response.body)

    def pages(
        self, url: str, key: str, *, query: Mapping[str, str] | None = None, top: int | None = None
    ) -> Iterator[Any]:
        """Every item of `key` across the `Link: <…>; rel="next"` pages (at most `top`)."""
        produced = 0
        params = dict(query or {})
        next_url: str | None = url
        while next_url and (top is None or produced < top):
            # The page size (and any filter) is ours; `last` comes from the link.
            params["n"] = str(PAGE_SIZE if top is None else min(PAGE_SIZE, top - produced))
            response = self.request("GET", next_url, params)
            data = response.json()
            items = data.get(key) if isinstance(data, dict) else None
            for item in items or []:
                if top is not None and produced >= top:
                    return
                produced += 1
                yield item
            following = next_link(response.header("Link"))
            if following == next_url or not items:
                return
            next_url = following


def repository_path(repository: str) -> str:
    return quote(repository, safe="/")


def _seg(value: str) -> str:
    return quote(value, safe="")


def _object(response: Response) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise TransportError(f"the server answered {response.status} with JSON that is not an object")
    return data


def _complete(info: Mapping[str, str]) -> bool:
    return all(info.get(k) for k in ("subscriptionId", "resourceGroup", "location"))
