"""Signed, size-bounded pickle cache on disk (the app's ``cache/`` folder).

Why signed: ``pickle.loads`` runs whatever code the bytes ask for, so this module
only unpickles files that carry a valid HMAC under a secret that this app created.
It is the only module in the project that calls ``pickle.loads``.

One file per entry, ``root/<namespace>/<key>.pkl``::

    magic b"CVLC" | format version (u8) | written at, ns (u64) | HMAC-SHA256 (32) | pickle

The HMAC covers the header, the entry id (``namespace/key``) and the payload, so a
changed byte, a changed timestamp or a file renamed to another key is rejected.
Rejected and truncated files are cache misses: the file is removed and a warning logged.

Other files under ``root``: ``.secret`` (32 random bytes, mode 0600), ``.lock``
(serialises eviction, clearing and stats updates between processes) and
``stats.json`` (hit/miss totals shared with other processes, e.g. the CLI).

Recency for least-recently-used eviction is the file's mtime, set on write and on
every hit. The time-to-live counts from the write (the signed header), not from the
last use, so a frequently read entry still expires.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import logging
import os
import pickle
import re
import secrets
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from utils.errors import BadInput, ConfigError, StorageError

logger = logging.getLogger(__name__)

MAGIC: Final = b"CVLC"
FORMAT_VERSION: Final = 1
DEFAULT_NAMESPACE: Final = "default"

_HEADER = struct.Struct(">4sBQ")  # magic, format version, written-at in ns
_DIGEST_SIZE = 32
_PAYLOAD_OFFSET = _HEADER.size + _DIGEST_SIZE
_SECRET_SIZE = 32
_SECRET_NAME = ".secret"
_LOCK_NAME = ".lock"
_STATS_NAME = "stats.json"
_ENTRY_SUFFIX = ".pkl"
_TEMP_SUFFIX = ".tmp"
_KEY_DOMAIN = b"chatvlmllm-cache-key-v1"
_LOCK_TIMEOUT_S = 10.0
# A temp file this old belongs to a writer that crashed; newer ones may be in flight.
_STALE_TEMP_NS = 3600 * 10**9
# Hits and misses alone do not write stats.json more often than this.
_STATS_FLUSH_INTERVAL_NS = 5 * 10**9
# Letters, digits, '-' and '_' only: no path separators, no dots (so no '..' and
# no clash with .secret, .lock or stats.json).
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


class Miss(enum.Enum):
    """Type of :data:`MISS`, for callers that must tell a cached ``None`` from a miss."""

    MISS = "MISS"


MISS: Final = Miss.MISS


# --------------------------------------------------------------------------- keys


def make_key(*parts: object) -> str:
    """Return a SHA-256 hex key computed from the *content* of ``parts``.

    bytes-like parts are hashed as-is, str as UTF-8; None, bool, int, float, list,
    tuple, dict (str keys) and pydantic models (``model_dump(mode="json")``) through a
    canonical JSON encoding with sorted keys. Lists and tuples encode alike. Anything
    else raises ``TypeError``: an object id or repr would give a key that changes
    between runs or hides the content.
    """
    digest = hashlib.sha256(_KEY_DOMAIN)
    for part in parts:
        tag, data = _encode_key_part(part)
        # Tag and length keep ("ab", "c") and ("a", "bc") apart.
        digest.update(tag + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _encode_key_part(part: object) -> tuple[bytes, bytes]:
    if isinstance(part, bytes | bytearray | memoryview):
        return b"b", bytes(part)
    if isinstance(part, str):
        return b"s", part.encode("utf-8")
    tree = _to_json_tree(part)
    text = json.dumps(tree, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b"j", text.encode("utf-8")


def _to_json_tree(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseModel):
        model_type = type(value)
        name = f"{model_type.__module__}.{model_type.__qualname__}"
        return {"__model__": name, "data": value.model_dump(mode="json")}
    if isinstance(value, list | tuple):
        return [_to_json_tree(item) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): _to_json_tree(item) for key, item in value.items()}
    raise TypeError(
        f"make_key cannot hash a {type(value).__name__}; pass bytes, str, numbers, "
        "None, lists, tuples, dicts with str keys or pydantic models"
    )


def _json_key(key: object) -> str:
    # JSON turns 1 into "1": refusing non-str keys keeps {1: x} and {"1": x} apart.
    if not isinstance(key, str):
        raise TypeError(f"make_key needs str dict keys, got {type(key).__name__}")
    return key


# --------------------------------------------------------------------------- stats


class CacheStats(BaseModel):
    """What the Models page and ``cli.py cache stats`` show about the cache.

    Counters are totals over all processes since the last ``clear()``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    max_bytes: int = Field(ge=0)
    hits: int = Field(ge=0)
    misses: int = Field(ge=0)
    evictions: int = Field(ge=0)
    rejected: int = Field(ge=0, description="entries dropped for a bad signature or corruption")


class _PersistedCounters(BaseModel):
    """Schema of ``stats.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    hits: int = Field(default=0, ge=0)
    misses: int = Field(default=0, ge=0)
    evictions: int = Field(default=0, ge=0)
    rejected: int = Field(default=0, ge=0)


@dataclass
class _Counters:
    """Counts of this process not yet added to ``stats.json``."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    rejected: int = 0

    def is_zero(self) -> bool:
        return not any(asdict(self).values())

    def add_to(self, totals: _PersistedCounters) -> _PersistedCounters:
        summed = {f.name: getattr(totals, f.name) + getattr(self, f.name) for f in fields(self)}
        return totals.model_copy(update=summed)


@dataclass(frozen=True)
class _EntryFile:
    path: Path
    size: int
    mtime_ns: int


class _RejectedEntry(Exception):
    """An entry file that must not be unpickled; ``str()`` says why."""


# --------------------------------------------------------------------------- cache


class DiskCache:
    """Pickle cache under ``root`` with signed entries, an LRU size cap and optional TTL.

    ``get`` returns ``default`` (None unless given) on a miss; pass ``default=MISS``
    to tell a cached ``None`` from a miss. Safe to share between threads and between
    processes that use the same ``root``.
    """

    def __init__(self, root: Path, max_mb: float = 512, ttl_seconds: float | None = None) -> None:
        if max_mb <= 0:
            raise ConfigError(
                f"cache size cap must be positive, got {max_mb} MB", hint="set max_mb > 0"
            )
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ConfigError(
                f"cache TTL must be positive, got {ttl_seconds} s",
                hint="set ttl_seconds > 0, or None for no expiry",
            )
        self.root = Path(root)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.ttl_seconds = ttl_seconds
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the cache folder {self.root}: {exc}",
                hint="check that the path is writable, or point the cache elsewhere",
            ) from exc
        self._file_lock = FileLock(str(self.root / _LOCK_NAME), timeout=_LOCK_TIMEOUT_S)
        self._stats_path = self.root / _STATS_NAME
        self._counter_lock = threading.Lock()
        self._pending = _Counters()
        self._last_flush_ns = _now_ns()
        self._secret = self._load_or_create_secret()

    # ---- public API

    def get(self, key: str, namespace: str = DEFAULT_NAMESPACE, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default`` on a miss."""
        path = self._entry_path(namespace, key)
        found, value = self._load_entry(path, _entry_id(namespace, key))
        self._count("hits" if found else "misses")
        self._flush_stats_if_due()
        return value if found else default

    def set(self, key: str, value: Any, namespace: str = DEFAULT_NAMESPACE) -> bool:
        """Store ``value``; return False when it is bigger than the whole cache (not stored).

        Raises ``BadInput`` for a value pickle cannot handle and ``StorageError`` when
        the file cannot be written.
        """
        path = self._entry_path(namespace, key)
        entry_id = _entry_id(namespace, key)
        written_ns = _now_ns()
        blob = self._build_entry(entry_id, _pickle(value), written_ns)
        if len(blob) > self.max_bytes:
            logger.debug("Cache entry %s not stored: %d bytes > cap", entry_id, len(blob))
            # A value stored earlier under this key would now be stale.
            _remove_quietly(path)
            return False
        try:
            _atomic_write(path, blob, mtime_ns=written_ns)
        except OSError as exc:
            raise StorageError(
                f"cannot write cache entry {entry_id}: {exc}",
                hint=f"check free disk space and permissions of {self.root}",
            ) from exc
        self._maintain()
        return True

    def delete(self, key: str, namespace: str = DEFAULT_NAMESPACE) -> bool:
        """Remove one entry; return whether there was one."""
        return _remove_quietly(self._entry_path(namespace, key))

    def clear(self) -> int:
        """Remove every entry and reset the counters; keep the secret. Return entries removed."""
        with self._locked():
            removed = sum(1 for entry in self._scan_entries() if _remove_quietly(entry.path))
            self._remove_empty_namespaces()
            with self._counter_lock:
                self._pending = _Counters()
            self._write_totals(_PersistedCounters())
        logger.info("Cache %s cleared: %d entries removed", self.root, removed)
        return removed

    def stats(self) -> CacheStats:
        """Entries and size on disk now, and counters summed over all processes."""
        self.flush_stats()
        entries = self._scan_entries()
        totals = self._pending_snapshot().add_to(self._read_totals() or _PersistedCounters())
        return CacheStats(
            entries=len(entries),
            size_bytes=sum(entry.size for entry in entries),
            max_bytes=self.max_bytes,
            hits=totals.hits,
            misses=totals.misses,
            evictions=totals.evictions,
            rejected=totals.rejected,
        )

    def flush_stats(self) -> None:
        """Add this process's counts to ``stats.json`` (best effort: failures are logged)."""
        try:
            with self._locked():
                self._flush_stats_locked()
        except StorageError as exc:
            logger.warning("Cache stats not saved: %s", exc)

    # ---- reading entries

    def _load_entry(self, path: Path, entry_id: str) -> tuple[bool, Any]:
        blob = self._read_entry_bytes(path, entry_id)
        if blob is None:
            return False, None
        try:
            written_ns, payload = _verify_entry(blob, entry_id, self._secret)
        except _RejectedEntry as exc:
            self._reject(path, entry_id, str(exc))
            return False, None
        if self._is_expired(written_ns):
            _remove_quietly(path)
            logger.debug("Cache entry %s expired; removed", entry_id)
            return False, None
        try:
            # Safe: the HMAC above proves this app wrote exactly these bytes.
            value = pickle.loads(payload)  # noqa: S301
        except Exception as exc:  # a class that moved or changed since it was stored
            self._reject(path, entry_id, f"unpickling failed ({type(exc).__name__})")
            return False, None
        _touch(path, _now_ns())
        return True, value

    def _read_entry_bytes(self, path: Path, entry_id: str) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("Cache entry %s unreadable (%s); treated as a miss", entry_id, exc)
            return None

    def _reject(self, path: Path, entry_id: str, reason: str) -> None:
        _remove_quietly(path)
        self._count("rejected")
        logger.warning("Cache entry %s rejected (%s); file removed", entry_id, reason)

    def _is_expired(self, written_ns: int) -> bool:
        if self.ttl_seconds is None:
            return False
        return _now_ns() - written_ns > self.ttl_seconds * 1e9

    # ---- writing entries

    def _build_entry(self, entry_id: str, payload: bytes, written_ns: int) -> bytes:
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, written_ns)
        return header + _sign(self._secret, header, entry_id, payload) + payload

    def _maintain(self) -> None:
        """After a write: evict down to the cap and save counters, under the file lock."""
        try:
            with self._locked():
                self._evict_locked()
                self._flush_stats_locked()
        except StorageError as exc:
            logger.warning("Cache eviction skipped: %s", exc)

    def _evict_locked(self) -> None:
        entries = self._scan_entries()
        total = sum(entry.size for entry in entries)
        if total <= self.max_bytes:
            return
        for entry in sorted(entries, key=lambda item: (item.mtime_ns, item.path.name)):
            if total <= self.max_bytes:
                break
            if _remove_quietly(entry.path):
                self._count("evictions")
                logger.debug("Cache entry %s evicted (least recently used)", entry.path.name)
            total -= entry.size

    # ---- files on disk

    def _entry_path(self, namespace: str, key: str) -> Path:
        _check_name(namespace, "namespace")
        _check_name(key, "key")
        return self.root / namespace / f"{key}{_ENTRY_SUFFIX}"

    def _namespace_dirs(self) -> list[Path]:
        try:
            with os.scandir(self.root) as found:
                return [
                    Path(item.path)
                    for item in found
                    if item.is_dir(follow_symlinks=False) and _NAME_PATTERN.fullmatch(item.name)
                ]
        except FileNotFoundError:
            return []

    def _scan_entries(self) -> list[_EntryFile]:
        entries: list[_EntryFile] = []
        for folder in self._namespace_dirs():
            entries.extend(_scan_namespace(folder))
        return entries

    def _remove_empty_namespaces(self) -> None:
        for folder in self._namespace_dirs():
            with contextlib.suppress(OSError):  # not empty: a writer is busy there
                folder.rmdir()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with self._file_lock:
                yield
        except Timeout as exc:
            raise StorageError(
                f"cache lock {self._file_lock.lock_file} busy for {_LOCK_TIMEOUT_S:.0f} s",
                hint="another process holds the cache; retry, or delete the .lock file "
                "if no app or CLI is running",
            ) from exc

    # ---- secret

    def _load_or_create_secret(self) -> bytes:
        path = self.root / _SECRET_NAME
        secret = _read_secret(path)
        if secret is not None:
            return secret
        # Under the lock, so two processes starting together agree on one secret.
        with self._locked():
            secret = _read_secret(path)
            if secret is None:
                if path.exists():
                    logger.warning("Cache secret %s is corrupt; replacing it", path)
                secret = _create_secret(path)
        return secret

    # ---- counters

    def _count(self, name: str) -> None:
        with self._counter_lock:
            setattr(self._pending, name, getattr(self._pending, name) + 1)

    def _pending_snapshot(self) -> _Counters:
        with self._counter_lock:
            return _Counters(**asdict(self._pending))

    def _take_pending(self) -> _Counters:
        with self._counter_lock:
            taken, self._pending = self._pending, _Counters()
            self._last_flush_ns = _now_ns()
        return taken

    def _restore_pending(self, taken: _Counters) -> None:
        with self._counter_lock:
            for item in fields(taken):
                name = item.name
                setattr(self._pending, name, getattr(self._pending, name) + getattr(taken, name))

    def _flush_stats_if_due(self) -> None:
        if _now_ns() - self._last_flush_ns >= _STATS_FLUSH_INTERVAL_NS:
            self.flush_stats()

    def _flush_stats_locked(self) -> None:
        taken = self._take_pending()
        totals = self._read_totals()
        if taken.is_zero() and totals is not None:
            return
        try:
            self._write_totals(taken.add_to(totals or _PersistedCounters()))
        except StorageError as exc:
            self._restore_pending(taken)
            logger.warning("Cache stats not saved: %s", exc)

    def _read_totals(self) -> _PersistedCounters | None:
        """Totals in ``stats.json``; None when missing or corrupt (the next flush resets it)."""
        try:
            text = self._stats_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning(
                "Cache stats %s unreadable (%s); counting from zero", self._stats_path, exc
            )
            return None
        try:
            return _PersistedCounters.model_validate_json(text)
        except ValidationError:
            logger.warning("Cache stats %s corrupt; resetting the counters", self._stats_path)
            return None

    def _write_totals(self, totals: _PersistedCounters) -> None:
        try:
            _atomic_write(self._stats_path, totals.model_dump_json(indent=2).encode("utf-8"))
        except OSError as exc:
            raise StorageError(
                f"cannot write {self._stats_path}: {exc}",
                hint=f"check free disk space and permissions of {self.root}",
            ) from exc


# --------------------------------------------------------------------------- helpers


def _now_ns() -> int:
    """Wall clock for recency and TTL (one place, so tests can move time)."""
    return time.time_ns()


def _entry_id(namespace: str, key: str) -> str:
    return f"{namespace}/{key}"


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise BadInput(
            f"invalid cache {what} {name!r}",
            hint="use 1-128 letters, digits, '-' or '_' (make_key() returns a valid key)",
        )


def _pickle(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise BadInput(
            f"cannot cache a value of type {type(value).__name__}: {exc}",
            hint="cache plain data (dicts, lists, pydantic models, arrays), not open "
            "files, locks or local functions",
        ) from exc


def _sign(secret: bytes, header: bytes, entry_id: str, payload: bytes | memoryview) -> bytes:
    mac = hmac.new(secret, header, hashlib.sha256)
    # The header has a fixed size and ids hold no NUL, so the parts cannot run together.
    mac.update(entry_id.encode("utf-8") + b"\0")
    mac.update(payload)
    return mac.digest()


def _verify_entry(blob: bytes, entry_id: str, secret: bytes) -> tuple[int, memoryview]:
    """Return (written-at ns, payload) of a genuine entry; raise ``_RejectedEntry`` otherwise."""
    if len(blob) < _PAYLOAD_OFFSET:
        raise _RejectedEntry(f"truncated: {len(blob)} bytes")
    magic, version, written_ns = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise _RejectedEntry("not a cache entry: wrong magic bytes")
    if version != FORMAT_VERSION:
        raise _RejectedEntry(f"format version {version}, this app reads {FORMAT_VERSION}")
    stored_mac = blob[_HEADER.size : _PAYLOAD_OFFSET]
    payload = memoryview(blob)[_PAYLOAD_OFFSET:]
    expected_mac = _sign(secret, blob[: _HEADER.size], entry_id, payload)
    if not hmac.compare_digest(stored_mac, expected_mac):
        raise _RejectedEntry("bad signature")
    return written_ns, payload


def _scan_namespace(folder: Path) -> list[_EntryFile]:
    entries: list[_EntryFile] = []
    now = _now_ns()
    try:
        with os.scandir(folder) as found:
            for item in found:
                if item.name.startswith("."):
                    _remove_if_stale_temp(item, now)
                elif item.name.endswith(_ENTRY_SUFFIX) and item.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                        info = item.stat(follow_symlinks=False)
                        entries.append(_EntryFile(Path(item.path), info.st_size, info.st_mtime_ns))
    except FileNotFoundError:
        pass
    return entries


def _remove_if_stale_temp(item: os.DirEntry[str], now_ns: int) -> None:
    """Remove a temp file left by a writer that crashed before ``os.replace``."""
    if not item.name.endswith(_TEMP_SUFFIX):
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


def _atomic_write(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mtime_ns is not None:
            os.utime(temp_name, ns=(mtime_ns, mtime_ns))
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); best effort, a lost rename only costs a miss."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_secret(path: Path) -> bytes | None:
    """The secret in ``path``, or None when missing or the wrong size."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(
            f"cannot read the cache secret {path}: {exc}",
            hint="give the app's user access to it, or delete the cache folder",
        ) from exc
    try:
        _tighten_secret_mode(fd, path)
        secret = os.read(fd, _SECRET_SIZE + 1)
    finally:
        os.close(fd)
    return secret if len(secret) == _SECRET_SIZE else None


def _tighten_secret_mode(fd: int, path: Path) -> None:
    if os.name != "posix":  # Windows has no group/other mode bits to check
        return
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        os.fchmod(fd, 0o600)
        logger.warning("Cache secret %s had mode %o; changed to 600", path, mode)


def _create_secret(path: Path) -> bytes:
    """Write a new secret with mode 0600, published whole by ``os.replace``."""
    secret = secrets.token_bytes(_SECRET_SIZE)
    temp_path = path.with_name(f"{path.name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}")
    try:
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if os.name == "posix":
                os.fchmod(fd, 0o600)  # the umask can only narrow it; make it exact
            os.write(fd, secret)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_path, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise StorageError(
            f"cannot create the cache secret {path}: {exc}",
            hint="check that the cache folder is writable",
        ) from exc
    _fsync_dir(path.parent)
    return secret
