"""The saved login: `$XDG_CONFIG_HOME/transship/profile.json` (mode 0600, directory 0700).

It holds the server URL, the credential — a service principal's client id and secret, or a
user's name and password, with the tenant — and what `GET /transship/v1/info` said about the
service (subscriptionId, resourceGroup, location, loginServerSuffix). The commands trade the
credential for bearer tokens at the server's token endpoint (kept in memory only).

TRANSSHIP_SERVER, TRANSSHIP_USERNAME, TRANSSHIP_PASSWORD, TRANSSHIP_TENANT and
TRANSSHIP_USER_TYPE (`servicePrincipal`, the default, or `user`) override it for scripts.
When TRANSSHIP_SERVER names a different server, or TRANSSHIP_USERNAME a different identity,
nothing saved (credential, tenant, service info) is used for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_SERVER = "TRANSSHIP_SERVER"
ENV_USERNAME = "TRANSSHIP_USERNAME"
ENV_PASSWORD = "TRANSSHIP_PASSWORD"
ENV_TENANT = "TRANSSHIP_TENANT"
ENV_USER_TYPE = "TRANSSHIP_USER_TYPE"
SERVICE_PRINCIPAL = "servicePrincipal"
USER = "user"
USER_TYPES = (SERVICE_PRINCIPAL, USER)
INFO_KEYS = ("subscriptionId", "resourceGroup", "location", "loginServerSuffix", "version")
OWNER_CREDENTIAL_FILE = "owner-credential.json"


class ProfileError(Exception):
    """No usable login, or an unreadable profile / credential file."""


@dataclass
class Profile:
    server: str
    # A service principal's client (application) id, or a user's name.
    username: str
    password: str = field(repr=False)
    kind: str = SERVICE_PRINCIPAL
    # The tenant id; None for a service principal whose tenant is not known yet (the
    # server tells it).
    tenant: str | None = None
    # What GET /transship/v1/info returned for `server` (empty until known).
    info: dict[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """Everything but the secret (safe to print)."""
        return {
            "server": self.server,
            "type": self.kind,
            "tenantId": self.tenant,
            "username": self.username,
            **self.info,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.public(), "password": self.password}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        try:
            server, username, password = data["server"], data["username"], data["password"]
        except KeyError as exc:
            raise ProfileError(f"the saved profile lacks {exc.args[0]!r}") from None
        if not all(isinstance(v, str) for v in (server, username, password)):
            raise ProfileError("the saved profile is malformed")
        kind = data.get("type")
        if kind not in USER_TYPES:
            raise ProfileError(
                "the saved profile is from an older transship (an admin password); "
                "run `transship login` again"
            )
        tenant = data.get("tenantId")
        info = {k: str(data[k]) for k in INFO_KEYS if isinstance(data.get(k), str | int)}
        return cls(
            server=server,
            username=username,
            password=password,
            kind=kind,
            tenant=tenant if isinstance(tenant, str) and tenant else None,
            info=info,
        )


def user_type(text: str) -> str:
    """`servicePrincipal` or `user`, from any spelling of either. Raises ValueError."""
    for kind in USER_TYPES:
        if text.strip().lower() == kind.lower():
            return kind
    raise ValueError(f"{text!r} is not one of {', '.join(USER_TYPES)}")


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "transship"


def profile_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / "profile.json"


def normalize_server(url: str) -> str:
    """`http(s)://host[:port][/prefix]` without a trailing slash.

    Without a scheme, loopback hosts get http:// and everything else https:// (Docker's rule
    for insecure registries).
    """
    url = url.strip()
    if not url:
        raise ValueError("the server URL is empty")
    if "://" not in url:
        host = urlsplit(f"//{url}").hostname or ""
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        url = f"{'http' if loopback else 'https'}://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the server URL must not carry a query or fragment: {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def load_saved(path: Path | None = None) -> Profile | None:
    path = path or profile_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ProfileError(f"{path} is not valid JSON; run `transship login` again") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path} is malformed; run `transship login` again")
    return Profile.from_json(data)


def save(profile: Profile, path: Path | None = None) -> Path:
    """Write the profile atomically, readable by its owner only."""
    path = path or profile_path()
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    fd, temporary = tempfile.mkstemp(prefix=".profile-", suffix=".json", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(profile.to_json(), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def write_private(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` as JSON to `path` atomically, readable by its owner only (mode 0600)."""
    path = path.expanduser()
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent or Path("."))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(data), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def remove(path: Path | None = None) -> bool:
    """Delete the saved profile; False when there was none."""
    path = path or profile_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class ClientCredential:
    """A service principal's credential as a file holds it."""

    client_id: str
    client_secret: str = field(repr=False)
    tenant: str | None = None


def _first_string(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def read_credential_file(path: Path) -> ClientCredential:
    """A service principal's credential from a JSON file: the server's
    `owner-credential.json` ({"tenantId", "clientId", "clientSecret", …}), or what
    `transship identity sp create -o json` and `az ad sp create-for-rbac` print
    ({"appId", "password", "tenant" or "tenantId"})."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise ProfileError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path} does not hold a JSON object")
    client_id = _first_string(data, "clientId", "appId")
    secret = _first_string(data, "clientSecret", "password")
    if client_id is None or secret is None:
        if isinstance(data.get("username"), str):
            raise ProfileError(
                f"{path} holds a user name and password (the admin-credential.json of an older "
                f"server); servers now write {OWNER_CREDENTIAL_FILE} with a client id and secret"
            )
        raise ProfileError(
            f'{path} lacks a client id and secret ("clientId" and "clientSecret", '
            'or "appId" and "password")'
        )
    return ClientCredential(client_id, secret, _first_string(data, "tenantId", "tenant"))


def resolve(env: Mapping[str, str] | None = None, path: Path | None = None) -> Profile:
    """The login to use: the saved profile with environment overrides applied."""
    env = os.environ if env is None else env
    saved = load_saved(path or profile_path(env))
    env_server = env.get(ENV_SERVER)
    if env_server:
        try:
            server = normalize_server(env_server)
        except ValueError as exc:
            raise ProfileError(f"{ENV_SERVER}: {exc}") from None
        if saved is not None and saved.server != server:
            saved = None  # never send the saved credential to another server
    elif saved is not None:
        server = saved.server
    else:
        raise ProfileError(
            f"not logged in: run `transship login --server URL …`, or set {ENV_SERVER}, "
            f"{ENV_USERNAME} and {ENV_PASSWORD}"
        )
    username = env.get(ENV_USERNAME) or (saved.username if saved else None)
    if saved is not None and username != saved.username:
        saved = None  # another identity: none of the saved one's details apply
    password = env.get(ENV_PASSWORD) or (saved.password if saved else None)
    if not username or not password:
        raise ProfileError(
            f"no credential for {server}: set {ENV_USERNAME} and {ENV_PASSWORD}, "
            "or run `transship login`"
        )
    kind_text = env.get(ENV_USER_TYPE)
    try:
        kind = user_type(kind_text) if kind_text else (saved.kind if saved else SERVICE_PRINCIPAL)
    except ValueError as exc:
        raise ProfileError(f"{ENV_USER_TYPE}: {exc}") from None
    tenant = env.get(ENV_TENANT) or (saved.tenant if saved else None)
    if kind == USER and not tenant:
        raise ProfileError(f"a user's login needs its tenant: set {ENV_TENANT}")
    return Profile(server, username, password, kind, tenant, dict(saved.info) if saved else {})
