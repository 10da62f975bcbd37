"""One writer per recording: the lock file, and replacing files atomically."""

from __future__ import annotations

import os
import stat
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no writer lock
    fcntl = None


from .format import _LOCK
from .model import RecordingError


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _flock_or_refuse(fd: int, root: Path) -> None:
    """Hold an exclusive OS lock on ``fd`` or raise naming the process that holds it."""
    if fcntl is None:  # no OS lock (Windows): one writer per recording is not enforced
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise RecordingError(
            f"{root}: is being written by another writer (process {holder}); "
            "one writer per recording"
        ) from None


def _lock(root: Path) -> int:
    """Create and take the writer lock of a directory this writer has just made
    (``root/lock``, an OS lock held for the writer's life and released by the OS when the
    process dies, even by SIGKILL). The file is new (``O_EXCL``): an existing file, a link
    above all, is never opened for writing."""
    path = root / _LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    except OSError as exc:
        raise RecordingError(
            f"{path}: cannot create the writer lock ({exc.strerror or exc})"
        ) from None
    _flock_or_refuse(fd, root)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def hold_existing(root: Path) -> int | None:
    """Take the writer lock of an existing recording without writing to it (for a writer
    that will replace or rewrite it: held until the new one is in place, so no other writer
    enters it meanwhile). None where it has no lock file (written by an older version).

    The lock is opened read-only, never followed through a symbolic link, and refused if
    it is not a regular file with one link: a hard link to a file outside the recording is
    never locked, truncated or written."""
    path = root / _LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordingError(
            f"{path}: cannot open the writer lock ({exc.strerror or exc}); "
            "is it a link? A recording's lock is a plain file"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise RecordingError(
            f"{path}: the writer lock is not a plain file of its own "
            f"({'a hard link' if stat.S_ISREG(st.st_mode) else 'not a regular file'}); "
            "refusing to touch this recording"
        )
    _flock_or_refuse(fd, root)
    return fd
