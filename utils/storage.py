"""Crash-safe file storage: atomic JSON files, durable JSONL logs, versioned records.

Rules this module keeps (see DESIGN.md, "Storage rules"):

- A JSON file is replaced whole: the new content goes to a temp file in the same
  folder, is flushed and fsynced, then ``os.replace``-d over the old one and the
  folder is fsynced. A reader sees the old file or the new one, never half of one.
- A JSONL record is one line, appended and fsynced before ``append_jsonl`` returns,
  so an acknowledged record survives a crash. A crash mid-append can leave a torn
  last line; the next append cuts it off.
- Writers take a ``filelock`` lock on ``<file>.lock`` so two browser tabs or the CLI
  beside the app never interleave.
- Every record carries ``schema_version``. Reading upgrades old records through
  registered migrations; a record from a newer app version is invalid, not guessed at.
- A JSON file that fails to parse or validate is moved to a ``.corrupt/`` folder with
  a logged warning; a bad JSONL line is skipped and counted. Logs name files, lines
  and reasons, never file contents (they may hold user documents).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from utils.errors import StorageError

logger = logging.getLogger(__name__)

#: Seconds a writer waits for another writer's lock before giving up.
LOCK_TIMEOUT_S = 10.0
#: Seconds between tries while another writer holds a lock (filelock polls; its default, 50 ms,
#: would add that much latency to every contended write).
_LOCK_POLL_S = 0.005
#: Name of the folder, next to a data file, that corrupt files are moved into.
CORRUPT_DIR_NAME = ".corrupt"
#: Skipped JSONL lines logged one by one; beyond this only a total is logged.
_MAX_LOGGED_SKIPS = 20
#: Bytes read per step when searching backwards for the last newline.
_TAIL_CHUNK = 64 * 1024
#: Permissions for new data files, before the process umask.
_FILE_MODE = 0o644


class VersionedRecord(BaseModel):
    """Base class of everything stored on disk.

    Subclasses set ``SCHEMA_VERSION`` to their current layout and register a
    migration for each older version they can still read. Built in code, a record
    gets the current version; read from disk, it must say which version it is.
    """

    model_config = ConfigDict(extra="forbid")

    SCHEMA_VERSION: ClassVar[int] = 1

    schema_version: int

    @model_validator(mode="before")
    @classmethod
    def _fill_current_version(cls, data: Any) -> Any:
        # Lets code write `Record(field=...)` without repeating the version.
        if isinstance(data, dict) and "schema_version" not in data:
            return {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @field_validator("schema_version")
    @classmethod
    def _require_current_version(cls, version: int) -> int:
        # An old record validated without its migrations could be misread silently.
        if version != cls.SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version} is not the current version {cls.SCHEMA_VERSION}; "
                "read stored records through utils.storage so migrations apply"
            )
        return version


R = TypeVar("R", bound=VersionedRecord)
Migration = Callable[[dict[str, Any]], dict[str, Any]]

_MIGRATIONS: dict[tuple[type[VersionedRecord], int], Migration] = {}


class MissingDataFile(StorageError, FileNotFoundError):
    """The data file does not exist (also catchable as ``FileNotFoundError``)."""


class CorruptDataFile(StorageError):
    """The data file failed to parse or validate and was moved aside."""


@dataclass(frozen=True, slots=True)
class JsonlRead(Generic[R]):
    """What ``read_jsonl`` found: the valid records and how many lines it skipped."""

    records: list[R]
    skipped: int


class _InvalidRecord(Exception):
    """Internal: a record that cannot be read; the message says why, without its content."""


# --------------------------------------------------------------------------- migrations


def register_migration(
    model: type[VersionedRecord], from_version: int
) -> Callable[[Migration], Migration]:
    """Register a function that upgrades a raw ``model`` record from ``from_version`` to the next.

    The function gets the record as a dict and returns the upgraded dict; it need not
    touch ``schema_version``, which is set for it.
    """
    if not 1 <= from_version < model.SCHEMA_VERSION:
        raise ValueError(
            f"{model.__name__} is at schema_version {model.SCHEMA_VERSION}; "
            f"a migration from {from_version} cannot lead to it"
        )

    def register(migration: Migration) -> Migration:
        key = (model, from_version)
        if key in _MIGRATIONS:
            raise ValueError(f"{model.__name__} already has a migration from {from_version}")
        _MIGRATIONS[key] = migration
        return migration

    return register


def _upgrade_record(model: type[VersionedRecord], raw: Any) -> dict[str, Any]:
    """Bring a raw stored record up to ``model.SCHEMA_VERSION``, or raise ``_InvalidRecord``."""
    if not isinstance(raw, dict):
        raise _InvalidRecord(f"expected a JSON object, found {type(raw).__name__}")
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _InvalidRecord("missing or invalid schema_version")
    if version > model.SCHEMA_VERSION:
        raise _InvalidRecord(
            f"schema_version {version} is newer than this app knows ({model.SCHEMA_VERSION})"
        )
    record = dict(raw)
    while version < model.SCHEMA_VERSION:
        migration = _MIGRATIONS.get((model, version))
        if migration is None:
            raise _InvalidRecord(f"no migration for {model.__name__} from schema_version {version}")
        try:
            record = migration(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise _InvalidRecord(
                f"migration from schema_version {version} failed ({type(exc).__name__})"
            ) from exc
        if not isinstance(record, dict):
            raise _InvalidRecord(f"migration from schema_version {version} returned no object")
        version += 1
        record["schema_version"] = version
    return record


# --------------------------------------------------------------------------- encoding


def _to_jsonable(obj: BaseModel | dict[str, Any] | list[Any]) -> Any:
    """Turn what callers store into plain JSON data, stamping records with their current version."""
    if isinstance(obj, VersionedRecord):
        data = obj.model_dump(mode="json")
        data["schema_version"] = type(obj).SCHEMA_VERSION
        return data
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, dict | list):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__}; pass a pydantic model, dict or list")


def _encode(obj: BaseModel | dict[str, Any] | list[Any], path: Path, *, compact: bool) -> bytes:
    """Serialise before any file is touched, so a bad value never leaves a partial write."""
    try:
        if compact:
            text = json.dumps(
                _to_jsonable(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            )
        else:
            text = json.dumps(_to_jsonable(obj), ensure_ascii=False, allow_nan=False, indent=2)
    except (TypeError, ValueError) as exc:
        raise StorageError(
            f"cannot write {path}: the data is not JSON ({exc})",
            hint="store only str, int, float (not NaN), bool, None, lists and dicts",
        ) from exc
    return (text + "\n").encode("utf-8")


def _decode_record(raw_json: bytes, model: type[R]) -> R:
    """Parse, upgrade and validate one stored record."""
    try:
        raw = json.loads(raw_json)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _InvalidRecord(f"not valid JSON ({_first_line(str(exc))})") from exc
    record = _upgrade_record(model, raw)
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        raise _InvalidRecord(_describe_validation_error(exc)) from exc


def _describe_validation_error(exc: ValidationError) -> str:
    # str(exc) would quote the offending input; keep field paths and messages only.
    parts = [
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors()[:3]
    ]
    more = exc.error_count() - len(parts)
    return (
        "does not match the schema (" + "; ".join(parts) + (f"; {more} more" if more else "") + ")"
    )


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


# --------------------------------------------------------------------------- low-level file work


@contextmanager
def _locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the writer lock of ``path`` (the file ``<path>.lock``)."""
    lock_path = path.with_name(path.name + ".lock")
    wait_s = LOCK_TIMEOUT_S if timeout is None else timeout
    lock = FileLock(lock_path, timeout=wait_s, poll_interval=_LOCK_POLL_S)
    try:
        lock.acquire()
    except Timeout as exc:
        raise StorageError(
            f"{path} is locked by another writer (waited {wait_s:g} s)",
            hint="another app tab or CLI command is writing it; retry, and stop any hung process",
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _write_all(fd: int, data: bytes) -> None:
    # os.write may write less than asked (signals, some filesystems); keep going.
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable, not just its contents."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the folder {path.parent}: {exc.strerror}",
            hint="check that the data folder exists and is writable",
        ) from exc


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise MissingDataFile(
            f"{path} does not exist", hint="it is created on the first save"
        ) from exc
    except OSError as exc:
        raise StorageError(
            f"cannot read {path}: {exc.strerror}", hint="check the file's permissions"
        ) from exc


def _temp_name_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(f".{path.name}.") + r"[0-9a-f]{32}\.tmp")


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files a killed writer of ``path`` left behind.

    Called with the lock held: every writer holds it for its temp file's whole life,
    so any temp file of this name that exists now belongs to a writer that died.
    """
    pattern = _temp_name_pattern(path)
    for entry in os.scandir(path.parent):
        if pattern.fullmatch(entry.name):
            logger.info("removing %s, left by an interrupted write", entry.path)
            with suppress(FileNotFoundError):
                os.unlink(entry.path)


def _replace_with(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, make it durable, swap it in."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _end_of_last_line(fd: int, size: int) -> int:
    """Offset just past the last newline in the file, 0 when it has none."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _cut_torn_tail(fd: int, path: Path) -> None:
    """Remove a last line that an interrupted append left without its newline."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep = _end_of_last_line(fd, size)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    logger.warning(
        "%s ended in a torn line (an append was interrupted); cut its last %d bytes",
        path,
        size - keep,
    )


def _move_aside(path: Path, corrupt_dir: Path, reason: str) -> Path:
    """Move a bad file into ``corrupt_dir`` under a timestamped name; return where it went."""
    corrupt_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = corrupt_dir / f"{path.stem}.{stamp}{path.suffix}"
    copy = 1
    while target.exists():
        target = corrupt_dir / f"{path.stem}.{stamp}-{copy}{path.suffix}"
        copy += 1
    shutil.move(path, target)
    logger.warning("%s is corrupt (%s); moved it to %s", path, reason, target)
    return target


# --------------------------------------------------------------------------- public API


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: BaseModel | dict[str, Any] | list[Any],
    *,
    lock_timeout: float | None = None,
) -> None:
    """Replace the JSON file at ``path`` with ``obj`` so that no reader ever sees half of it."""
    path = Path(path)
    atomic_write_bytes(path, _encode(obj, path, compact=False), lock_timeout=lock_timeout)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, lock_timeout: float | None = None
) -> None:
    """Replace the file at ``path`` with ``data`` atomically (same steps as JSON)."""
    path = Path(path)
    _ensure_parent(path)
    with _locked(path, lock_timeout):
        try:
            _remove_stale_temps(path)
            _replace_with(path, data)
        except OSError as exc:
            raise StorageError(
                f"cannot write {path}: {exc.strerror or exc}",
                hint="check free disk space and the folder's permissions",
            ) from exc


def append_jsonl(
    path: str | os.PathLike[str],
    record: BaseModel | dict[str, Any],
    *,
    lock_timeout: float | None = None,
) -> None:
    """Append ``record`` as one line to the JSONL file at ``path``; durable once this returns."""
    path = Path(path)
    line = _encode(record, path, compact=True)
    _ensure_parent(path)
    with _locked(path, lock_timeout):
        try:
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, _FILE_MODE)
            try:
                _cut_torn_tail(fd, path)
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(path.parent)
        except OSError as exc:
            raise StorageError(
                f"cannot append to {path}: {exc.strerror or exc}",
                hint="check free disk space and the folder's permissions",
            ) from exc


def read_json(
    path: str | os.PathLike[str], model: type[R], corrupt_dir: str | os.PathLike[str] | None = None
) -> R:
    """Read and validate the JSON file at ``path`` as ``model``, applying migrations.

    A file that fails to parse or validate is moved to ``corrupt_dir`` (default: a
    ``.corrupt`` folder beside it) and ``CorruptDataFile`` is raised; a missing file
    raises ``MissingDataFile``.
    """
    path = Path(path)
    try:
        return _decode_record(_read_bytes(path), model)
    except _InvalidRecord:
        pass
    # Look again under the lock: a writer may have replaced the file since, and only
    # a file that is still bad may be moved.
    with _locked(path):
        try:
            return _decode_record(_read_bytes(path), model)
        except _InvalidRecord as exc:
            reason = str(exc)
            target = _move_aside(path, _corrupt_dir_for(path, corrupt_dir), reason)
    raise CorruptDataFile(
        f"{path} is corrupt ({reason}) and was moved to {target}",
        hint="the app starts from an empty file; inspect or restore the moved copy by hand",
    )


def read_json_or_none(
    path: str | os.PathLike[str], model: type[R], corrupt_dir: str | os.PathLike[str] | None = None
) -> R | None:
    """Like ``read_json``, but a missing or corrupt file gives ``None`` so callers keep working."""
    try:
        return read_json(path, model, corrupt_dir)
    except (MissingDataFile, CorruptDataFile):
        return None


def read_jsonl(path: str | os.PathLike[str], model: type[R]) -> JsonlRead[R]:
    """Read every valid record of the JSONL file at ``path``; a missing file has none.

    Lines that fail to parse or validate, and a torn last line, are skipped, counted
    and logged with their line numbers. Blank lines hold no record and are ignored.
    """
    path = Path(path)
    if not path.exists():
        return JsonlRead(records=[], skipped=0)
    # The lock keeps an append in progress from looking like a torn line.
    with _locked(path):
        data = _read_bytes(path)
    return _parse_jsonl(data, path, model)


def list_corrupt(corrupt_dir: str | os.PathLike[str]) -> list[Path]:
    """The files moved aside into ``corrupt_dir``, oldest name first."""
    folder = Path(corrupt_dir)
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if entry.is_file())


def _corrupt_dir_for(path: Path, corrupt_dir: str | os.PathLike[str] | None) -> Path:
    return Path(corrupt_dir) if corrupt_dir is not None else path.parent / CORRUPT_DIR_NAME


def _parse_jsonl(data: bytes, path: Path, model: type[R]) -> JsonlRead[R]:
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: empty unless an append was torn
    records: list[R] = []
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(_decode_record(line, model))
        except _InvalidRecord as exc:
            problems.append((number, str(exc)))
    if tail.strip():
        problems.append((len(lines) + 1, "torn last line: no newline, an append was interrupted"))
    _log_skipped(path, problems)
    return JsonlRead(records=records, skipped=len(problems))


def _log_skipped(path: Path, problems: list[tuple[int, str]]) -> None:
    for number, reason in problems[:_MAX_LOGGED_SKIPS]:
        logger.warning("%s line %d skipped: %s", path, number, reason)
    if len(problems) > _MAX_LOGGED_SKIPS:
        logger.warning("%s: %d lines skipped in all", path, len(problems))
