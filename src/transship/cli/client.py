"""HTTP client for a Transship server: the ARM-style management API and the ACR data plane.

Blocking stdlib HTTP (`http.client`): the CLI makes one request at a time, and a blocking
client keeps Ctrl-C, timeouts and redirects simple and explicit. This module never imports
server code — it knows the service only through its HTTP contract.

The management API is called with bearer tokens from the server's Entra-style token
endpoint (`TokenAuth`); the data plane with the same credential over HTTP Basic at the
registry's `/oauth2/token` realm (`DataPlane`).

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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from transship import __version__
from transship.cli.profile import SERVICE_PRINCIPAL, Profile

API_VERSION = "2025-04-01"
PROVIDER = "Microsoft.ContainerRegistry"
AUTHORIZATION = "providers/Microsoft.Authorization"
DIRECTORY = "/transship/v1"
USER_AGENT = f"transship-cli/{__version__}"
DEFAULT_TIMEOUT = 60.0
PAGE_SIZE = 100

_ARM_ID = re.compile(
    r"/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/(?P<namespace>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)/?",
    re.IGNORECASE,
)
# The Azure CLI's public client id: the client a password grant names, as `az login` does.
PUBLIC_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
# A cached token is renewed this long before it expires.
TOKEN_RENEW_SECONDS = 60.0
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]*))')


def is_arm_id(text: str) -> bool:
    """True for `/subscriptions/{s}/resourceGroups/{g}/providers/{ns}/{type}/{name}`."""
    return _ARM_ID.fullmatch(text) is not None


def is_guid(text: str) -> bool:
    return _GUID.fullmatch(text.strip()) is not None


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
    reason: str = ""

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
    """The service's error envelope as an ApiError: ARM's `{"error":{…}}`, OCI's
    `{"errors":[…]}`, OAuth's `{"error": code, "error_description": …}`, or the bare status."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, str) and error:
            return ApiError(status, error, str(data.get("error_description") or ""))
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
            return ApiError(
                status, str(first.get("code") or f"HTTP{status}"), message, details=errors[1:]
            )
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
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


class HttpClient:
    """Requests against one server. It attaches no credential by itself: callers pass the
    `Authorization` value, which therefore only ever reaches this server."""

    def __init__(self, server: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urlsplit(server)
        self.server = server
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout

    @property
    def origin(self) -> str:
        """`scheme://host[:port]` of the server (the audience of its management tokens)."""
        return f"{self._scheme}://{self._netloc}"

    def target(self, url: str, query: Mapping[str, str] | None = None) -> str:
        """The request target on this server for `url` (a path, or a URL the server gave)."""
        parts = urlsplit(url)
        path = parts.path or "/"
        own_url = bool(parts.netloc) and (parts.scheme, parts.netloc) == (
            self._scheme,
            self._netloc,
        )
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
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authorization: str | None = None,
        expect: Sequence[int] = (),
    ) -> Response:
        """Send one request (`body` as JSON, or `form` URL-encoded). A status >= 400 not in
        `expect` raises ApiError."""
        send = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if authorization:
            send["Authorization"] = authorization
        payload: bytes | None = None
        if form is not None:
            payload = urlencode(form).encode()
            send["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
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
            response = Response(raw.status, raw.headers, raw.read(), raw.reason)
        except (OSError, http.client.HTTPException) as exc:
            detail = str(exc) or type(exc).__name__
            raise TransportError(f"cannot reach {self.server}: {detail}") from None
        finally:
            connection.close()
        if response.status >= 400 and response.status not in expect:
            raise error_from(response.status, response.reason, response.body)
        return response


def basic_authorization(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class TokenAuth:
    """Bearer tokens for the management API from the server's Entra-style token endpoint,
    `POST /{tenant}/oauth2/v2.0/token` with the scope `<server origin>/.default`: the
    client-credentials grant for a service principal, the password grant for a user.

    A token is kept in memory until shortly before it expires, or until the server refuses
    it (`forget`). A service principal whose tenant is not known learns it from
    `GET /transship/v1/info` with HTTP Basic (which the management API accepts from service
    principals only)."""

    def __init__(
        self,
        http: HttpClient,
        profile: Profile,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.kind = profile.kind
        self.username = profile.username
        self._password = profile.password
        self._tenant = profile.tenant
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        # Whether the last header() fetched its token (rather than reusing a cached one).
        self.fresh = False

    @property
    def basic(self) -> str:
        """The credential as HTTP Basic (what the data plane's token endpoint takes)."""
        return basic_authorization(self.username, self._password)

    @property
    def scope(self) -> str:
        return f"{self._http.origin}/.default"

    def tenant(self) -> str:
        if self._tenant is None:
            if self.kind != SERVICE_PRINCIPAL:
                raise TransportError("a user's login needs its tenant")
            data = self._http.request("GET", "/transship/v1/info", authorization=self.basic).json()
            tenant = data.get("tenantId") if isinstance(data, dict) else None
            if not isinstance(tenant, str) or not tenant:
                raise TransportError("GET /transship/v1/info did not name the tenant")
            self._tenant = tenant
        return self._tenant

    def header(self) -> str:
        """`Bearer <token>`, from the cache or a new token request (`fresh` says which)."""
        self.fresh = self._token is None or self._clock() >= self._renew_at
        if self._token is None or self.fresh:
            self._token, lifetime = self._request_token()
            self._renew_at = self._clock() + max(lifetime - TOKEN_RENEW_SECONDS, lifetime / 2)
        return f"Bearer {self._token}"

    def forget(self) -> None:
        """Drop the cached token (the server refused it)."""
        self._token = None

    def _request_token(self) -> tuple[str, float]:
        form = {"scope": self.scope}
        if self.kind == SERVICE_PRINCIPAL:
            form |= {
                "grant_type": "client_credentials",
                "client_id": self.username,
                "client_secret": self._password,
            }
        else:
            form |= {
                "grant_type": "password",
                "client_id": PUBLIC_CLIENT_ID,
                "username": self.username,
                "password": self._password,
            }
        data = self._http.request(
            "POST", f"/{_seg(self.tenant())}/oauth2/v2.0/token", form=form
        ).json()
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise TransportError("the token endpoint answered without an access_token")
        lifetime = data.get("expires_in")
        try:
            seconds = float(lifetime) if lifetime is not None else 300.0
        except (TypeError, ValueError):
            seconds = 300.0
        return token, max(seconds, 0.0)


class ManagementApi:
    """The ARM-style management API (and the Transship extensions) for one login."""

    def __init__(self, profile: Profile, http: HttpClient | None = None) -> None:
        self.profile = profile
        self.http = http or HttpClient(profile.server)
        self.auth = TokenAuth(self.http, profile)
        self._info: dict[str, str] | None = dict(profile.info) if _complete(profile.info) else None

    # -- plumbing -----------------------------------------------------------------------
    def send(
        self,
        method: str,
        url: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        expect: Sequence[int] = (),
    ) -> Response:
        """One request with a bearer token; when the server refuses a token cached from an
        earlier request (401: expired, revoked, its principal changed), a new one is
        fetched and the request sent once more."""
        authorization = self.auth.header()
        reused = not self.auth.fresh
        response = self.http.request(
            method,
            url,
            query=query,
            body=body,
            authorization=authorization,
            expect=(*expect, 401) if reused else expect,
        )
        if response.status == 401 and reused and 401 not in expect:
            self.auth.forget()
            response = self.http.request(
                method, url, query=query, body=body, authorization=self.auth.header(), expect=expect
            )
        return response

    def call(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        expect: Sequence[int] = (),
        query: Mapping[str, str] | None = None,
    ) -> Response:
        """An ARM call: `api-version` added to `query`."""
        return self.send(
            method,
            url,
            query={"api-version": API_VERSION, **(query or {})},
            body=body,
            expect=expect,
        )

    def fetch_info(self) -> dict[str, Any]:
        data = self.send("GET", "/transship/v1/info").json()
        if not isinstance(data, dict):
            raise TransportError("GET /transship/v1/info did not return an object")
        return data

    @property
    def info(self) -> dict[str, str]:
        if self._info is None:
            data = self.fetch_info()
            missing = [
                k for k in ("subscriptionId", "resourceGroup", "location") if not data.get(k)
            ]
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

    @property
    def login_server_suffix(self) -> str | None:
        return self.info.get("loginServerSuffix") or None

    # -- scopes -------------------------------------------------------------------------
    def subscription_scope(self) -> str:
        return f"/subscriptions/{_seg(self.subscription)}"

    def group_scope(self, resource_group: str | None = None) -> str:
        group = resource_group or self.default_resource_group
        return f"{self.subscription_scope()}/resourceGroups/{_seg(group)}"

    # -- registries ---------------------------------------------------------------------
    def registry_id(self, name: str, resource_group: str | None = None) -> str:
        return f"{self.group_scope(resource_group)}/providers/{PROVIDER}/registries/{_seg(name)}"

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

    def patch_registry(
        self, name: str, properties: dict[str, Any], resource_group: str | None = None
    ) -> dict[str, Any]:
        return _object(
            self.call(
                "PATCH", self.registry_id(name, resource_group), body={"properties": properties}
            )
        )

    def delete_registry(self, name: str, resource_group: str | None = None) -> bool:
        """True when deleted, False when there was nothing to delete (204)."""
        return self.delete(self.registry_id(name, resource_group))

    def registry_action(
        self, name: str, action: str, body: Any = None, resource_group: str | None = None
    ) -> dict[str, Any]:
        """`POST {registry}/{action}` (listCredentials, regenerateCredential,
        generateCredentials)."""
        return _object(
            self.call("POST", f"{self.registry_id(name, resource_group)}/{action}", body=body)
        )

    # -- the directory (/transship/v1) -----------------------------------------------------
    def directory(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A call to the service's directory API (`/transship/v1/…`; no api-version)."""
        return _object(self.send(method, f"{DIRECTORY}{path}", body=body))

    def directory_values(self, path: str) -> list[dict[str, Any]]:
        page = self.directory("GET", path).get("value")
        if not isinstance(page, list):
            raise TransportError(f"GET {DIRECTORY}{path} did not return a value list")
        return [v for v in page if isinstance(v, dict)]

    # -- generic resources --------------------------------------------------------------
    def get(self, url: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        return _object(self.call("GET", url, query=query))

    def put(self, url: str, body: Any) -> dict[str, Any]:
        return _object(self.call("PUT", url, body=body))

    def post(self, url: str, body: Any = None) -> dict[str, Any]:
        return _object(self.call("POST", url, body=body))

    def delete(self, url: str) -> bool:
        """True when deleted, False when there was nothing to delete (204)."""
        return self.call("DELETE", url).status != 204

    def values(self, url: str, query: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a `{"value": […], "nextLink": …}` listing."""
        return self._values(url, query)

    # -- imports ------------------------------------------------------------------------
    def import_image(
        self, name: str, parameters: dict[str, Any], resource_group: str | None = None
    ) -> Response:
        return self.call(
            "POST", f"{self.registry_id(name, resource_group)}/importImage", body=parameters
        )

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

    def _values(self, url: str, query: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        values: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            # The first page takes `query`; a nextLink carries its own.
            data = _object(self.call("GET", next_url, query=query if next_url == url else None))
            page = data.get("value")
            if not isinstance(page, list):
                raise TransportError(f"GET {url} did not return a value list")
            values += [v for v in page if isinstance(v, dict)]
            link = data.get("nextLink")
            next_url = link if isinstance(link, str) and link else None
        return values


class DataPlane:
    """The ACR data plane of one registry: requests to the server URL with `Host` set to the
    registry's login server; follows `Link` pages and answers auth challenges (Bearer: a
    token from the challenge's realm, fetched with `basic`; or Basic itself) with the
    login's credential.

    A request is sent without credentials first; after a challenge the token is reused
    until a request needs another scope (another 401), when a new one is fetched."""

    def __init__(self, http: HttpClient, login_server: str | None, basic: str) -> None:
        self.http = http
        self.login_server = login_server
        self._basic = basic
        self._authorization: str | None = None

    def request(self, method: str, url: str, query: Mapping[str, str] | None = None) -> Response:
        # No login server (the default registry may have none): the server's own host
        # name, which reaches the default registry.
        headers = {"Host": self.login_server} if self.login_server else {}
        response = self.http.request(
            method,
            url,
            query=query,
            headers=headers,
            authorization=self._authorization,
            expect=(401,),
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
            return self._basic
        if scheme == "bearer" and params.get("realm"):
            query = {k: v for k, v in params.items() if k in ("service", "scope") and v}
            headers = {"Host": self.login_server} if self.login_server else {}
            token = self.http.request(
                "GET", params["realm"], query=query, headers=headers, authorization=self._basic
            ).json()
            value = (
                token.get("access_token") or token.get("token") if isinstance(token, dict) else None
            )
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


def seg(value: str) -> str:
    """`value` as one URL path segment."""
    return _seg(value)


def scope_path(scope: str) -> str:
    """A scope as a URL path prefix: "" for the root (`/` or empty), else the scope without
    a trailing slash, each segment quoted."""
    text = scope.strip().strip("/")
    return "" if not text else "/" + "/".join(_seg(part) for part in text.split("/"))


def _object(response: Response) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise TransportError(
            f"the server answered {response.status} with JSON that is not an object"
        )
    return data


def _complete(info: Mapping[str, str]) -> bool:
    return all(info.get(k) for k in ("subscriptionId", "resourceGroup", "location"))
