"""Size-based rotation of append-only files (audit log, monitor history, alert events)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from utils.storage.locks import writer_lock


def rotate_if_over(path: Path, max_bytes: int, rotated: Callable[[Path], Path]) -> bool:
    """Rename ``path`` to ``rotated(path)`` once it is over ``max_bytes``; the next append
    starts a new file. Under the file's writer lock, and checked again inside it, so of
    two processes only one rotates. Returns whether this call rotated."""
    if _size(path) <= max_bytes:
        return False
    with writer_lock(path):
        if _size(path) <= max_bytes:
            return False
        os.replace(path, rotated(path))
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def one_older(path: Path) -> Path:
    """``x.jsonl`` -> ``x.1.jsonl``: the single older file kept beside a rotated one
    (it replaces the one before), so the pair never takes more than twice the limit."""
    return path.with_name(path.stem + ".1.jsonl")
