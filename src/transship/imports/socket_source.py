"""The rest of an upstream's blob answer, read straight from its connection's socket by a
worker thread (`BlockingSource`).

On plain HTTP the event loop would otherwise receive every byte of every blob: a bytes
object per read, copies joining reads into chunks, and a hand-off to the hashing thread
for each (docs/performance.md, "Import speed"). Handed the socket, the thread that hashes
and writes reads into one reused buffer. What the loop had already buffered is read first;
the connection is never reused afterwards (its owner closes it).
"""

from __future__ import annotations

import contextlib
import os
import socket


class SocketSource:
    """`head` (bytes already received), then those of the connected socket `fd`, each
    read waiting at most `timeout` seconds. The caller has stopped the event loop's reading
    of the socket before handing it over, and closes this source (then the connection)
    afterwards."""

    def __init__(self, fd: int, head: bytes, timeout: float) -> None:
        # A socket of its own over a duplicate descriptor: the transport's wrapper refuses
        # blocking calls, and closing this one leaves the transport's to its owner.
        self._sock = socket.socket(fileno=os.dup(fd))
        self._sock.settimeout(timeout)
        self._head = memoryview(head)
        self._interrupted = False

    def read_into(self, view: memoryview, /) -> int:
        if self._head:
            taken = min(len(view), len(self._head))
            view[:taken] = self._head[:taken]
            self._head = self._head[taken:]
            return taken
        if self._interrupted:
            return 0
        return self._sock.recv_into(view)

    def interrupt(self) -> None:
        self._interrupted = True
        with contextlib.suppress(OSError):
            # Ends a read blocked in another thread (it returns 0 at once).
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()
