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
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import MISSING, BaseModel, ConfigDict, Field, ValidationError

from transship import __version__
from transship.cli.profile import INFO_KEYS, SERVICE_PRINCIPAL, Profile
from transship.wire.acr import OciError, OciErrorItem
from transship.wire.arm import (
    ArmError,
    ArmErrorDetail,
    OperationStatus,
    Registry,
    RegistryCredentials,
    ServiceInfo,
)
from transship.wire.bodies import ImportImageParameters, RegistryBody, RegistryProperties
from transship.wire.identity import AccessToken, OAuthError, RegistryAccessToken

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

API_VERSION = "2025-04-01"
PROVIDER = "Microsoft.ContainerRegistry"
AUTHORIZATION = "providers/Microsoft.Authorization"
DIRECTORY = "/transship/v1"
INFO = f"{DIRECTORY}/info"
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


class AnswerMismatch(TransportError):
    """The server answered a request with a body that is not the wire model the request
    answers with (another version of the service, or a proxy in between)."""


def parse_answer(response: Response, model: type[M], request: str) -> M:
    """The body of `response` as `model`. Raises AnswerMismatch naming `request` (`GET
    /path`), the model and the first field that does not fit."""
    try:
        return model.model_validate_json(response.body)
    except ValidationError as exc:
        raise AnswerMismatch(
            f"the server's answer to {request} is not a {model_name(model)}: {_problem(exc)}"
        ) from None


def model_name(model: type[BaseModel]) -> str:
    """`Registry`, or `list of Registry` for a page of them."""
    generic = model.__pydantic_generic_metadata__
    if generic["origin"] is Page and generic["args"]:
        return f"list of {generic['args'][0].__name__}"
    return model.__name__


def _problem(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the body"
    return f"{where}: {first['msg']}"


def unchecked(model: type[M], **fields: Any) -> M:
    """A request body of `fields` (by field name, nested bodies built likewise), not
    validated here: the server validates it and its refusal names the field, as for any
    client."""
    return model.model_construct(**fields)


def dump_body(body: BaseModel) -> Any:
    """A request model as the JSON value sent: by alias, fields not given left out."""
    return body.model_dump(mode="json", by_alias=True, exclude_none=True)


class Page(BaseModel, Generic[M]):
    """One page of an ARM listing: `{"value": […], "nextLink": …}`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    value: list[M]
    next_link: str | None = Field(default=None, alias="nextLink")


@dataclass(eq=False)
class ApiError(Exception):
    """The service refused a request: an ARM `{"error":…}` or OCI `{"errors":[…]}` envelope."""

    status: int
    code: str
    message: str
    target: str | None = None
    details: Sequence[ArmErrorDetail | OciErrorItem] = field(default_factory=list)
    # False when the body was none of the service's error envelopes (ARM, OCI, OAuth): a
    # proxy's page, or a server that is not Transship at all.
    enveloped: bool = True

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


def error_from(status: int, reason: str, body: bytes) -> ApiError:
    """The service's error envelope as an ApiError: ARM's `{"error":{…}}`, OCI's
    `{"errors":[…]}`, OAuth's `{"error": code, "error_description": …}`, or the bare status."""
    for envelope in (ArmError, OciError, OAuthError):
        try:
            found = envelope.model_validate_json(body)
        except ValidationError:
            continue
        if isinstance(found, ArmError):
            error = found.error
            return ApiError(
                status,
                error.code,
                error.message,
                target=error.target if isinstance(error.target, str) else None,
                details=list(error.details) if isinstance(error.details, list) else [],
            )
        if isinstance(found, OciError):
            first = found.errors[0]
            message, detail = first.message, first.detail
            if detail is not MISSING and detail and not isinstance(detail, dict | list):
                message = f"{message}: {detail}" if message else str(detail)
            return ApiError(status, first.code, message, details=found.errors[1:])
        if isinstance(found, OAuthError):
            return ApiError(status, found.error, found.error_description)
    text = body.decode("utf-8", "replace").strip()[:200] if body else ""
    return ApiError(
        status, f"HTTP{status}", f"{reason}{': ' + text if text else ''}", enveloped=False
    )


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
        body: BaseModel | None = None,
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
            payload = json.dumps(dump_body(body)).encode()
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
            try:
                response = self._http.request("GET", INFO, authorization=self.basic)
            except ApiError as exc:
                if exc.status == 401:
                    # What the token endpoint answers for a wrong secret (its message is
                    # the server's, AADSTS7000215): one answer whether or not a tenant was
                    # given.
                    raise ApiError(401, "invalid_client", exc.message) from None
                raise
            self._tenant = parse_answer(response, ServiceInfo, f"GET {INFO}").tenant_id
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
        path = f"/{_seg(self.tenant())}/oauth2/v2.0/token"
        response = self._http.request("POST", path, form=form)
        token = parse_answer(response, AccessToken, f"POST {path}")
        return token.access_token, float(token.expires_in)


class ManagementApi:
    """The ARM-style management API (and the Transship extensions) for one login.

    Every answer is parsed into its wire model (`transship.wire`); a body that does not fit
    raises AnswerMismatch. Request bodies are wire request models (`transship.wire.bodies`)."""

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
        body: BaseModel | None = None,
        expect: Sequence[int] = (),
        headers: Mapping[str, str] | None = None,
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
            headers=headers,
            authorization=authorization,
            expect=(*expect, 401) if reused else expect,
        )
        if response.status == 401 and reused and 401 not in expect:
            self.auth.forget()
            response = self.http.request(
                method,
                url,
                query=query,
                body=body,
                headers=headers,
                authorization=self.auth.header(),
                expect=expect,
            )
        return response

    def call(
        self,
        method: str,
        url: str,
        *,
        body: BaseModel | None = None,
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

    def answer(
        self,
        method: str,
        url: str,
        model: type[M],
        *,
        body: BaseModel | None = None,
        query: Mapping[str, str] | None = None,
    ) -> M:
        """An ARM call whose answer is a `model`. Raises ApiError, TransportError, or
        AnswerMismatch for a body that is not a `model`."""
        response = self.call(method, url, body=body, query=query)
        return parse_answer(response, model, request_line(method, url))

    def fetch_info(self) -> ServiceInfo:
        return parse_answer(self.send("GET", INFO), ServiceInfo, f"GET {INFO}")

    @property
    def info(self) -> dict[str, str]:
        """The service's coordinates (what a profile keeps): subscriptionId, resourceGroup,
        location, tenantId, loginServerSuffix, version."""
        if self._info is None:
            found = self.fetch_info()
            if not found.subscription_id:
                raise TransportError(f"GET {INFO} lacks subscriptionId")
            self._info = info_of(found)
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

    def list_registries(self, resource_group: str | None = None) -> list[Registry]:
        scope = f"/subscriptions/{_seg(self.subscription)}"
        if resource_group:
            scope += f"/resourceGroups/{_seg(resource_group)}"
        return self.values(f"{scope}/providers/{PROVIDER}/registries", Registry)

    def get_registry(self, name: str, resource_group: str | None = None) -> Registry:
        return self.answer("GET", self.registry_id(name, resource_group), Registry)

    def put_registry(
        self, name: str, body: RegistryBody, resource_group: str | None = None
    ) -> Registry:
        return self.answer("PUT", self.registry_id(name, resource_group), Registry, body=body)

    def patch_registry(
        self, name: str, properties: RegistryProperties, resource_group: str | None = None
    ) -> Registry:
        body = RegistryBody(properties=properties)
        return self.answer("PATCH", self.registry_id(name, resource_group), Registry, body=body)

    def delete_registry(self, name: str, resource_group: str | None = None) -> bool:
        """True when deleted, False when there was nothing to delete (204)."""
        return self.delete(self.registry_id(name, resource_group))

    def registry_credentials(
        self,
        name: str,
        action: str,
        body: BaseModel | None = None,
        resource_group: str | None = None,
    ) -> RegistryCredentials:
        """`POST {registry}/{action}`: listCredentials or regenerateCredential."""
        url = f"{self.registry_id(name, resource_group)}/{action}"
        return self.answer("POST", url, RegistryCredentials, body=body)

    # -- the directory (/transship/v1) -----------------------------------------------------
    def directory(self, method: str, path: str, model: type[M], body: BaseModel | None = None) -> M:
        """A call to the service's directory API (`/transship/v1/…`; no api-version)."""
        url = f"{DIRECTORY}{path}"
        return parse_answer(self.send(method, url, body=body), model, f"{method} {url}")

    def directory_delete(self, path: str) -> None:
        """`DELETE /transship/v1{path}` (answered 204, no body)."""
        self.send("DELETE", f"{DIRECTORY}{path}")

    def directory_values(self, path: str, item: type[M]) -> list[M]:
        return self.directory("GET", path, Page[item]).value  # type: ignore[valid-type]

    # -- generic resources --------------------------------------------------------------
    def get(self, url: str, model: type[M], query: Mapping[str, str] | None = None) -> M:
        return self.answer("GET", url, model, query=query)

    def put(self, url: str, body: BaseModel, model: type[M]) -> M:
        return self.answer("PUT", url, model, body=body)

    def post(self, url: str, model: type[M], body: BaseModel | None = None) -> M:
        return self.answer("POST", url, model, body=body)

    def delete(self, url: str) -> bool:
        """True when deleted, False when there was nothing to delete (204)."""
        return self.call("DELETE", url).status != 204

    def values(self, url: str, item: type[M], query: Mapping[str, str] | None = None) -> list[M]:
        """Every item of a `{"value": […], "nextLink": …}` listing, each an `item`."""
        page_model: type[Page[M]] = Page[item]  # type: ignore[valid-type]
        values: list[M] = []
        next_url: str | None = url
        while next_url:
            # The first page takes `query`; a nextLink carries its own.
            page = self.answer(
                "GET", next_url, page_model, query=query if next_url == url else None
            )
            values += page.value
            next_url = page.next_link or None
        return values

    # -- imports ------------------------------------------------------------------------
    def import_image(
        self, name: str, parameters: ImportImageParameters, resource_group: str | None = None
    ) -> Response:
        return self.call(
            "POST", f"{self.registry_id(name, resource_group)}/importImage", body=parameters
        )

    def list_imports(self, name: str, resource_group: str | None = None) -> list[OperationStatus]:
        return self.values(
            f"{self.registry_id(name, resource_group)}/importOperations", OperationStatus
        )

    def operation_status_url(self, operation_id: str) -> str:
        return (
            f"/subscriptions/{_seg(self.subscription)}/providers/{PROVIDER}"
            f"/locations/{_seg(self.location)}/operationStatuses/{_seg(operation_id)}"
        )

    def get_operation(self, operation_id: str) -> OperationStatus:
        return self.answer("GET", self.operation_status_url(operation_id), OperationStatus)

    def get_operation_url(self, url: str) -> Response:
        """Poll a status URL the server handed out (re-based onto this server)."""
        return self.call("GET", url)

    def cancel_operation(self, operation_id: str) -> OperationStatus:
        url = f"{self.operation_status_url(operation_id)}/cancel"
        return self.answer("POST", url, OperationStatus)

    def follow_operation_url(self, operation_id: str) -> str:
        return (
            f"{DIRECTORY}/subscriptions/{_seg(self.subscription)}"
            f"/importOperations/{_seg(operation_id)}"
        )

    def follow_operation(
        self, operation_id: str, version: str | None, wait_seconds: float
    ) -> Response:
        """`GET /transship/v1/…/importOperations/{id}`, the long poll: answered 200 (the
        operation's status, its version in `ETag`) as soon as the operation differs from
        `version`, or 304 after `wait_seconds` without a change. Raises ApiError (a 404
        too: a server without this endpoint answers so) and TransportError."""
        headers = {"If-None-Match": version} if version else None
        query = {"waitSeconds": f"{wait_seconds:g}"} if version else None
        return self.send(
            "GET",
            self.follow_operation_url(operation_id),
            query=query,
            headers=headers,
        )


def info_of(found: ServiceInfo) -> dict[str, str]:
    """The service's coordinates a profile keeps (`INFO_KEYS`; those the server gave)."""
    values = {
        "subscriptionId": found.subscription_id,
        "resourceGroup": found.resource_group,
        "location": found.location,
        "loginServerSuffix": found.login_server_suffix,
        "version": found.version,
    }
    return {key: value for key, value in values.items() if key in INFO_KEYS and value}


def request_line(method: str, url: str) -> str:
    """`GET /path` for a message (the path of `url`, without origin or query)."""
    return f"{method} {urlsplit(url).path or url}"


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
            realm = self.http.request(
                "GET", params["realm"], query=query, headers=headers, authorization=self._basic
            )
            token = parse_answer(realm, RegistryAccessToken, request_line("GET", params["realm"]))
            return f"Bearer {token.access_token or token.token}"
        raise error_from(401, "Unauthorized", response.body)

    def answer(self, method: str, url: str, model: type[M]) -> M:
        """`method url` answered with a `model`. Raises ApiError, TransportError, or
        AnswerMismatch."""
        return parse_answer(self.request(method, url), model, request_line(method, url))

    def pages(
        self,
        url: str,
        model: type[M],
        items: Callable[[M], Sequence[T]],
        *,
        query: Mapping[str, str] | None = None,
        top: int | None = None,
    ) -> Iterator[T]:
        """Every item (`items` of each page, a `model`) across the `Link: <…>; rel="next"`
        pages (at most `top`)."""
        produced = 0
        params = dict(query or {})
        next_url: str | None = url
        while next_url and (top is None or produced < top):
            # The page size (and any filter) is ours; `last` comes from the link.
            params["n"] = str(PAGE_SIZE if top is None else min(PAGE_SIZE, top - produced))
            response = self.request("GET", next_url, params)
            page = items(parse_answer(response, model, request_line("GET", next_url)))
            for item in page:
                if top is not None and produced >= top:
                    return
                produced += 1
                yield item
            following = next_link(response.header("Link"))
            if following == next_url or not page:
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


def _complete(info: Mapping[str, str]) -> bool:
    return all(info.get(k) for k in ("subscriptionId", "resourceGroup", "location"))
