"""File locks that serialise the writers of one data file across threads and processes.

A data file's lock lives out of sight, in a hidden folder beside it:
``<folder>/.locks/<file name>.lock``, so listing a data folder shows data only.
A lock file stays after its data file is deleted; a caller that deletes data files
removes ``lock_path_for(path)`` too, or one lock file per deleted file stays behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from utils.errors import StorageError
from utils.storage.errors import write_failed

logger = logging.getLogger(__name__)

#: Seconds a writer waits for another writer's lock before giving up.
LOCK_TIMEOUT_S = 10.0
#: Name of the hidden folder, beside the data files, that holds their lock files.
LOCKS_DIR_NAME = ".locks"
#: Seconds between tries while another writer holds a lock (filelock polls; its default, 50 ms,
#: would add that much latency to every contended write).
_LOCK_POLL_S = 0.005


def lock_path_for(path: Path) -> Path:
    """Where the lock file of the data file ``path`` lives."""
    return path.parent / LOCKS_DIR_NAME / f"{path.name}.lock"


def _acquire(lock: FileLock, subject: Path) -> None:
    """Take ``lock``; a holder that keeps it too long is a ``StorageError``, ``OSError`` passes."""
    try:
        lock.acquire()
    except Timeout as exc:
        raise StorageError(
            f"{subject} is locked by another writer (waited {lock.timeout:g} s)",
            hint="another app tab or CLI command is writing it; retry, and stop any hung process",
        ) from exc


@contextmanager
def holding_lock(lock_file: Path, subject: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock ``lock_file`` that guards ``subject`` (a file or a folder).

    Raises ``StorageError`` when another holder keeps it past ``timeout`` seconds, and
    when the lock file cannot be created (read-only or full folder; the message names it).
    """
    wait_s = LOCK_TIMEOUT_S if timeout is None else timeout
    lock = FileLock(lock_file, timeout=wait_s, poll_interval=_LOCK_POLL_S)
    try:
        _acquire(lock, subject)
    except OSError as exc:
        raise write_failed("write", subject, exc) from exc
    try:
        yield
    finally:
        lock.release()


@contextmanager
def writer_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the writer lock of the data file ``path``; see ``holding_lock`` for errors."""
    with holding_lock(lock_path_for(path), path, timeout):
        yield


@contextmanager
def reader_lock(path: Path) -> Iterator[bool]:
    """Hold the lock of ``path`` while reading it, when the folder lets us create it.

    Yields whether the lock is held. A read-only folder has no writers to wait for
    (none can write there either), so its files are read without the lock instead of
    failing. A lock held too long by a writer still raises ``StorageError``.
    """
    lock = FileLock(lock_path_for(path), timeout=LOCK_TIMEOUT_S, poll_interval=_LOCK_POLL_S)
    try:
        _acquire(lock, path)
        held = True
    except OSError as exc:
        logger.debug("reading %s without its lock: %s", path, exc)
        held = False
    try:
        yield held
    finally:
        if held:
            lock.release()
