"""Early writeback of a file being written: the disk starts on a blob's bytes while the rest
of it is still arriving, so that the `fsync` before its commit waits only for the last few
MiB instead of the whole blob.

Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)` starts the writeback of a byte range and
returns at once (no waiting, no metadata, no durability by itself: the commit's `fsync` is
still what makes a blob durable). Where the call does not exist, this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

# Bytes written between two requests to start writeback: large enough that the calls cost
# nothing next to the copying, small enough that the final fsync has little left to do.
WRITEBACK_EVERY_BYTES = 8 << 20

_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


# Resolved once: a constant of the platform, not state.
_START_WRITEBACK = _sync_file_range()


class EarlyWriteback:
    """Counts the bytes written to one file descriptor (appended from `start`) and, every
    `every` bytes, asks the kernel to start writing them to disk; when not `enabled` (writes
    that need not be durable), it only counts. Used from one thread at a time. Errors of the
    request are ignored: it is only a hint, and the commit's `fsync` reports any real
    failure."""

    def __init__(
        self, fd: int, start: int, *, enabled: bool = True, every: int = WRITEBACK_EVERY_BYTES
    ) -> None:
        self._fd = fd
        self._start_writeback = _START_WRITEBACK if enabled else None
        self._from = start  # the first byte not yet handed to writeback
        self._at = start
        self._every = every

    def wrote(self, count: int) -> None:
        """`count` more bytes were written at the end of the file."""
        self._at += count
        if self._at - self._from >= self._every and self._start_writeback is not None:
            self._start_writeback(
                self._fd, self._from, self._at - self._from, _SYNC_FILE_RANGE_WRITE
            )
            self._from = self._at
