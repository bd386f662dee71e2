"""Benchmark runs on disk: ``<data_dir>/benchmarks/<run_id>/``.

One folder per run holds:

- ``manifest.json`` — what was run, on what, with which versions; written first;
- ``items.jsonl``   — one ``ItemRecord`` per (engine, item), appended as each finishes,
  so a crash loses at most the items in flight;
- ``summary.json``  — aggregates, rebuildable from the items at any time;
- ``state.json``    — running / cancelled / complete / failed, with a message;
- ``.locks/run.lock`` — held by the process running the run, so a second runner is
  refused and a "running" state whose lock is free is known to be interrupted. It sits
  out of sight with the writer locks of the run's files (``utils.storage.locks``).

The records inside those files are in ``utils.bench.records``; this module holds
the folder's own bookkeeping (state, listing) and all of its file I/O. Run ids are
checked against ``RUN_ID_PATTERN`` before they touch a path, so no id can point
outside the benchmarks folder. Listing reads manifests, states and summaries only,
never the items.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field

from utils.auth import LOCAL_USER, User
from utils.auth.audit import AuditLog
from utils.auth.permissions import may_manage_run
from utils.bench.records import ItemRecord, Manifest, Summary
from utils.errors import BadInput, StorageError
from utils.storage import (
    VersionedRecord,
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    lock_path_for,
    read_json_or_none,
    read_jsonl,
    utc_now_iso,
)

logger = logging.getLogger(__name__)

RUN_ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
MANIFEST_FILE = "manifest.json"
ITEMS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
STATE_FILE = "state.json"
#: The run's own lock is kept as the lock of this name in the run folder: ``.locks/run.lock``.
RUN_LOCK_NAME = "run"
MAX_NAME_LENGTH = 200

RunStatus = Literal["running", "cancelled", "complete", "failed", "interrupted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- state and listing


class RunState(VersionedRecord):
    SCHEMA_VERSION = 1

    run_id: str
    status: RunStatus
    message: str | None = None
    updated_at: str = Field(default_factory=utc_now_iso)


class RunListing(_Strict):
    """One line of the runs list: read from manifest, state and summary only."""

    run_id: str
    name: str
    created_at: str
    status: RunStatus
    message: str | None = None
    dataset: str
    engines: list[str]
    template: str | None = None
    items_total: int
    items_recorded: int
    owner_id: str | None = None
    owner: str = ""
    summary: Summary | None = Field(
        None, description="as last written: partial or missing while a run is unfinished"
    )


class ItemsRead(_Strict):
    """The item records of a run, one per (engine, item), and what was dropped reading them."""

    records: list[ItemRecord]
    bad_lines: int = 0
    duplicates: int = 0


# --------------------------------------------------------------------------- ids and paths


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a well-formed run id, else ``BadInput`` (before any path use)."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise BadInput(
            f"{run_id!r} is not a benchmark run id",
            hint="run ids look like 20250101T120000Z-1a2b3c; `cli.py bench list` shows them",
        )
    return run_id


def benchmarks_dir(data_dir: Path) -> Path:
    return data_dir / "benchmarks"


def run_dir(data_dir: Path, run_id: str) -> Path:
    return benchmarks_dir(data_dir) / check_run_id(run_id)


def items_path(data_dir: Path, run_id: str) -> Path:
    return run_dir(data_dir, run_id) / ITEMS_FILE


def run_exists(data_dir: Path, run_id: str) -> bool:
    return (run_dir(data_dir, run_id) / MANIFEST_FILE).is_file()


def run_lock_path(data_dir: Path, run_id: str) -> Path:
    """The lock a runner holds for the whole run, beside the writer locks of the run's files."""
    return lock_path_for(run_dir(data_dir, run_id) / RUN_LOCK_NAME)


def _missing_run(run_id: str) -> BadInput:
    return BadInput(f"no benchmark run {run_id}", hint="`cli.py bench list` shows the stored runs")


# --------------------------------------------------------------------------- run lock


@contextmanager
def hold_run_lock(data_dir: Path, run_id: str) -> Iterator[None]:
    """Held for a whole run: a second runner of the same run (any process) is refused."""
    lock_file = run_lock_path(data_dir, run_id)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file, timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        raise BadInput(
            f"benchmark run {run_id} is already running",
            hint="wait for it to finish or cancel it, then resume it",
        ) from exc
    try:
        yield
    finally:
        lock.release()


def is_running(data_dir: Path, run_id: str) -> bool:
    """Whether some process holds the run's lock right now.

    A folder where the lock cannot be created (read-only) has no runner either: a run
    writes its records there.
    """
    lock = FileLock(run_lock_path(data_dir, run_id), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        return False
    lock.release()
    return False


def _refuse_if_running(data_dir: Path, run_id: str, action: str) -> None:
    if is_running(data_dir, run_id):
        raise BadInput(
            f"cannot {action} benchmark run {run_id} while it is running",
            hint="cancel it or wait until it has finished",
        )


# --------------------------------------------------------------------------- files of one run


def write_manifest(data_dir: Path, manifest: Manifest) -> None:
    atomic_write_json(run_dir(data_dir, manifest.run_id) / MANIFEST_FILE, manifest)


def read_manifest(data_dir: Path, run_id: str) -> Manifest:
    """The run's manifest; ``BadInput`` when the run does not exist or it was unreadable."""
    manifest = read_json_or_none(
        run_dir(data_dir, run_id) / MANIFEST_FILE, Manifest, _corrupt_dir(data_dir)
    )
    if manifest is None:
        raise _missing_run(run_id)
    return manifest


def append_item(data_dir: Path, record: ItemRecord) -> None:
    append_jsonl(items_path(data_dir, record.run_id), record)


def read_items(data_dir: Path, run_id: str) -> ItemsRead:
    """Valid records, the first one kept per (engine, item); torn or bad lines counted."""
    read = read_jsonl(items_path(data_dir, run_id), ItemRecord)
    seen: set[tuple[str, str]] = set()
    records: list[ItemRecord] = []
    for record in read.records:
        key = (record.engine, record.item_id)
        if key not in seen:
            seen.add(key)
            records.append(record)
    duplicates = len(read.records) - len(records)
    if duplicates:
        logger.warning("benchmark run %s: %d duplicate item records ignored", run_id, duplicates)
    return ItemsRead(records=records, bad_lines=read.skipped, duplicates=duplicates)


def replace_items(data_dir: Path, run_id: str, records: list[ItemRecord]) -> None:
    """Rewrite items.jsonl whole (temp file, then replace): readers see old or new, never half."""
    _refuse_if_running(data_dir, run_id, "rewrite the items of")
    lines = [record.model_dump_json() + "\n" for record in records]
    atomic_write_bytes(items_path(data_dir, run_id), "".join(lines).encode("utf-8"))


def write_summary(data_dir: Path, summary: Summary) -> None:
    atomic_write_json(run_dir(data_dir, summary.run_id) / SUMMARY_FILE, summary)


def read_summary(data_dir: Path, run_id: str) -> Summary | None:
    return read_json_or_none(
        run_dir(data_dir, run_id) / SUMMARY_FILE, Summary, _corrupt_dir(data_dir)
    )


def write_state(data_dir: Path, run_id: str, status: RunStatus, message: str | None = None) -> None:
    state = RunState(run_id=run_id, status=status, message=message)
    atomic_write_json(run_dir(data_dir, run_id) / STATE_FILE, state)


def read_state(data_dir: Path, run_id: str) -> RunState:
    """The stored state; "running" without a live runner is reported as "interrupted"."""
    state = read_json_or_none(
        run_dir(data_dir, run_id) / STATE_FILE, RunState, _corrupt_dir(data_dir)
    )
    if state is None:
        return RunState(run_id=run_id, status="interrupted", message="no state recorded")
    if state.status == "running" and not is_running(data_dir, run_id):
        return state.model_copy(
            update={"status": "interrupted", "message": "stopped before finishing; resume it"}
        )
    return state


def _corrupt_dir(data_dir: Path) -> Path:
    return data_dir / ".corrupt"


# --------------------------------------------------------------------------- the runs


def list_bench_runs(data_dir: Path) -> list[RunListing]:
    """Every stored run, newest first, from manifests, states and summaries only."""
    folder = benchmarks_dir(data_dir)
    if not folder.is_dir():
        return []
    run_ids = sorted(
        (entry.name for entry in folder.iterdir() if RUN_ID_PATTERN.fullmatch(entry.name)),
        reverse=True,
    )
    listings = []
    for run_id in run_ids:
        listing = _listing(data_dir, run_id)
        if listing is not None:
            listings.append(listing)
    return listings


def state_stamps(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Each run's state file as (inode, modification time in ns), by run id.

    A stamp changes whenever the state is written (atomic writes put a new file in
    place), so a poller can read again only the states that changed: a stat per run
    instead of three files. Runs without a state file yet are left out.
    """
    folder = benchmarks_dir(data_dir)
    if not folder.is_dir():
        return {}
    stamps = {}
    for entry in os.scandir(folder):
        if not RUN_ID_PATTERN.fullmatch(entry.name):
            continue
        try:
            stat = os.stat(os.path.join(entry.path, STATE_FILE))
        except OSError:
            continue
        stamps[entry.name] = (stat.st_ino, stat.st_mtime_ns)
    return stamps


def _listing(data_dir: Path, run_id: str) -> RunListing | None:
    try:
        manifest = read_manifest(data_dir, run_id)
    except BadInput:
        return None  # a folder without a readable manifest is not a run (yet)
    state = read_state(data_dir, run_id)
    summary = read_summary(data_dir, run_id)
    return RunListing(
        run_id=run_id,
        name=manifest.name,
        created_at=manifest.created_at,
        status=state.status,
        message=state.message,
        dataset=manifest.dataset.name,
        engines=[engine.name for engine in manifest.engines],
        template=manifest.template,
        items_total=manifest.items_planned * len(manifest.engines),
        items_recorded=_recorded_count(data_dir, run_id, state, summary),
        owner_id=manifest.owner_id,
        owner=manifest.owner,
        summary=summary,
    )


def _recorded_count(data_dir: Path, run_id: str, state: RunState, summary: Summary | None) -> int:
    """From the summary of a finished run; else the record lines, counted without parsing."""
    if summary is not None and state.status in ("complete", "cancelled", "failed"):
        return summary.items_recorded
    try:
        return items_path(data_dir, run_id).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def check_may_manage(data_dir: Path, manifest: Manifest, user: User, action: str) -> None:
    """Only the run's owner or an admin may rename, delete or resume it; anyone else gets
    ``PermissionDenied`` and an audit entry."""
    if not may_manage_run(user, manifest.owner_id):
        AuditLog(data_dir).deny(
            user, f"{action} benchmark run", manifest.run_id, "only its owner or an admin may"
        )


def rename_run(data_dir: Path, run_id: str, name: str, *, user: User = LOCAL_USER) -> Manifest:
    """Give the run a new display name (its id and folder stay); owner or admin only."""
    clean = " ".join(name.split())
    if not clean or len(clean) > MAX_NAME_LENGTH:
        raise BadInput(
            "a run name must have 1 to 200 characters", hint="type a short descriptive name"
        )
    manifest = read_manifest(data_dir, run_id)
    check_may_manage(data_dir, manifest, user, "rename")
    manifest = manifest.model_copy(update={"name": clean})
    write_manifest(data_dir, manifest)
    return manifest


def delete_run(data_dir: Path, run_id: str, *, user: User = LOCAL_USER) -> None:
    """Remove the run's whole folder (owner or admin only); a running run is refused."""
    folder = run_dir(data_dir, run_id)
    if not folder.is_dir():
        raise _missing_run(run_id)
    check_may_manage(data_dir, read_manifest(data_dir, run_id), user, "delete")
    _refuse_if_running(data_dir, run_id, "delete")
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise StorageError(
            f"cannot delete {folder}: {exc.strerror or exc}", hint="check the folder's permissions"
        ) from exc
    AuditLog(data_dir).record(user, "delete benchmark run", run_id)
