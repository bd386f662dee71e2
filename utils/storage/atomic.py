"""Whole-file replacement that survives a crash: the one atomic write and folder fsync.

A file is replaced whole: the new content goes to a temp file in the same folder,
is flushed and fsynced, then ``os.replace``-d over the old one, and the folder is
fsynced so the rename itself is durable. A reader sees the old file or the new one,
never half of one. Temp files are named ``.<file name>.<32 hex>.tmp``.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from contextlib import suppress
from pathlib import Path

from utils.errors import StorageError
from utils.storage.errors import write_failed
from utils.storage.locks import writer_lock

logger = logging.getLogger(__name__)

#: Permissions for new data files, before the process umask.
FILE_MODE = 0o644

_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{32}\.tmp")


def temp_target(name: str) -> str | None:
    """The file name that the temp file ``name`` was written for; None if it is no temp of ours."""
    match = _TEMP_NAME.fullmatch(name)
    return match["target"] if match else None


def write_all(fd: int, data: bytes) -> None:
    """Write every byte: ``os.write`` may write less than asked (signals, some filesystems)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable, not just its contents."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(
    path: Path, data: bytes, *, mode: int = FILE_MODE, mtime_ns: int | None = None
) -> None:
    """Write ``data`` to a temp file beside ``path``, make it durable, swap it in.

    Takes no lock: concurrent writers of one path each publish a whole file and the
    last one wins. ``mode`` is the new file's permissions before the umask;
    ``mtime_ns`` sets its modification time. Raises ``OSError``; no temp file is
    left behind unless the process dies.
    """
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if mtime_ns is not None:
            os.utime(temp, ns=(mtime_ns, mtime_ns))
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def ensure_parent(path: Path) -> None:
    """Create the folder of ``path``; a ``StorageError`` names it when that is not possible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the folder {path.parent}: {exc.strerror or exc}",
            hint="check that the data folder exists and is writable by the user running the app",
        ) from exc


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, lock_timeout: float | None = None
) -> None:
    """Replace the file at ``path`` with ``data`` atomically, under the file's writer lock."""
    path = Path(path)
    ensure_parent(path)
    with writer_lock(path, lock_timeout):
        try:
            _remove_stale_temps(path)
            replace_file(path, data)
        except OSError as exc:
            raise write_failed("write", path, exc) from exc


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files a killed writer of ``path`` left behind.

    Called with the lock held: every locked writer holds it for its temp file's whole
    life, so any temp file of this name that exists now belongs to a writer that died.
    """
    for entry in os.scandir(path.parent):
        if temp_target(entry.name) == path.name:
            logger.info("removing %s, left by an interrupted write", entry.path)
            with suppress(FileNotFoundError):
                os.unlink(entry.path)
