"""Versioned records in JSON files: encoding, validated reads, corrupt files moved aside.

Every record carries ``schema_version``. A record at another version than its
model's ``SCHEMA_VERSION`` (newer, older, missing) is invalid, never guessed at.
A JSON file that fails to parse or validate is moved to a ``.corrupt/`` folder
with a logged warning. Logs name files and reasons, never file contents (they may
hold user documents).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from utils.errors import StorageError
from utils.storage.atomic import atomic_write_bytes
from utils.storage.errors import CorruptDataFile, MissingDataFile
from utils.storage.locks import reader_lock

logger = logging.getLogger(__name__)

#: Name of the folder, next to a data file, that corrupt files are moved into.
CORRUPT_DIR_NAME = ".corrupt"


class VersionedRecord(BaseModel):
    """Base class of everything stored on disk.

    Subclasses set ``SCHEMA_VERSION`` to their current layout. Built in code, a record
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
        # A record of another layout could be misread silently.
        if version != cls.SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version} is not the current version {cls.SCHEMA_VERSION}; "
                "this app reads only records of its current version"
            )
        return version


R = TypeVar("R", bound=VersionedRecord)


class InvalidRecord(Exception):
    """A stored record that cannot be read; the message says why, without its content."""


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


def encode(obj: BaseModel | dict[str, Any] | list[Any], path: Path, *, compact: bool) -> bytes:
    """Serialise before any file is touched, so a bad value never leaves a partial write."""
    layout: dict[str, Any] = {"separators": (",", ":")} if compact else {"indent": 2}
    try:
        text = json.dumps(_to_jsonable(obj), ensure_ascii=False, allow_nan=False, **layout)
    except (TypeError, ValueError) as exc:
        raise StorageError(
            f"cannot write {path}: the data is not JSON ({exc})",
            hint="store only str, int, float (not NaN), bool, None, lists and dicts",
        ) from exc
    return (text + "\n").encode("utf-8")


def decode(raw_json: bytes, model: type[R]) -> R:
    """Parse, check the version of, and validate one stored record; else ``InvalidRecord``."""
    try:
        raw = json.loads(raw_json)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidRecord(f"not valid JSON ({_first_line(str(exc))})") from exc
    _check_version(model, raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRecord(_describe_validation_error(exc)) from exc


def _check_version(model: type[VersionedRecord], raw: Any) -> None:
    if not isinstance(raw, dict):
        raise InvalidRecord(f"expected a JSON object, found {type(raw).__name__}")
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidRecord("missing or invalid schema_version")
    if version > model.SCHEMA_VERSION:
        raise InvalidRecord(
            f"schema_version {version} is newer than this app knows ({model.SCHEMA_VERSION})"
        )
    if version < model.SCHEMA_VERSION:
        raise InvalidRecord(
            f"schema_version {version} is older than this app reads ({model.SCHEMA_VERSION})"
        )


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


# --------------------------------------------------------------------------- JSON files


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: BaseModel | dict[str, Any] | list[Any],
    *,
    lock_timeout: float | None = None,
) -> None:
    """Replace the JSON file at ``path`` with ``obj`` so that no reader ever sees half of it."""
    path = Path(path)
    atomic_write_bytes(path, encode(obj, path, compact=False), lock_timeout=lock_timeout)


def read_bytes(path: Path) -> bytes:
    """The content of the data file ``path``; ``MissingDataFile`` or ``StorageError`` if none."""
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


def read_json(
    path: str | os.PathLike[str], model: type[R], corrupt_dir: str | os.PathLike[str] | None = None
) -> R:
    """Read and validate the JSON file at ``path`` as ``model``.

    A file that fails to parse or validate is moved to ``corrupt_dir`` (default: a
    ``.corrupt`` folder beside it; left in place when the folder is read-only) and
    ``CorruptDataFile`` is raised; a missing file raises ``MissingDataFile``.
    """
    path = Path(path)
    try:
        return decode(read_bytes(path), model)
    except InvalidRecord:
        pass
    # Look again under the lock: a writer may have replaced the file since, and only
    # a file that is still bad may be moved.
    with reader_lock(path) as locked:
        try:
            return decode(read_bytes(path), model)
        except InvalidRecord as exc:
            reason = str(exc)
        if not locked:  # the lock file could not be created: nothing can be moved either
            raise _left_in_place(path, reason, "its folder is not writable")
        try:
            target = _move_aside(path, _corrupt_dir_for(path, corrupt_dir), reason)
        except OSError as exc:
            raise _left_in_place(path, reason, exc.strerror or str(exc)) from exc
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


def list_corrupt(corrupt_dir: str | os.PathLike[str]) -> list[Path]:
    """The files moved aside into ``corrupt_dir``, oldest name first."""
    folder = Path(corrupt_dir)
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if entry.is_file())


def _corrupt_dir_for(path: Path, corrupt_dir: str | os.PathLike[str] | None) -> Path:
    return Path(corrupt_dir) if corrupt_dir is not None else path.parent / CORRUPT_DIR_NAME


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


def _left_in_place(path: Path, reason: str, why_not_moved: str) -> CorruptDataFile:
    """The error for a bad file that could not be moved aside; logged here, raised by the caller."""
    logger.warning("%s is corrupt (%s); left in place: %s", path, reason, why_not_moved)
    return CorruptDataFile(
        f"{path} is corrupt ({reason}); it could not be moved aside ({why_not_moved})",
        hint="the app reads it as empty; fix or remove the file by hand",
    )
