"""Optional sampling profiles of the Transship server (``run.py --profile``), with py-spy.

:func:`profiled` wraps a measured phase: when profiling is on and the target is
Transship, ``py-spy record --format raw`` samples the server (non-blocking, active threads
only) for the phase and writes collapsed stacks to ``PROFILE_DIR/<label>.txt``;
:func:`summarize` turns them into the frames that hold most samples. Profiling slows the
server, so figures from a profiled run are not comparable with an unprofiled one.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE = 250


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    return found


@contextlib.contextmanager
def profiled(profile_dir: Path | None, pid: int, label: str) -> Iterator[None]:
    """Sample ``pid`` with py-spy while the block runs (no-op when ``profile_dir`` is None)."""
    if profile_dir is None:
        yield
        return
    profile_dir.mkdir(parents=True, exist_ok=True)
    output = profile_dir / f"{label}.txt"
    argv = [_py_spy(), "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
            "--nonblocking", "--output", str(output)]  # fmt: skip
    log_path = output.with_suffix(".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if not output.exists():
        print(f"  py-spy wrote nothing: {log_path.read_text()[-500:]}", file=sys.stderr)


def _function(frame: str) -> str:
    """``func (aiohttp/web_protocol.py:446)`` → ``func (aiohttp/web_protocol.py)``."""
    head, sep, where = frame.rpartition(" (")
    if not sep:
        return frame
    return f"{head} ({where.rstrip(')').rsplit(':', 1)[0]})"


def _stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    """(frames outermost first, without line numbers; sample count) per line of raw output."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield [_function(f) for f in stack.split(";")], int(count)


def _package(frame: str) -> str:
    """``func (aiohttp/web_protocol.py:446)`` → ``aiohttp``."""
    where = frame.rpartition(" (")[2]
    where = where.rstrip(")")
    return where.split("/", 1)[0] if "/" in where else where


def summarize(name: str, paths: list[Path], top: int = 12) -> str:
    """The frames with the most samples over ``paths``: self (innermost) and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for path in paths:
        for frames, count in _stacks(path):
            total += count
            own[frames[-1]] += count
            packages[_package(frames[-1])] += count
            for frame in set(frames):
                inclusive[frame] += count
    if not total:
        return f"{name}: no samples"
    lines = [f"{name}: {total} samples from {len(paths)} file(s)"]
    lines += ["  self, by package:"] + [
        f"    {c / total:6.1%}  {p}" for p, c in packages.most_common(top)
    ]
    lines += ["  self:"] + [f"    {c / total:6.1%}  {f}" for f, c in own.most_common(top)]
    lines += ["  inclusive:"] + [
        f"    {c / total:6.1%}  {f}" for f, c in inclusive.most_common(top * 2)
    ]
    return "\n".join(lines)


def summarize_dir(profile_dir: Path, prefix: str) -> str:
    """One summary per phase (files ``<prefix>-<phase>-<n>.txt`` grouped by phase)."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(profile_dir.glob(f"{prefix}-*.txt")):
        if path.name.endswith(".summary.txt"):
            continue
        phase = path.stem.rsplit("-", 1)[0]
        groups.setdefault(phase, []).append(path)
    return "\n".join(summarize(phase, paths) for phase, paths in groups.items())
