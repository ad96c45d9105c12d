"""The sockets of `serve --workers N`: the master's, bound with `reuse_port`, and each
child's own on the same addresses (`join_listeners`); the kernel spreads new connections
over them, and a port in use is still refused as in one process."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from transship.cli.processes import Address, bind_listeners, join_listeners

CONNECTIONS = 200


@pytest.fixture
def master() -> Iterator[socket.socket]:
    (sock,) = bind_listeners(["127.0.0.1"], 0, reuse_port=True)
    try:
        yield sock
    finally:
        sock.close()


def address_of(sock: socket.socket) -> Address:
    host, port = sock.getsockname()
    return (host, port)


def drain(sock: socket.socket) -> list[socket.socket]:
    """The connections queued on a listening (non-blocking) socket."""
    accepted = []
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return accepted
        accepted.append(conn)


def test_a_child_s_socket_gets_a_share_of_the_new_connections(master: socket.socket) -> None:
    port = master.getsockname()[1]
    assert port != 0
    (child,) = join_listeners([address_of(master)])
    clients: list[socket.socket] = []
    accepted: list[list[socket.socket]] = []
    try:
        assert child.getsockname() == master.getsockname()
        for _ in range(CONNECTIONS):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        accepted = [drain(master), drain(child)]
        assert sum(map(len, accepted)) == CONNECTIONS
        # The kernel hashes connections over the sockets (on one shared socket the process
        # that wakes first takes them all): 200 fair coin flips give either side fewer than
        # 50 with a probability of about 1e-12.
        assert all(len(queue) >= 50 for queue in accepted), [len(q) for q in accepted]
    finally:
        for conn in [*clients, *(c for queue in accepted for c in queue)]:
            conn.close()
        child.close()


def test_a_closed_child_socket_leaves_every_connection_to_the_others(
    master: socket.socket,
) -> None:
    port = master.getsockname()[1]
    (child,) = join_listeners([address_of(master)])
    child.close()
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    try:
        accepted = drain(master)
        assert len(accepted) == 20
    finally:
        for conn in [*clients, *accepted]:
            conn.close()


def test_a_port_in_use_is_refused_and_a_master_s_port_is_not_joined_by_another_server(
    master: socket.socket,
) -> None:
    port = master.getsockname()[1]
    # Another server on the master's port, with or without reuse_port: refused, though the
    # master's socket allows SO_REUSEPORT.
    for reuse_port in (True, False):
        with pytest.raises(OSError) as caught:
            bind_listeners(["127.0.0.1"], port, reuse_port=reuse_port)
        assert caught.value.errno == errno.EADDRINUSE
    # A master on a port another server holds: refused, not shared.
    (plain,) = bind_listeners(["127.0.0.1"], 0)
    try:
        with pytest.raises(OSError) as caught:
            bind_listeners(["127.0.0.1"], plain.getsockname()[1], reuse_port=True)
        assert caught.value.errno == errno.EADDRINUSE
        # Nor does a child join a socket bound without reuse_port.
        with pytest.raises(OSError) as caught:
            join_listeners([address_of(plain)])
        assert caught.value.errno == errno.EADDRINUSE
    finally:
        plain.close()


def test_an_address_the_machine_lacks_is_skipped_with_reuse_port() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here.
    sockets = bind_listeners(["192.0.2.1", "127.0.0.1"], 0, reuse_port=True)
    try:
        assert [s.getsockname()[0] for s in sockets] == ["127.0.0.1"]
    finally:
        for sock in sockets:
            sock.close()
    with pytest.raises(OSError, match=r"could not listen on any of 192\.0\.2\.1"):
        bind_listeners(["192.0.2.1"], 0, reuse_port=True)


def test_ipv6_addresses_are_joined_too() -> None:
    try:
        (sock,) = bind_listeners(["::1"], 0, reuse_port=True)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        address = sock.getsockname()
        assert len(address) == 4
        (child,) = join_listeners([address])
        child.close()
    finally:
        sock.close()
