"""Several processes for one command: `serve --workers N` and `worker --processes N`.

The process the user started (the master) does everything a single process does — it binds
the listening sockets, builds the services (so the schema is migrated and the service
bootstrapped once, before anything else opens the database), serves HTTP and, unless told
otherwise, runs the background work — and starts N-1 children. Each child is a supervised
loop of the master (`child_loop`), so it shows in the master's `/readyz` and is restarted
with the supervisor's backoff when it dies (`kill -9` included), as gunicorn does.

A child is `python -m transship.cli.child`: it reads its `ChildSpec` (JSON, one line) from
its stdin, which stays open; an HTTP child, once its services are built, binds listening
sockets of its own on the master's addresses and port (SO_REUSEPORT: the kernel spreads new
connections evenly over the processes' sockets, and a child's socket exists only while that
child can serve it), serves them, and never runs the background work. It stops gracefully
on SIGTERM (the master's stop) and when its stdin reaches end of file: the master is gone,
even killed with `kill -9`, so no child outlives it. It ignores SIGINT: Ctrl-C in a
terminal reaches the whole process group, and the children are stopped by the master, in
order, instead.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transship.config import Settings
from transship.worker.supervisor import Beat, Loop

log = logging.getLogger("transship")

# How long a stopping child may take before it is killed: longer than the HTTP server's own
# wait for requests in progress (aiohttp's 60 s) and an import's hand-back.
CHILD_STOP_SECONDS = 75.0

ChildKind = Literal["serve", "worker"]


class ChildExited(RuntimeError):
    """A child process ended without being asked to (the supervisor restarts it)."""


# Where a socket is bound, as `socket.getsockname()` gives it: (host, port) for IPv4,
# (host, port, flowinfo, scope_id) for IPv6.
Address = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What a child runs: `kind`, with `settings`, serving new sockets on each of the
    master's listening `addresses` (HTTP children; none for workers; see join_listeners).
    It travels as one JSON line on the child's stdin (the settings as their JSON values)."""

    kind: ChildKind
    settings: Settings
    addresses: tuple[Address, ...] = ()

    def encode(self) -> bytes:
        settings = self.settings.model_dump(mode="json")
        addresses = [list(address) for address in self.addresses]
        return (
            json.dumps({"kind": self.kind, "settings": settings, "addresses": addresses}) + "\n"
        ).encode()

    @classmethod
    def decode(cls, line: bytes) -> ChildSpec:
        """Raises ValueError for anything but a spec `encode` wrote."""
        data = json.loads(line)
        kind = data.get("kind")
        if kind not in ("serve", "worker"):
            raise ValueError(f"unknown child kind {kind!r}")
        return cls(
            kind,
            Settings(**data["settings"]),
            tuple(_address(item) for item in data["addresses"]),
        )


def _address(item: object) -> Address:
    match item:
        case [str(host), int(port)]:
            return (host, port)
        case [str(host), int(port), int(flowinfo), int(scope_id)]:
            return (host, port, flowinfo, scope_id)
    raise ValueError(f"not a socket address: {item!r}")


def child_settings(settings: Settings) -> Settings:
    """The settings a child runs with: the master's, as it resolved them (flags, environment
    and file alike), without the background work and without children of its own."""
    return settings.model_copy(update={"background_work": False, "http_workers": 1})


def bind_listeners(
    hosts: Sequence[str], port: int, backlog: int = 1024, *, reuse_port: bool = False
) -> list[socket.socket]:
    """Listening TCP sockets on every address of `hosts` at `port`. An address
    the machine lacks (no IPv6) is skipped with a warning, as a single process does; raises
    OSError for anything else (a port in use) or when nothing could be bound.

    `reuse_port`: the sockets allow the master's children to bind sockets of their own on
    the same addresses (`join_listeners`), the kernel spreading new connections evenly over
    them all. (With one socket shared by every process, the process that wakes first
    accepts every connection queued: 63 of a load generator's 64 keep-alive connections
    went to one process in a measurement, which then served them alone.) A probe bound
    without SO_REUSEPORT first still makes a port in use fail here with EADDRINUSE instead
    of silently joining another server's sockets, and any later server's own bind fails
    the same way."""
    sockets: list[socket.socket] = []
    try:
        for host in hosts:
            try:
                infos = socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
            except socket.gaierror as exc:
                raise OSError(f"cannot resolve listen address {host!r}: {exc}") from None
            for family, _, _, _, address in dict.fromkeys(infos):
                try:
                    if reuse_port:
                        with _bound(family, address, reuse_port=False) as probe:
                            # Port 0: the shared sockets take the port the probe was given.
                            address = (address[0], probe.getsockname()[1], *address[2:])
                    sock = _bound(family, address, reuse_port=reuse_port)
                except OSError as exc:
                    if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                        raise
                    log.warning("cannot listen on %s port %s: %s", host, port, exc.strerror)
                    continue
                sockets.append(sock)
                _listen(sock, backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(f"could not listen on any of {', '.join(hosts)} port {port}")
    return sockets


def join_listeners(addresses: Sequence[Address], backlog: int = 1024) -> list[socket.socket]:
    """Listening TCP sockets of this process on `addresses`, which the master's sockets
    (bound with `reuse_port`) hold: each new connection goes to one of them all. Raises
    OSError when one cannot be bound (nothing holds that address with SO_REUSEPORT any more,
    or the master runs as another user)."""
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
            sock = _bound(family, address, reuse_port=True)
            sockets.append(sock)
            _listen(sock, backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bound(family: int, address: tuple[Any, ...], *, reuse_port: bool) -> socket.socket:
    """A TCP socket of `family` bound to `address`; raises OSError (having closed it)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _listen(sock: socket.socket, backlog: int) -> None:
    sock.listen(backlog)
    sock.setblocking(False)


def child_loops(
    prefix: str, count: int, spec: ChildSpec, stopping: asyncio.Event
) -> dict[str, Loop]:
    """The supervised loops of a master's `count` - 1 children (`<prefix>-2`…: the master
    is number 1), each running `spec` (see `child_loop`)."""
    return {
        f"{prefix}-{number}": child_loop(f"{prefix}-{number}", spec, stopping)
        for number in range(2, count + 1)
    }


def child_loop(name: str, spec: ChildSpec, stopping: asyncio.Event) -> Loop:
    """A supervised loop running one child process: it starts the child, beats once the
    child has its spec, and raises ChildExited when the child ends (so the supervisor logs
    it and starts a new one after its backoff) — unless `stopping` is set: the child ended
    because the master is stopping too (systemd and terminals signal the whole group), and
    the loop waits for its own cancellation instead. Cancelled (the master stops), it sends
    the child SIGTERM and waits for it to finish, killing it after CHILD_STOP_SECONDS."""

    async def run(beat: Beat) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "transship.cli.child",
            stdin=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(spec.encode())
            await proc.stdin.drain()
            log.info("%s started (pid %d)", name, proc.pid)
            beat()
            status = await proc.wait()
        except asyncio.CancelledError:
            await _stop(proc, name)
            raise
        except BaseException:
            await _stop(proc, name)
            raise
        if stopping.is_set():
            log.info("%s (pid %d) stopped", name, proc.pid)
            await asyncio.Future()  # until the supervisor's stop cancels this loop
        raise ChildExited(f"{name} (pid {proc.pid}) exited with status {status}")

    return run


async def _stop(proc: asyncio.subprocess.Process, name: str) -> None:
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        # Shielded: the master's own cancellation must not leave the child running.
        await asyncio.wait_for(asyncio.shield(proc.wait()), CHILD_STOP_SECONDS)
    except TimeoutError:
        log.warning(
            "%s (pid %d) did not stop in %.0f s: killed", name, proc.pid, CHILD_STOP_SECONDS
        )
        proc.kill()
        await asyncio.shield(proc.wait())


def stop_event(*, child: bool) -> asyncio.Event:
    """An event set on SIGTERM, and on SIGINT in a master; in a child, also when its stdin
    (the pipe from its master) reaches end of file. Needs a running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if child:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)

        def readable() -> None:
            try:
                data = os.read(stdin, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(stdin)
                log.info("the master process is gone: stopping")
                stop.set()

        loop.add_reader(stdin, readable)
    else:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    return stop
