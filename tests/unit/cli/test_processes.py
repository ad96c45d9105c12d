"""The pieces of `serve --workers N` / `worker --processes N` that need no child process:
the spec a child reads, the settings it gets, and the listening sockets the master binds."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from transship.cli.processes import ChildSpec, bind_listeners, child_settings
from transship.config import Settings


def test_a_child_gets_the_master_s_resolved_settings_without_background_work(
    tmp_path: Path,
) -> None:
    master = Settings(
        data_dir=tmp_path,
        database_url="postgresql://u:p@db:5432/t",
        http_workers=4,
        import_lease_seconds=3.5,
        hosts=("127.0.0.1",),
        upstreams={"mirror.example:5000": {"insecure": True}},
    )
    spec = ChildSpec("serve", child_settings(master), (("127.0.0.1", 5000), ("::1", 5000, 0, 0)))
    decoded = ChildSpec.decode(spec.encode())
    assert decoded == spec
    child = decoded.settings
    assert child.background_work is False and child.http_workers == 1
    assert child.model_copy(update={"background_work": True, "http_workers": 4}) == master


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"{}",
        b'{"kind": "shell", "settings": {}, "addresses": []}',
        b'{"kind": "serve", "settings": {}, "addresses": [["127.0.0.1"]]}',
        b"not json",
    ],
)
def test_a_spec_that_is_not_one_is_refused(line: bytes) -> None:
    with pytest.raises((ValueError, KeyError)):
        ChildSpec.decode(line)


def test_listeners_refuse_a_port_in_use() -> None:
    (first,) = bind_listeners(["127.0.0.1"], 0)
    try:
        assert not first.get_inheritable()
        port = first.getsockname()[1]
        with pytest.raises(OSError) as caught:
            bind_listeners(["127.0.0.1"], port)
        assert caught.value.errno == errno.EADDRINUSE
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = first.accept()
            conn.close()
    finally:
        first.close()


def test_an_address_the_machine_lacks_is_skipped_but_not_all() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: skipped with a warning, like IPv6 on
    # a machine without it; with nothing else to bind, the error names the addresses.
    sockets = bind_listeners(["127.0.0.1", "192.0.2.1"], 0)
    try:
        assert len(sockets) == 1
    finally:
        for sock in sockets:
            sock.close()
    with pytest.raises(OSError, match=r"could not listen on any of 192\.0\.2\.1"):
        bind_listeners(["192.0.2.1"], 0)
