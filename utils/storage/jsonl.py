"""Durable JSONL logs: locked appends, torn-tail repair, tolerant reads.

A record is one line, appended and fsynced before ``append_jsonl`` returns, so an
acknowledged record survives a crash. A crash mid-append can leave a torn last
line; the next append cuts it off. A bad line is skipped, counted and logged by
line number, never by content.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic

from pydantic import BaseModel

from utils.storage.atomic import FILE_MODE, ensure_parent, fsync_dir, write_all
from utils.storage.errors import write_failed
from utils.storage.locks import reader_lock, writer_lock
from utils.storage.records import InvalidRecord, R, decode, encode, read_bytes

logger = logging.getLogger(__name__)

#: Skipped JSONL lines logged one by one; beyond this only a total is logged.
_MAX_LOGGED_SKIPS = 20
#: Bytes read per step when searching backwards for the last newline.
_TAIL_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class JsonlRead(Generic[R]):
    """What ``read_jsonl`` found: the valid records and how many lines it skipped."""

    records: list[R]
    skipped: int


def append_jsonl(
    path: str | os.PathLike[str],
    record: BaseModel | dict[str, Any],
    *,
    lock_timeout: float | None = None,
) -> None:
    """Append ``record`` as one line to the JSONL file at ``path``; durable once this returns."""
    path = Path(path)
    line = encode(record, path, compact=True)
    ensure_parent(path)
    with writer_lock(path, lock_timeout):
        try:
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
            try:
                _cut_torn_tail(fd, path)
                write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(path.parent)
        except OSError as exc:
            raise write_failed("append to", path, exc) from exc


def read_jsonl(path: str | os.PathLike[str], model: type[R]) -> JsonlRead[R]:
    """Read every valid record of the JSONL file at ``path``; a missing file has none.

    Lines that fail to parse or validate, and a torn last line, are skipped, counted
    and logged with their line numbers. Blank lines hold no record and are ignored.
    """
    path = Path(path)
    if not path.exists():
        return JsonlRead(records=[], skipped=0)
    # The lock keeps an append in progress from looking like a torn line; a read-only
    # folder has no appends, and is read without it.
    with reader_lock(path):
        data = read_bytes(path)
    return _parse_jsonl(data, path, model)


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


def _parse_jsonl(data: bytes, path: Path, model: type[R]) -> JsonlRead[R]:
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: empty unless an append was torn
    records: list[R] = []
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(decode(line, model))
        except InvalidRecord as exc:
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
