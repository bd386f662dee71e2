"""The storage errors, and how an operating-system failure becomes one that says what to do."""

from __future__ import annotations

import errno
from pathlib import Path

from utils.errors import StorageError

#: errno values that mean "this folder cannot be written", as opposed to a full disk.
_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


class MissingDataFile(StorageError, FileNotFoundError):
    """The data file does not exist (also catchable as ``FileNotFoundError``)."""


class CorruptDataFile(StorageError):
    """The data file failed to parse or validate (and was moved aside when the folder allows)."""


def is_not_writable(exc: OSError) -> bool:
    """Whether ``exc`` says the folder is read-only or not ours to write (not: disk full)."""
    return exc.errno in _NOT_WRITABLE


def write_failed(action: str, path: Path, exc: OSError) -> StorageError:
    """A ``StorageError`` for a failed ``action`` ("write", "append to") on ``path``.

    A read-only folder names the folder and says how to get out; anything else (a
    full disk, an I/O error) keeps the system's wording and points at disk space.
    """
    reason = exc.strerror or str(exc)
    if is_not_writable(exc):
        return StorageError(
            f"cannot {action} {path}: the folder {path.parent} is read-only here ({reason})",
            hint=f"make {path.parent} writable for the user running the app, or point the "
            "profile's folder setting (app.data_dir, app.cache_dir) at a writable one",
        )
    return StorageError(
        f"cannot {action} {path}: {reason}",
        hint="check free disk space and the folder's permissions",
    )
