"""Process CPU time and memory from /proc (Linux only).

- :func:`group_cpu_seconds` is user+system CPU of every live process in a process group
  (all their threads), plus what the group leader has reaped from its children.
- :func:`thread_cpu_seconds` is the CPU of one process's main thread (an event loop).
- :func:`peak_rss_bytes` is ``VmHWM`` (peak resident set) of one process;
  :func:`reset_peak_rss` resets it (``clear_refs`` 5, root or the same user).
- :class:`RssSampler` polls ``VmRSS`` in a thread: a second opinion on the peak.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after ``comm`` (index 0 is field 3, ``state``)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _group_members(pgid: int) -> list[int]:
    members: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def group_cpu_times(pgid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process group led by ``pgid``, all threads."""
    user = system = 0
    for pid in _group_members(pgid):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        user += int(fields[11])  # utime
        system += int(fields[12])  # stime
        if pid == pgid:
            user += int(fields[13])  # cutime (reaped children)
            system += int(fields[14])  # cstime
    return user / _TICKS, system / _TICKS


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system, all threads) of the process group led by ``pgid``."""
    user, system = group_cpu_times(pgid)
    return user + system


def thread_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of the main thread of ``pid`` alone (for an asyncio
    server, its event loop), 0.0 when it is gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def io_chars(pid: int) -> tuple[int, int]:
    """(rchar, wchar) of ``pid``, all threads: bytes passed to read/write-like calls,
    sockets included."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, _, value = line.partition(":")
            values[key] = int(value)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0, 0
    return values.get("rchar", 0), values.get("wchar", 0)


def _status_kib(pid: int, key: str) -> int | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def peak_rss_bytes(pid: int) -> int | None:
    """``VmHWM`` of ``pid`` in bytes (None when the process is gone)."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib * 1024


def rss_bytes(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` in bytes (None when the process is gone)."""
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS; False when the kernel does not let us."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Max ``VmRSS`` of one process, polled every ``interval`` s while the block runs."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = rss_bytes(self.pid)
            if value is not None:
                self.peak = max(self.peak, value)
            time.sleep(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


class CpuMeter:
    """CPU the process group ``pgid`` used while the block ran: ``user``, ``system``, ``total``."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.user = self.system = 0.0
        self._start = (0.0, 0.0)

    @property
    def total(self) -> float:
        return self.user + self.system

    def __enter__(self) -> Self:
        self._start = group_cpu_times(self.pgid)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        user, system = group_cpu_times(self.pgid)
        self.user = user - self._start[0]
        self.system = system - self._start[1]
