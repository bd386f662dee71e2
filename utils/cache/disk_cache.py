"""``DiskCache``: signed pickle entries on disk with an LRU size cap and an optional TTL.

The cache is best effort: it must never break the work. A folder that cannot be
written (read-only, full) makes writes no-ops, logged once per cache object; a
secret that cannot be read or made disables the cache with a logged warning, and
every read is then a miss. Only ``clear()``, which a user asks for, raises.

Files under ``root``: one ``<key>.pkl`` per entry (format in ``entries``),
``.secret`` (``secret``), ``stats.json`` (``stats``) and ``.lock``, which serialises
eviction, clearing and stats updates between processes. ``root`` may be a shared
folder: clearing and eviction touch only the cache's own entries (an entry's name
and magic bytes) and its own temp files.

Recency for least-recently-used eviction is the file's mtime, set on write and on
every hit. The time-to-live counts from the write (the signed header), not from the
last use, so a frequently read entry still expires.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from utils.cache.entries import (
    RejectedEntry,
    check_key,
    is_entry_name,
    seal,
    starts_like_an_entry,
    unpickle,
    verify,
)
from utils.cache.secret import SECRET_NAME, load_or_create_secret
from utils.cache.stats import STATS_NAME, CacheStats, StatsBook
from utils.errors import ConfigError, StorageError
from utils.storage import holding_lock, replace_file, temp_target

logger = logging.getLogger(__name__)

_LOCK_NAME = ".lock"
_LOCK_TIMEOUT_S = 10.0
#: Entries hold users' document text: readable by the app's user only.
_FILE_MODE = 0o600
# A temp file this old belongs to a writer that crashed; newer ones may be in flight.
_STALE_TEMP_NS = 3600 * 10**9


class Miss(enum.Enum):
    """Type of :data:`MISS`, for callers that must tell a cached ``None`` from a miss."""

    MISS = "MISS"


MISS: Final = Miss.MISS


@dataclass(frozen=True)
class _EntryFile:
    path: Path
    size: int
    mtime_ns: int


class DiskCache:
    """Pickle cache under ``root`` with signed entries, an LRU size cap and optional TTL.

    ``get`` returns ``default`` (None unless given) on a miss; pass ``default=MISS``
    to tell a cached ``None`` from a miss. Safe to share between threads and between
    processes that use the same ``root``.
    """

    def __init__(self, root: Path, max_mb: float = 512, ttl_seconds: float | None = None) -> None:
        _check_limits(max_mb, ttl_seconds)
        self.root = Path(root)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.ttl_seconds = ttl_seconds
        self._stats = StatsBook(self.root / STATS_NAME)
        self._warn_lock = threading.Lock()
        self._write_failed = False
        self._secret = self._open_secret()

    # ---- public API

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default`` on a miss."""
        check_key(key)
        found, value = self._load(key)
        self._stats.count("hits" if found else "misses")
        if self._stats.flush_is_due():
            self.flush_stats()
        return value if found else default

    def set(self, key: str, value: Any) -> bool:
        """Store ``value`` under ``key``; return whether it was stored.

        Not stored: a value bigger than the whole cache, a disabled cache, a write that
        failed (logged once per cache; the work goes on). Raises ``BadInput`` for an
        invalid key or a value pickle cannot handle.
        """
        check_key(key)
        if self._secret is None:
            return False
        written_ns = _now_ns()
        blob = seal(self._secret, key, value, written_ns)
        path = self._entry_path(key)
        if len(blob) > self.max_bytes:
            logger.debug("Cache entry %s not stored: %d bytes > cap", key, len(blob))
            # A value stored earlier under this key would now be stale.
            _remove_quietly(path)
            return False
        try:
            replace_file(path, blob, mode=_FILE_MODE, mtime_ns=written_ns)
        except OSError as exc:
            self._warn_write_failure(f"entry {key} not stored", exc)
            return False
        self._maintain()
        return True

    def delete(self, key: str) -> bool:
        """Remove one entry; return whether there was one."""
        check_key(key)
        return _remove_quietly(self._entry_path(key))

    def clear(self) -> int:
        """Remove every entry and reset the counters; keep the secret. Return entries removed.

        Unlike the rest of the cache this raises ``StorageError`` when the folder cannot
        be changed: a user asked for it and must hear that it did not happen.
        """
        with self._locked():
            removed = sum(1 for entry in self._scan_entries() if _remove_quietly(entry.path))
            try:
                self._stats.reset_locked()
            except OSError as exc:
                raise StorageError(
                    f"cannot reset the cache counters in {self._stats.path}: {exc}",
                    hint=f"make {self.root} writable for the user running the app",
                ) from exc
        logger.info("Cache %s cleared: %d entries removed", self.root, removed)
        return removed

    def stats(self) -> CacheStats:
        """Entries and size on disk now, and counters summed over all processes."""
        self.flush_stats()
        entries = self._scan_entries()
        return CacheStats(
            entries=len(entries),
            size_bytes=sum(entry.size for entry in entries),
            max_bytes=self.max_bytes,
            **asdict(self._stats.totals()),
        )

    def flush_stats(self) -> None:
        """Add this process's counts to ``stats.json`` (best effort: a failure is logged)."""
        try:
            with self._locked():
                self._stats.flush_locked()
        except (StorageError, OSError) as exc:
            self._warn_write_failure("counters not saved", exc)

    # ---- reading entries

    def _load(self, key: str) -> tuple[bool, Any]:
        if self._secret is None:
            return False, None
        path = self._entry_path(key)
        blob = _read_entry_bytes(path, key)
        if blob is None:
            return False, None
        try:
            written_ns, payload = verify(blob, key, self._secret)
            if self._is_expired(written_ns):
                _remove_quietly(path)
                logger.debug("Cache entry %s expired; removed", key)
                return False, None
            value = unpickle(payload)
        except RejectedEntry as exc:
            _remove_quietly(path)
            self._stats.count("rejected")
            logger.warning("Cache entry %s rejected (%s); file removed", key, exc)
            return False, None
        _touch(path, _now_ns())
        return True, value

    def _is_expired(self, written_ns: int) -> bool:
        if self.ttl_seconds is None:
            return False
        return _now_ns() - written_ns > self.ttl_seconds * 1e9

    # ---- keeping the size under the cap

    def _maintain(self) -> None:
        """After a write: evict down to the cap and save counters, under the file lock."""
        try:
            with self._locked():
                self._evict_locked()
                self._stats.flush_locked()
        except (StorageError, OSError) as exc:
            self._warn_write_failure("eviction and counters skipped", exc)

    def _evict_locked(self) -> None:
        # Names and sizes first (cheap, once per write); reading each file's magic bytes
        # waits until something is to be evicted.
        entries = self._scan_entries(check_owner=False)
        if sum(entry.size for entry in entries) <= self.max_bytes:
            return
        entries = [entry for entry in entries if starts_like_an_entry(entry.path)]
        total = sum(entry.size for entry in entries)
        for entry in sorted(entries, key=lambda item: (item.mtime_ns, item.path.name)):
            if total <= self.max_bytes:
                break
            if _remove_quietly(entry.path):
                self._stats.count("evictions")
                logger.debug("Cache entry %s evicted (least recently used)", entry.path.name)
            total -= entry.size

    # ---- files on disk

    def _entry_path(self, key: str) -> Path:
        return self.root / f"{key}.pkl"

    def _scan_entries(self, *, check_owner: bool = True) -> list[_EntryFile]:
        """The entries in ``root``; temp files of crashed writers are removed.

        ``check_owner`` keeps only files that begin like an entry: in a shared folder,
        another program's ``<name>.pkl`` is never counted, evicted or cleared.
        """
        entries: list[_EntryFile] = []
        now = _now_ns()
        try:
            with os.scandir(self.root) as found:
                for item in found:
                    if item.name.startswith("."):
                        _remove_if_stale_temp(item, now)
                    elif is_entry_name(item.name):
                        entries.extend(_entry_file(item, check_owner))
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("Cache folder %s unreadable: %s", self.root, exc)
        return entries

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_file = self.root / _LOCK_NAME
        with holding_lock(lock_file, lock_file, _LOCK_TIMEOUT_S):
            yield

    def _open_secret(self) -> bytes | None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return load_or_create_secret(self.root, self._locked)
        except (StorageError, OSError) as exc:
            logger.warning("Cache %s disabled, nothing is cached: %s", self.root, exc)
            return None

    def _warn_write_failure(self, what: str, exc: Exception) -> None:
        with self._warn_lock:
            first, self._write_failed = not self._write_failed, True
        if first:
            logger.warning(
                "Cache %s cannot be written: %s (%s); the work goes on uncached "
                "(further cache write failures are logged at debug level)",
                self.root,
                what,
                exc,
            )
        else:
            logger.debug("Cache %s: %s (%s)", self.root, what, exc)


class CacheLimits(Protocol):
    """The profile's cache settings (``models.config.CacheSettings``) that ``open_cache`` reads."""

    @property
    def max_mb(self) -> float: ...

    @property
    def ttl_hours(self) -> float | None: ...


def open_cache(cache_dir: Path, limits: CacheLimits) -> DiskCache:
    """The cache in ``cache_dir`` with the profile's size cap and time-to-live."""
    ttl = limits.ttl_hours * 3600 if limits.ttl_hours else None
    return DiskCache(cache_dir, max_mb=limits.max_mb, ttl_seconds=ttl)


# --------------------------------------------------------------------------- helpers


def _now_ns() -> int:
    """Wall clock for recency and TTL (one place, so tests can move time)."""
    return time.time_ns()


def _check_limits(max_mb: float, ttl_seconds: float | None) -> None:
    if max_mb <= 0:
        raise ConfigError(
            f"cache size cap must be positive, got {max_mb} MB", hint="set max_mb > 0"
        )
    if ttl_seconds is not None and ttl_seconds <= 0:
        raise ConfigError(
            f"cache TTL must be positive, got {ttl_seconds} s",
            hint="set ttl_seconds > 0, or None for no expiry",
        )


def _read_entry_bytes(path: Path, key: str) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("Cache entry %s unreadable (%s); treated as a miss", key, exc)
        return None


def _entry_file(item: os.DirEntry[str], check_owner: bool) -> list[_EntryFile]:
    """``item`` as an entry, or nothing when it is not a regular file (or not the cache's)."""
    try:
        if not item.is_file(follow_symlinks=False):
            return []
        info = item.stat(follow_symlinks=False)
    except FileNotFoundError:  # removed meanwhile
        return []
    path = Path(item.path)
    if check_owner and not starts_like_an_entry(path):
        return []
    return [_EntryFile(path, info.st_size, info.st_mtime_ns)]


def _remove_if_stale_temp(item: os.DirEntry[str], now_ns: int) -> None:
    """Remove a temp file of this cache left by a writer that crashed before ``os.replace``."""
    target = temp_target(item.name)
    if target is None or not (is_entry_name(target) or target in (STATS_NAME, SECRET_NAME)):
        return
    with contextlib.suppress(OSError):
        if now_ns - item.stat(follow_symlinks=False).st_mtime_ns > _STALE_TEMP_NS:
            os.unlink(item.path)


def _remove_quietly(path: Path) -> bool:
    """Delete ``path``; return True if this call removed it."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        logger.warning("Cannot remove cache file %s: %s", path, exc)
        return False
    return True


def _touch(path: Path, now_ns: int) -> None:
    # The entry may have been evicted by another process since it was read.
    with contextlib.suppress(OSError):
        os.utime(path, ns=(now_ns, now_ns))
