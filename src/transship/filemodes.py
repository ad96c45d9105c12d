"""Owner-only files and directories.

The data directory and everything the service creates in it (the SQLite database, blobs,
upload staging, keys, TLS material) hold secrets or private images, so directories are
0700 and files 0600. They are created with those modes (never readable by others, even for
an instant), with explicit modes rather than a process umask, and existing ones found
looser, as older versions left them (0755/0644), are tightened at start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

log = logging.getLogger(__name__)


def tighten(path: Path, mode: int) -> None:
    """Remove every permission beyond `mode` from an existing `path` (nothing if it does
    not exist). A path this user cannot chmod (owned by another) is logged, not raised: the
    service still works, and the operator is told."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode == 0:
        return
    try:
        os.chmod(path, current & mode)
    except PermissionError as exc:
        log.warning("cannot restrict %s to mode %o (it is %o): %s", path, mode, current, exc)


def private_dir(path: Path) -> Path:
    """Create directory `path` with mode 0700 (missing parents get the default mode: they
    are not the service's), or tighten it to 0700 if it exists. Returns `path`. Raises
    OSError when it cannot be created."""
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        pass
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    # mkdir's mode passes through the umask; the chmod makes it exact either way.
    tighten(path, PRIVATE_DIR)
    return path


def private_subdir(path: Path) -> None:
    """Create `path` 0700 under an existing directory if missing (nothing if present): for
    the many small directories of the blob store, where a stat per call would cost."""
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return
    os.chmod(path, PRIVATE_DIR)


def open_private(path: Path, flags: int) -> int:
    """`os.open(path, flags | O_CREAT)` creating the file with mode 0600; returns the fd.
    A file that already existed keeps its mode (see tighten). Raises OSError."""
    return os.open(path, flags | os.O_CREAT, PRIVATE_FILE)


def private_file(path: Path) -> None:
    """Create an empty `path` with mode 0600 if it does not exist, and tighten an existing
    one to 0600 (its content untouched). Raises OSError when it cannot be created."""
    os.close(open_private(path, os.O_WRONLY))
    tighten(path, PRIVATE_FILE)
