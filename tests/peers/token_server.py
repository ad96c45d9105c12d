"""A Docker-Hub-style registry token server for tests (RS256 JWTs, x5c header).

It implements the two token endpoints of the distribution token-auth protocol at ``/token``:

- ``GET /token?service=S&scope=S1&scope=S2[&offline_token=true]`` with optional HTTP Basic
  credentials. Anonymous callers get the ``anonymous_actions`` (``pull`` by default);
  a configured user gets the actions of its :class:`TokenUser` on matching repositories.
  Wrong credentials get 401. Each ``scope`` parameter may itself hold several
  space-separated scopes.
- ``POST /token`` with an OAuth2 form: ``grant_type=password`` (``username``, ``password``)
  or ``grant_type=refresh_token`` (``refresh_token``), ``service``, ``scope``
  (space-separated), ``access_type=offline`` to ask for a refresh token.

Answers are ``{"token", "access_token", "expires_in", "issued_at"}`` plus ``refresh_token``
when one was asked for (``offline_token=true`` / ``access_type=offline``, or always with
``always_refresh_token=True``). Requested actions outside the caller's rights are silently
dropped from the token, as Docker Hub does.

Tokens are signed RS256 by a key whose self-signed certificate is written to
:attr:`TokenServer.cert_path` (the registry's ``rootcertbundle``); the JWT header carries
that certificate in ``x5c``. Claims: ``iss, sub, aud(=service), exp, nbf, iat, jti, access``.

The server runs in a daemon thread on a loopback port picked by the OS, and records every
request it received in :attr:`TokenServer.requests` (so tests can assert, for instance, that a
client sent credentials, or that no request arrived at all).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import functools
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .ports import LOOPBACK
from .procs import Peer

ALL_REPOSITORY_ACTIONS: tuple[str, ...] = ("pull", "push", "delete")


@dataclass(frozen=True)
class TokenUser:
    """A user of the token server: its password, the actions it may get, and where.

    ``repositories`` are :mod:`fnmatch` patterns of repository names (``"*"`` = all).
    ``catalog`` grants ``registry:catalog:*``.
    """

    password: str
    actions: tuple[str, ...] = ALL_REPOSITORY_ACTIONS
    repositories: tuple[str, ...] = ("*",)
    catalog: bool = True


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server received, and what it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    authorization: str | None
    username: str | None
    authenticated: bool
    grant_type: str | None
    scopes: tuple[str, ...]
    granted: tuple[dict[str, Any], ...]
    status: int


@dataclass(frozen=True)
class _Caller:
    username: str | None
    user: TokenUser | None


@dataclass
class _Outcome:
    status: int
    body: dict[str, Any]
    username: str | None = None
    authenticated: bool = False
    grant_type: str | None = None
    scopes: tuple[str, ...] = ()
    granted: tuple[dict[str, Any], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    """One RSA key per test process: generating keys is the slow part of starting a server."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _self_signed_cert(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """Split ``type:name:actions`` (the name may contain ``:`` for a host:port) or return None."""
    first = scope.find(":")
    last = scope.rfind(":")
    if first < 0 or last <= first:
        return None
    kind, name, actions = scope[:first], scope[first + 1 : last], scope[last + 1 :]
    return kind, name, [a for a in actions.split(",") if a]


class TokenServer(Peer):
    """A running (once started) token server. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        workdir: Path,
        *,
        service: str = "transship-test-registry",
        issuer: str = "transship-test-token-issuer",
        users: Mapping[str, TokenUser] | None = None,
        anonymous_actions: Sequence[str] = ("pull",),
        allow_anonymous: bool = True,
        expires_in: int = 300,
        always_refresh_token: bool = False,
    ) -> None:
        self.workdir = workdir
        self.service = service
        self.issuer = issuer
        self.users: dict[str, TokenUser] = dict(users or {})
        self.anonymous_actions: tuple[str, ...] = tuple(anonymous_actions)
        self.allow_anonymous = allow_anonymous
        self.expires_in = expires_in
        self.always_refresh_token = always_refresh_token
        self._key = _signing_key()
        self._cert = _self_signed_cert(self._key, issuer)
        self._x5c = [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.cert_path = workdir / "token-cert.pem"
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._refresh_tokens: dict[str, str] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Write the certificate bundle and start serving on a loopback port in a thread."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; idempotent."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- public API ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The loopback port it listens on."""
        if self._httpd is None:
            raise RuntimeError("token server not started")
        return int(self._httpd.server_address[1])

    @property
    def realm(self) -> str:
        """The realm URL to put in a registry's ``auth.token.realm``."""
        return f"http://{LOOPBACK}:{self.port}/token"

    @property
    def requests(self) -> list[TokenRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def add_user(
        self,
        username: str,
        password: str,
        actions: Sequence[str] = ALL_REPOSITORY_ACTIONS,
        repositories: Sequence[str] = ("*",),
    ) -> None:
        """Add (or replace) a user."""
        self.users[username] = TokenUser(password, tuple(actions), tuple(repositories))

    def issue(
        self, subject: str, access: Iterable[Mapping[str, Any]], expires_in: int | None = None
    ) -> str:
        """Sign a token for ``subject`` granting exactly ``access`` (for tests that craft
        tokens)."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + (self.expires_in if expires_in is None else expires_in),
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [dict(a) for a in access],
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"x5c": self._x5c})

    def decode(self, token: str) -> dict[str, Any]:
        """Verify a token this server issued and return its claims."""
        claims: dict[str, Any] = jwt.decode(
            token, self._key.public_key(), algorithms=["RS256"], audience=self.service
        )
        return claims

    # -- request handling ------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        if method == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            raw = handler.rfile.read(length) if length else b""
            form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        authorization = handler.headers.get("Authorization")
        if parsed.path.rstrip("/") != "/token":
            outcome = _Outcome(404, {"error": "not_found"})
        elif method == "GET":
            outcome = self._get_token(query, authorization)
        else:
            outcome = self._post_token(form)
        record = TokenRequest(
            method=method,
            path=parsed.path,
            query=query,
            form=form,
            authorization=authorization,
            username=outcome.username,
            authenticated=outcome.authenticated,
            grant_type=outcome.grant_type,
            scopes=outcome.scopes,
            granted=outcome.granted,
            status=outcome.status,
        )
        with self._lock:
            self._requests.append(record)
        body = json.dumps(outcome.body).encode()
        handler.send_response(outcome.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in outcome.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _get_token(self, query: dict[str, list[str]], authorization: str | None) -> _Outcome:
        scopes = _split_scopes(query.get("scope", []))
        username: str | None = None
        if authorization:
            basic = _parse_basic(authorization)
            if basic is None:
                return _Outcome(401, {"details": "unsupported authorization"}, scopes=scopes)
            username, password = basic
            caller = self._authenticate(username, password)
            if caller is None:
                return _unauthorized(username, scopes, "GET")
        elif self.allow_anonymous:
            caller = _Caller(None, None)
        else:
            return _unauthorized(None, scopes, "GET")
        offline = query.get("offline_token", ["false"])[0].lower() == "true"
        return self._grant(caller, scopes, want_refresh=offline, grant_type=None)

    def _post_token(self, form: dict[str, list[str]]) -> _Outcome:
        grant_type = _first(form, "grant_type")
        scopes = _split_scopes(form.get("scope", []))
        if grant_type == "password":
            username = _first(form, "username") or ""
            caller = self._authenticate(username, _first(form, "password") or "")
            if caller is None:
                return _unauthorized(username, scopes, "POST", grant_type)
            offline = _first(form, "access_type") == "offline"
            return self._grant(caller, scopes, want_refresh=offline, grant_type=grant_type)
        if grant_type == "refresh_token":
            refresh = _first(form, "refresh_token") or ""
            with self._lock:
                owner = self._refresh_tokens.get(refresh)
            user = self.users.get(owner) if owner is not None else None
            if owner is None or user is None:
                return _Outcome(
                    401, {"error": "invalid_grant"}, grant_type=grant_type, scopes=scopes
                )
            outcome = self._grant(
                _Caller(owner, user), scopes, want_refresh=False, grant_type=grant_type
            )
            outcome.body["refresh_token"] = refresh
            return outcome
        return _Outcome(
            400, {"error": "unsupported_grant_type"}, grant_type=grant_type, scopes=scopes
        )

    def _authenticate(self, username: str, password: str) -> _Caller | None:
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password, password):
            return None
        return _Caller(username, user)

    def _grant(
        self,
        caller: _Caller,
        scopes: tuple[str, ...],
        *,
        want_refresh: bool,
        grant_type: str | None,
    ) -> _Outcome:
        access = tuple(self._access_for(caller, scopes))
        token = self.issue(caller.username or "", access)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if caller.username is not None and (want_refresh or self.always_refresh_token):
            refresh = secrets.token_urlsafe(24)
            with self._lock:
                self._refresh_tokens[refresh] = caller.username
            body["refresh_token"] = refresh
        return _Outcome(
            200,
            body,
            username=caller.username,
            authenticated=caller.user is not None,
            grant_type=grant_type,
            scopes=scopes,
            granted=access,
        )

    def _access_for(self, caller: _Caller, scopes: tuple[str, ...]) -> list[dict[str, Any]]:
        granted: list[dict[str, Any]] = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, wanted = parsed
            allowed: tuple[str, ...]
            if kind.startswith("repository"):
                if caller.user is None:
                    allowed = self.anonymous_actions
                elif any(fnmatch.fnmatchcase(name, p) for p in caller.user.repositories):
                    allowed = caller.user.actions
                else:
                    allowed = ()
            elif kind == "registry" and name == "catalog":
                allowed = ("*",) if caller.user is not None and caller.user.catalog else ()
            else:
                allowed = ()
            if "*" in wanted and "*" not in allowed:
                actions = list(allowed)
            else:
                actions = [a for a in wanted if a in allowed or "*" in allowed]
            if actions:
                granted.append({"type": kind, "name": name, "actions": actions})
        return granted


def _first(values: dict[str, list[str]], key: str) -> str | None:
    items = values.get(key)
    return items[0] if items else None


def _split_scopes(raw: Iterable[str]) -> tuple[str, ...]:
    return tuple(s for item in raw for s in item.split(" ") if s)


def _parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _unauthorized(
    username: str | None, scopes: tuple[str, ...], method: str, grant_type: str | None = None
) -> _Outcome:
    headers = (
        {"WWW-Authenticate": 'Basic realm="transship-test-token-server"'} if method == "GET" else {}
    )
    return _Outcome(
        401,
        {"details": "incorrect username or password", "error": "invalid_grant"},
        username=username,
        grant_type=grant_type,
        scopes=scopes,
        headers=headers,
    )
