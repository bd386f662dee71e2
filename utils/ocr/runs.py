"""OCR runs kept on disk in the user's folder (``<data_dir>/ocr/`` without sign-in,
``<data_dir>/users/<id>/ocr/`` with it) so they can be reopened by that user only.

A run is one JSON file written atomically. The uploaded files are kept once
each under ``<data_dir>/uploads/<sha256>`` (never under their own names), so a
reopened run can still draw its boxes on the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from models.config import AppConfig
from utils.auth import LOCAL_USER, Action, User, require
from utils.auth.user_data import ocr_runs_dir
from utils.errors import StorageError
from utils.ocr.pipeline import DocumentResult
from utils.storage import (
    VersionedRecord,
    atomic_write_bytes,
    atomic_write_json,
    new_run_id,
    read_json_or_none,
    utc_now_iso,
)

_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class OcrRun(VersionedRecord):
    SCHEMA_VERSION = 1

    run_id: str
    created_at: str
    settings: dict = Field(default_factory=dict)
    documents: list[DocumentResult] = Field(default_factory=list)


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    created_at: str
    engine: str
    files: int
    failed: int


class RunRecorder:
    """Builds an OCR run and saves it after every file.

    A crash or a kill mid-batch (the server restarted, the browser tab closed) then
    loses at most the file being read; the run on disk always parses. Nothing is saved
    before the first file: a batch that reads no file (its engine failed to load) leaves
    no empty run behind. A data folder that refuses the write (read-only, full) does
    not stop the batch: the results stay in ``run`` and ``not_kept`` says why.
    """

    def __init__(self, config: AppConfig, settings: dict, *, user: User = LOCAL_USER) -> None:
        require(user, Action.RUN_OCR)
        self.config = config
        self.user = user
        self.run = OcrRun(
            run_id=new_run_id(), created_at=utc_now_iso(timespec="auto"), settings=settings
        )
        self.not_kept: StorageError | None = None

    @property
    def saved(self) -> bool:
        """Whether the run is on disk (it is once it holds a file that could be written)."""
        return bool(self.run.documents) and self.not_kept is None

    def add(self, result: DocumentResult, data: bytes) -> None:
        self.run.documents.append(result)
        if self.not_kept is not None:
            return
        try:
            # The upload first: a saved run never points at a file that was not kept.
            if result.sha256:
                store_upload(self.config, data, result.sha256)
            save_run(self.config, self.run, user=self.user)
        except StorageError as exc:
            self.not_kept = exc


def runs_dir(config: AppConfig, user: User = LOCAL_USER) -> Path:
    return ocr_runs_dir(config.data_dir, user)


def save_run(config: AppConfig, run: OcrRun, *, user: User = LOCAL_USER) -> Path:
    if not _RUN_ID.match(run.run_id):
        raise ValueError(f"not a run id: {run.run_id!r}")
    path = runs_dir(config, user) / f"{run.run_id}.json"
    atomic_write_json(path, run)
    return path


def load_run(config: AppConfig, run_id: str, *, user: User = LOCAL_USER) -> OcrRun | None:
    """``user``'s saved run, or None when it is missing (or another user's: the same
    answer), or was moved aside as corrupt."""
    if not _RUN_ID.match(run_id):
        return None
    path = runs_dir(config, user) / f"{run_id}.json"
    return read_json_or_none(path, OcrRun, corrupt_dir=config.data_dir / ".corrupt")


def list_ocr_runs(
    config: AppConfig, limit: int = 50, *, user: User = LOCAL_USER
) -> list[RunSummary]:
    """``user``'s runs, newest first; unreadable files are moved aside by the storage layer
    and skipped, and so are empty runs (older versions saved one before a batch's first
    file)."""
    paths = sorted(runs_dir(config, user).glob("*.json"), reverse=True)
    summaries = []
    for path in paths:
        run = load_run(config, path.stem, user=user)
        if run is not None and run.documents:
            summaries.append(_summary(run))
        if len(summaries) >= limit:
            break
    return summaries


def _summary(run: OcrRun) -> RunSummary:
    return RunSummary(
        run_id=run.run_id,
        created_at=run.created_at,
        engine=str(run.settings.get("engine", "")),
        files=len(run.documents),
        failed=sum(not d.ok for d in run.documents),
    )


def store_upload(config: AppConfig, data: bytes, sha256: str) -> None:
    """Keep an uploaded file once, named by its content hash."""
    path = _upload_path(config, sha256)
    if not path.exists():
        atomic_write_bytes(path, data)


def load_upload(config: AppConfig, sha256: str) -> bytes | None:
    path = _upload_path(config, sha256)
    return path.read_bytes() if path.is_file() else None


def _upload_path(config: AppConfig, sha256: str) -> Path:
    if not _SHA256.match(sha256):
        raise ValueError("uploads are addressed by their SHA-256 only")
    return config.data_dir / "uploads" / sha256
