"""The saved login: `$XDG_CONFIG_HOME/transship/profile.json` (mode 0600, directory 0700).

It holds the server URL, the credential, and what `GET /transship/v1/info` said about the
service (subscriptionId, resourceGroup, location, loginServerSuffix). TRANSSHIP_SERVER,
TRANSSHIP_USERNAME and TRANSSHIP_PASSWORD override it for scripts; when TRANSSHIP_SERVER names
a different server the saved credential and service info are not used for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_SERVER = "TRANSSHIP_SERVER"
ENV_USERNAME = "TRANSSHIP_USERNAME"
ENV_PASSWORD = "TRANSSHIP_PASSWORD"
DEFAULT_USERNAME = "admin"
INFO_KEYS = ("subscriptionId", "resourceGroup", "location", "loginServerSuffix", "version")


class ProfileError(Exception):
    """No usable login, or an unreadable profile / credential file."""


@dataclass
class Profile:
    server: str
    username: str
    password: str = field(repr=False)
    # What GET /transship/v1/info returned for `server` (empty until known).
    info: dict[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """Everything but the password (safe to print)."""
        return {"server": self.server, "username": self.username, **self.info}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        info = data.pop("info")
        return {**data, **info}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        try:
            server, username, password = data["server"], data["username"], data["password"]
        except KeyError as exc:
            raise ProfileError(f"the saved profile lacks {exc.args[0]!r}") from None
        if not all(isinstance(v, str) for v in (server, username, password)):
            raise ProfileError("the saved profile is malformed")
        info = {k: str(data[k]) for k in INFO_KEYS if isinstance(data.get(k), str | int)}
        return cls(server=server, username=username, password=password, info=info)


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


def remove(path: Path | None = None) -> bool:
    """Delete the saved profile; False when there was none."""
    path = path or profile_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def read_credential_file(path: Path) -> tuple[str | None, str]:
    """`{"username": …, "password": …}` as the server writes it at first start."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ProfileError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("password"), str):
        raise ProfileError(f'{path} has no "password" string')
    username = data.get("username")
    return (username if isinstance(username, str) and username else None), data["password"]


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
            f"not logged in: run `transship login --server URL`, or set {ENV_SERVER} "
            f"and {ENV_PASSWORD}"
        )
    username = env.get(ENV_USERNAME) or (saved.username if saved else DEFAULT_USERNAME)
    password = env.get(ENV_PASSWORD)
    if password is None:
        if saved is None:
            raise ProfileError(f"no credential for {server}: set {ENV_PASSWORD} or run `transship login`")
        password = saved.password
    return Profile(server, username, password, dict(saved.info) if saved else {})
