"""Cache counters: this process's counts, and the totals in ``stats.json`` shared by all.

Hits, misses, evictions and rejected entries are what the Models page and
``cli.py cache stats`` show, summed over every process since the last ``clear()``.
A process counts in memory and adds its counts to ``stats.json`` now and then
(under the cache lock); a missing or damaged ``stats.json`` counts from zero.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from utils.storage import replace_file

logger = logging.getLogger(__name__)

STATS_NAME = "stats.json"
#: Hits and misses alone do not write stats.json more often than this.
_FLUSH_INTERVAL_NS = 5 * 10**9
#: Permissions of stats.json, as of every file the cache writes.
_FILE_MODE = 0o600

Counter = Literal["hits", "misses", "evictions", "rejected"]


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


class _Totals(BaseModel):
    """Schema of ``stats.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    hits: int = Field(default=0, ge=0)
    misses: int = Field(default=0, ge=0)
    evictions: int = Field(default=0, ge=0)
    rejected: int = Field(default=0, ge=0)


@dataclass
class Counts:
    """Counts of cache events."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    rejected: int = 0

    def is_zero(self) -> bool:
        return not any(asdict(self).values())

    def plus(self, other: Counts) -> Counts:
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        return Counts(**summed)


class StatsBook:
    """The counters of one ``DiskCache``; thread-safe. Callers hold the cache lock to flush."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pending = Counts()
        self._last_flush_ns = time.monotonic_ns()

    def count(self, name: Counter) -> None:
        with self._lock:
            setattr(self._pending, name, getattr(self._pending, name) + 1)

    def flush_is_due(self) -> bool:
        return time.monotonic_ns() - self._last_flush_ns >= _FLUSH_INTERVAL_NS

    def totals(self) -> Counts:
        """Everything counted so far: ``stats.json`` plus this process's unsaved counts."""
        with self._lock:
            pending = Counts(**asdict(self._pending))
        return (self._read() or Counts()).plus(pending)

    def flush_locked(self) -> None:
        """Add this process's counts to ``stats.json``; on ``OSError`` they are kept for later."""
        with self._lock:
            taken, self._pending = self._pending, Counts()
            self._last_flush_ns = time.monotonic_ns()
        saved = self._read()
        if taken.is_zero() and saved is not None:
            return
        try:
            self._write((saved or Counts()).plus(taken))
        except OSError:
            with self._lock:
                self._pending = self._pending.plus(taken)
            raise

    def reset_locked(self) -> None:
        """Forget every count, saved or not (``OSError`` when ``stats.json`` cannot be written)."""
        with self._lock:
            self._pending = Counts()
        self._write(Counts())

    def _read(self) -> Counts | None:
        """Totals in ``stats.json``; None when missing or damaged (the next flush rewrites it)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("Cache stats %s unreadable (%s); counting from zero", self.path, exc)
            return None
        try:  # pydantic reports invalid UTF-8 and bad JSON as a ValidationError too
            totals = _Totals.model_validate_json(data)
        except ValidationError:
            logger.warning("Cache stats %s corrupt; resetting the counters", self.path)
            return None
        return Counts(**totals.model_dump(exclude={"schema_version"}))

    def _write(self, counts: Counts) -> None:
        text = _Totals(**asdict(counts)).model_dump_json(indent=2)
        replace_file(self.path, text.encode("utf-8"), mode=_FILE_MODE)
