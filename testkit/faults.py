"""Faults the tests inject into this process: a folder that refuses writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def refuse_writes_under(monkeypatch: pytest.MonkeyPatch, folder: Path, error: int) -> None:
    """``folder`` read-only (EROFS, EACCES) or full (ENOSPC) for this process.

    Root ignores chmod, so the refusal is simulated where every file is created:
    ``os.open`` with a write flag and ``os.mkdir`` under ``folder`` raise ``error``.
    """
    real_open, real_mkdir = os.open, os.mkdir
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def open_refusing_writes(path, flags, *args, **kwargs):
        if Path(path).is_relative_to(folder) and flags & writing:
            raise OSError(error, os.strerror(error), str(path))
        return real_open(path, flags, *args, **kwargs)

    def mkdir_refused(path, *args, **kwargs):
        if Path(path).is_relative_to(folder):
            raise OSError(error, os.strerror(error), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_refusing_writes)
    monkeypatch.setattr(os, "mkdir", mkdir_refused)
