"""How to pull from a registry: the exact podman/skopeo commands for its login server, and
what to change on this machine when that host name does not resolve.

Registries are told apart by the `Host` header, so clients must reach a registry by its
login server (`<name>.<suffix>`, `myregistry.localhost:5000` by default). On a stock Debian
machine `*.localhost` does not resolve: glibc does not special-case the `.localhost` domain,
only the `myhostname` NSS module (package libnss-myhostname) answers it. `registry create`
and `import` print these hints on stderr; `serve` logs `unresolved_fix` for a probe name at
start (cli/server.py). Nothing here imports server code: the client commands use it too.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from transship.cli.client import ApiError, ManagementApi
from transship.cli.output import info

# A host name that resolves in a blink or not at all on a sane machine; a resolver that
# takes longer (an unreachable DNS server asked about `x.localhost`) is as good as broken
# for the clients too.
RESOLVE_TIMEOUT_SECONDS = 3.0
LOOPBACK_SUFFIX = "localhost"

Resolver = Callable[[str], bool]


def host_of(login_server: str) -> str:
    """The host name of `host[:port]` (brackets of an IPv6 literal removed)."""
    return urlsplit(f"//{login_server}").hostname or login_server


def resolves(host: str, timeout: float = RESOLVE_TIMEOUT_SECONDS) -> bool:
    """Whether `host` resolves to an address on this machine (the system resolver, as
    podman, skopeo and docker use it). An address literal always does. Blocking: at most
    `timeout` seconds (getaddrinfo has no timeout of its own, so it runs on a daemon thread
    that is left behind when it overruns)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    answer: list[bool] = []

    def lookup() -> None:
        try:
            answer.append(bool(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)))
        except (OSError, UnicodeError):
            answer.append(False)

    thread = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def is_loopback_name(host: str) -> bool:
    """`localhost` or a name under it (RFC 6761: always loopback, if resolvable at all)."""
    host = host.lower().rstrip(".")
    return host == LOOPBACK_SUFFIX or host.endswith(f".{LOOPBACK_SUFFIX}")


def unresolved_fix(host: str, server_address: str | None = None) -> list[str]:
    """What to do when `host` (a login server's host name) does not resolve: lines for a
    person, naming the exact change; the first says what is wrong. `server_address` is
    where the server listens (for a hosts-file line of a name outside `.localhost`)."""
    if is_loopback_name(host):
        return [
            f"{host} does not resolve on this machine, so podman, skopeo and docker cannot "
            "reach the registry by its login server. Either:",
            "  - let every *.localhost name resolve to loopback (once, as root):",
            "      apt-get install libnss-myhostname",
            "      and add myhostname to the hosts: line of /etc/nsswitch.conf, e.g.",
            "      hosts: files myhostname dns",
            "  - or add one line per registry to /etc/hosts (as root):",
            f"      echo '127.0.0.1 {host}' >> /etc/hosts",
        ]
    address = server_address or "<server address>"
    return [
        f"{host} does not resolve on this machine, so clients cannot reach the registry by "
        "its login server. Either:",
        "  - give the login-server suffix a wildcard DNS record (*.<suffix>),",
        "  - or add a line to /etc/hosts (as root):",
        f"      echo '{address} {host}' >> /etc/hosts",
    ]


def registry_login_server(
    management: ManagementApi, name: str, resource_group: str | None = None
) -> str | None:
    """The registry's login server: from `registry show`, or — for a login allowed to pull
    but not to read the registry's settings (AcrPull alone) — `<name>.<login server
    suffix>`, as az acr does. Raises ApiError for other refusals."""
    try:
        found = management.get_registry(name, resource_group)
    except ApiError as exc:
        suffix = management.login_server_suffix
        if exc.status != 403 or not suffix:
            raise
        return f"{name.lower()}.{suffix}"
    return found.properties.login_server or None


def pull_commands(
    login_server: str, images: Sequence[str], *, server_url: str, username: str | None
) -> list[str]:
    """The commands that log in to `login_server` and pull `images` (`repo:tag` or
    `repo@digest`) with podman and skopeo. Plain HTTP (an `http://` server URL) needs
    `--tls-verify=false`; podman and skopeo share their login (auth.json)."""
    plain = urlsplit(server_url).scheme == "http"
    verify = " --tls-verify=false" if plain else ""
    src_verify = " --src-tls-verify=false" if plain else ""
    user = f" -u {username}" if username else ""
    lines = [f"podman login{verify}{user} {login_server}"]
    for image in images:
        lines.append(f"podman pull{verify} {login_server}/{image}")
    for image in images:
        # oci:<dir>[:<tag>], a layout directory named after the repository's last part
        local = image.split("@", 1)[0].rsplit("/", 1)[-1]
        lines.append(f"skopeo copy{src_verify} docker://{login_server}/{image} oci:{local}")
    return lines


def show_pull_hint(
    management: ManagementApi, login_server: str | None, images: Sequence[str]
) -> None:
    """Print `pull_hint` for the saved login on stderr (results stay alone on stdout)."""
    lines = pull_hint(
        login_server,
        images,
        server_url=management.http.server,
        username=management.profile.username,
    )
    if lines:
        info("\n".join(lines))


def pull_hint(
    login_server: str | None,
    images: Sequence[str],
    *,
    server_url: str,
    username: str | None,
    resolver: Resolver | None = None,
) -> list[str]:
    """Lines telling a person how to pull `images` from the registry at `login_server`
    (nothing without a login server): the commands, and the fix first when the host name
    does not resolve here (`resolver`, default `resolves`)."""
    if not login_server:
        return []
    host = host_of(login_server)
    lines: list[str] = []
    if not (resolver or resolves)(host):
        server_host = urlsplit(server_url).hostname
        lines += [
            f"NOTE: {line}" if i == 0 else line
            for i, line in enumerate(
                unresolved_fix(
                    host, server_host if server_host and _is_address(server_host) else None
                )
            )
        ]
    commands = pull_commands(login_server, images, server_url=server_url, username=username)
    asks = " (the login asks for the secret or password)" if username else ""
    if images:
        lines.append(f"Pull it with podman or skopeo{asks}:")
    else:
        lines.append(f"Log in to it with podman or skopeo{asks}, then push and pull:")
        commands += pull_commands(
            login_server, ["<repository>:<tag>"], server_url=server_url, username=None
        )[1:2]
    lines += [f"  {command}" for command in commands]
    return lines


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
