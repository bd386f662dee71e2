"""Upgrade from the single-user app: its conversations and OCR runs go to one user.

Without sign-in every conversation lived in ``<data_dir>/chats`` (with its images) and
every OCR run in ``<data_dir>/ocr``. Once sign-in is on, that data would belong to
nobody: the first admin who signs in adopts it (or the user ``cli.py auth adopt --user
WHO`` names), and it moves to ``<data_dir>/users/<id>/{chats,ocr}``. Uploads
(``<data_dir>/uploads``) are shared by content hash and stay where they are. The
single-user defaults (``<data_dir>/settings.json``: chat model, system prompt, OCR
engine...) are copied, not moved, to an owner who has none yet: the local operator
(``cli.py`` without ``--user``) keeps them too.

Safe against a kill at any point (see ``adoption_moves`` for the per-file steps):

- the journal ``<data_dir>/users/.adopted.json`` is written atomically before the first
  move and names the owner; a re-run after a crash finishes the job for that owner,
  whoever runs it, so the data is never split between two people;
- after the last move the folders are fsynced and the journal marked finished; from
  then on every run is a no-op (one small read);
- one adopter at a time (a file lock); a second one waits, then finds it done.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from utils.auth.adoption_moves import (
    FolderMover,
    data_files,
    remove_lock_files_and_empty_folders,
)
from utils.auth.audit import AuditLog
from utils.auth.identity import USER_ID_PATTERN, User
from utils.auth.permissions import Action
from utils.auth.personal import PersonalSettings
from utils.auth.user_data import (
    CHATS_DIR_NAME,
    OCR_DIR_NAME,
    SETTINGS_FILE_NAME,
    user_root_by_id,
    users_dir,
)
from utils.errors import BadInput, StorageError
from utils.storage import (
    CORRUPT_DIR_NAME,
    VersionedRecord,
    atomic_write_json,
    holding_lock,
    read_json_or_none,
    utc_now_iso,
)
from utils.storage.locks import LOCKS_DIR_NAME

JOURNAL_FILE_NAME = ".adopted.json"
#: The single-user app's folders (under the data folder) that a user adopts.
LEGACY_FOLDERS = (CHATS_DIR_NAME, OCR_DIR_NAME)
#: Seconds a second adopter waits for the first (moving is renames: thousands a second).
LOCK_WAIT_S = 60.0
EVENT = "adopt single-user data"


class AdoptionJournal(VersionedRecord):
    """Who adopts (adopted) the single-user data, and whether it is finished."""

    owner_id: str = Field(pattern=USER_ID_PATTERN.pattern)
    owner: str  # e-mail or name when it started, for people reading the file
    started_by: str
    started_at: str
    finished_at: str | None = None


class AdoptionResult(BaseModel):
    """What one call did. Paths are relative to the owner's folder."""

    model_config = ConfigDict(frozen=True)

    owner_id: str
    already_adopted: bool = False  # finished before this call: nothing was looked at
    moved: tuple[str, ...] = ()
    already_there: tuple[str, ...] = ()  # the same bytes were at the target: source removed
    conflicts: tuple[str, ...] = ()  # the name held other bytes: kept at these paths
    left_in_place: tuple[str, ...] = ()  # links, temp files: not data, not followed


def journal_path(data_dir: Path) -> Path:
    return users_dir(data_dir) / JOURNAL_FILE_NAME


def legacy_data_present(data_dir: Path) -> bool:
    """Whether the single-user folders hold any data file (a missing folder: a stat)."""
    for name in LEGACY_FOLDERS:
        if next(data_files(data_dir / name, PurePosixPath(name), []), None) is not None:
            return True
    return False


def read_journal(data_dir: Path) -> AdoptionJournal | None:
    return read_json_or_none(
        journal_path(data_dir), AdoptionJournal, corrupt_dir=data_dir / CORRUPT_DIR_NAME
    )


def adopt_single_user_data(
    data_dir: Path, user: User, owner: User | None = None, lock_wait_s: float = LOCK_WAIT_S
) -> AdoptionResult:
    """Move the single-user data to ``owner`` (default: ``user``), once.

    ``user`` must be allowed to adopt data (admins; ``PermissionDenied`` and an audit
    entry otherwise). When an earlier run was interrupted, it is finished for the owner
    that run named, which the result's ``owner_id`` says. Fast when there is nothing to
    do: a finished journal, or no single-user folders.
    """
    AuditLog(data_dir).check(user, Action.ADOPT_DATA, "single-user data")
    owner = owner or user
    if owner.is_local:
        raise BadInput(
            "the local operator already owns the single-user data",
            hint="name a user who has signed in: `python cli.py auth adopt --user WHO`",
        )
    journal = read_journal(data_dir)
    if journal is not None and journal.finished_at is not None:
        return AdoptionResult(owner_id=journal.owner_id, already_adopted=True)
    if journal is None and not legacy_data_present(data_dir):
        return AdoptionResult(owner_id=owner.user_id)
    lock_file = users_dir(data_dir) / LOCKS_DIR_NAME / "adoption.lock"
    _make_folder(lock_file.parent)
    with holding_lock(lock_file, journal_path(data_dir), timeout=lock_wait_s):
        return _adopt_holding_lock(data_dir, user, owner)


def _adopt_holding_lock(data_dir: Path, user: User, owner: User) -> AdoptionResult:
    journal = read_journal(data_dir)  # again: another adopter may have finished meanwhile
    if journal is not None and journal.finished_at is not None:
        return AdoptionResult(owner_id=journal.owner_id, already_adopted=True)
    if journal is None:
        if not legacy_data_present(data_dir):
            return AdoptionResult(owner_id=owner.user_id)
        _refuse_other_file_system(data_dir)
        journal = AdoptionJournal(
            owner_id=owner.user_id,
            owner=owner.label,
            started_by=user.user_id,
            started_at=utc_now_iso(),
        )
        atomic_write_json(journal_path(data_dir), journal)
    result = _move_everything(data_dir, journal.owner_id)
    _copy_defaults(data_dir, journal.owner_id)
    finished = journal.model_copy(update={"finished_at": utc_now_iso()})
    atomic_write_json(journal_path(data_dir), finished)
    AuditLog(data_dir).record(user, EVENT, journal.owner_id, detail=_summary(result))
    return result


def _move_everything(data_dir: Path, owner_id: str) -> AdoptionResult:
    mover = FolderMover(user_root_by_id(data_dir, owner_id))
    for name in LEGACY_FOLDERS:
        mover.move_folder(data_dir / name, name)
    mover.make_durable()  # before the journal says finished
    for name in LEGACY_FOLDERS:
        remove_lock_files_and_empty_folders(data_dir / name)
    return AdoptionResult(
        owner_id=owner_id,
        moved=tuple(mover.moved),
        already_there=tuple(mover.already_there),
        conflicts=tuple(mover.conflicts),
        left_in_place=tuple(mover.left_in_place),
    )


def _copy_defaults(data_dir: Path, owner_id: str) -> None:
    """The single-user defaults for the owner, unless they have their own (a resumed run
    finds the copy it made). A damaged file is set aside as on any read: nothing to copy."""
    source = data_dir / SETTINGS_FILE_NAME
    target = user_root_by_id(data_dir, owner_id) / SETTINGS_FILE_NAME
    if target.exists() or not source.is_file():
        return
    corrupt_dir = data_dir / CORRUPT_DIR_NAME
    defaults = read_json_or_none(source, PersonalSettings, corrupt_dir=corrupt_dir)
    if defaults is not None:
        atomic_write_json(target, defaults)


def _refuse_other_file_system(data_dir: Path) -> None:
    """A rename cannot cross file systems, and copying is not crash-safe: refuse before
    anything is written when a single-user folder is mounted elsewhere."""
    target_device = os.stat(users_dir(data_dir)).st_dev
    for name in LEGACY_FOLDERS:
        folder = data_dir / name
        if folder.is_dir() and os.stat(folder).st_dev != target_device:
            raise StorageError(
                f"{folder} is on another file system than {users_dir(data_dir)}: its files "
                "cannot be moved by renaming",
                hint="move the folder onto the data folder's file system (or mount "
                f"{users_dir(data_dir)} beside it), then retry",
            )


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create {folder}: {exc.strerror or exc}",
            hint="make the data folder writable by the user running the app",
        ) from exc


def _summary(result: AdoptionResult) -> str:
    return (
        f"{len(result.moved)} file(s) moved, {len(result.already_there)} already there, "
        f"{len(result.conflicts)} kept aside in conflict, {len(result.left_in_place)} "
        "left in place"
    )
