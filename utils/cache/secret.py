"""The cache's signing secret: ``<root>/.secret``, 32 random bytes, mode 0600."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from utils.errors import StorageError
from utils.storage import replace_file

logger = logging.getLogger(__name__)

SECRET_NAME = ".secret"
_SECRET_SIZE = 32


def load_or_create_secret(root: Path, locked: Callable[[], AbstractContextManager[None]]) -> bytes:
    """The secret of the cache in ``root``, created when missing or damaged.

    ``locked`` holds the cache's lock, so two processes starting together agree on
    one secret. Raises ``StorageError`` when the secret can be neither read nor made.
    """
    path = root / SECRET_NAME
    secret = _read_secret(path)
    if secret is not None:
        return secret
    with locked():
        secret = _read_secret(path)
        if secret is None:
            if path.exists():
                logger.warning("Cache secret %s is corrupt; replacing it", path)
            secret = _create_secret(path)
    return secret


def _read_secret(path: Path) -> bytes | None:
    """The secret in ``path``, or None when missing or the wrong size."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unusable(path, exc.strerror or str(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _unusable(path, "not a regular file")
        _tighten_mode(fd, path, info)
        secret = os.read(fd, _SECRET_SIZE + 1)
    except OSError as exc:
        raise _unusable(path, exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    return secret if len(secret) == _SECRET_SIZE else None


def _tighten_mode(fd: int, path: Path, info: os.stat_result) -> None:
    if os.name != "posix":  # Windows has no group/other mode bits to check
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.fchmod(fd, 0o600)
        logger.warning("Cache secret %s had mode %o; changed to 600", path, mode)


def _create_secret(path: Path) -> bytes:
    """Write a new secret with mode 0600, published whole by ``replace_file``."""
    secret = secrets.token_bytes(_SECRET_SIZE)
    try:
        replace_file(path, secret, mode=0o600)
    except OSError as exc:
        raise StorageError(
            f"cannot create the cache secret {path}: {exc.strerror or exc}",
            hint=f"make {path.parent} writable for the user running the app",
        ) from exc
    return secret


def _unusable(path: Path, reason: str) -> StorageError:
    return StorageError(
        f"cannot read the cache secret {path}: {reason}",
        hint="remove it (the cache then starts over with a new secret) or give the app's "
        "user access to it",
    )
