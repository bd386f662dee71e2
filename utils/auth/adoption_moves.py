"""Moving a folder's data files into another folder so that a kill at any point, then a
re-run, ends with every file exactly once at the target.

Each file goes by one ``os.rename`` within the file system, never a copy and a delete:
at every instant a file is at exactly one of its two places (a backup taken mid-way
holds everything). Each step can be repeated: a name already taken at the target by
the same bytes means an earlier run (or the user) has it there, so the source is
removed; taken by other bytes, the source goes to ``adoption-conflicts/`` under the
target's owner folder (numbered when that name is taken too) and is reported. Nothing
is overwritten.

Lock files (``.locks/``) are no data and stay; so do a killed writer's temp files and
anything that is not a regular file (a symbolic link is never followed).
"""

from __future__ import annotations

import filecmp
import os
import stat
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path, PurePosixPath
from typing import Literal

from utils.errors import StorageError
from utils.storage import fsync_dir, temp_target
from utils.storage.locks import LOCKS_DIR_NAME

#: Folder, in the owner's folder, for files whose name the owner already used for
#: other bytes.
CONFLICTS_DIR_NAME = "adoption-conflicts"

Placed = Literal["moved", "same", "taken"]


class FolderMover:
    """Moves the data files of legacy folders under ``owner_root`` and records each outcome.

    Paths are reported relative to ``owner_root`` (the same relative path the file had
    under the data folder), ``/``-separated.
    """

    def __init__(self, owner_root: Path) -> None:
        self.owner_root = owner_root
        self.moved: list[str] = []
        self.already_there: list[str] = []
        self.conflicts: list[str] = []
        self.left_in_place: list[str] = []
        self._touched: set[Path] = set()

    def move_folder(self, source_root: Path, name: str) -> None:
        """Move every data file under ``source_root`` to ``owner_root/name``."""
        for source, relative in data_files(source_root, PurePosixPath(name), self.left_in_place):
            self._move(source, relative)

    def make_durable(self) -> None:
        """fsync every folder a rename or removal changed: the renames survive power loss."""
        for folder in sorted(self._touched):
            _fsync_if_present(folder)

    def _move(self, source: Path, relative: PurePosixPath) -> None:
        target = self.owner_root / relative
        placed = self._place(source, target)
        if placed == "moved":
            self.moved.append(str(relative))
        elif placed == "same":
            self.already_there.append(str(relative))
        else:
            self.conflicts.append(self._keep_aside(source, relative))

    def _keep_aside(self, source: Path, relative: PurePosixPath) -> str:
        """Put ``source`` under ``adoption-conflicts/`` at the first free (or identical) name."""
        number = 0
        while True:
            kept = PurePosixPath(CONFLICTS_DIR_NAME) / _numbered(relative, number)
            if self._place(source, self.owner_root / kept) != "taken":
                return str(kept)
            number += 1

    def _place(self, source: Path, target: Path) -> Placed:
        """One idempotent step: rename ``source`` to a free ``target``, or drop it when
        ``target`` holds the same bytes; ``taken`` when it holds something else."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._touched.update({source.parent, target.parent})
            if not os.path.lexists(target):
                os.rename(source, target)
                return "moved"
            if _same_bytes(source, target):
                os.unlink(source)
                return "same"
            return "taken"
        except OSError as exc:
            raise _move_failed(source, target, exc) from exc


def data_files(
    root: Path, relative_root: PurePosixPath, left_in_place: list[str]
) -> Iterator[tuple[Path, PurePosixPath]]:
    """The regular files under ``root`` (sorted; not in ``.locks/``, no temp files), each
    with its path relative to ``root``'s parent; what is skipped goes to ``left_in_place``.
    A missing ``root`` has none; an unreadable folder raises ``StorageError``."""
    for folder, subfolders, files in os.walk(root, onerror=_raise_unless_missing(root)):
        here = Path(folder)
        relative_here = relative_root / here.relative_to(root).as_posix()
        subfolders[:] = _walkable(here, sorted(subfolders), relative_here, left_in_place)
        for name in sorted(files):
            if _is_data_file(here / name):
                yield here / name, relative_here / name
            else:
                left_in_place.append(str(relative_here / name))


def remove_lock_files_and_empty_folders(root: Path) -> None:
    """Tidy a folder whose data moved away: its lock files go, then every empty folder
    (``root`` included). Anything else stays, and so do the folders holding it."""
    for folder, _, files in os.walk(root, topdown=False):
        here = Path(folder)
        if here.name == LOCKS_DIR_NAME:
            for name in files:
                if name.endswith(".lock"):
                    with suppress(OSError):
                        os.unlink(here / name)
        with suppress(OSError):  # not empty (data a writer added, a temp file), or gone
            os.rmdir(here)


def _walkable(
    folder: Path, names: list[str], relative: PurePosixPath, left_in_place: list[str]
) -> list[str]:
    """The subfolders to walk into: real folders only, lock folders skipped."""
    keep = []
    for name in names:
        if name == LOCKS_DIR_NAME:
            continue
        if (folder / name).is_symlink():
            left_in_place.append(str(relative / name))
            continue
        keep.append(name)
    return keep


def _is_data_file(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:  # removed since the folder was listed
        return False
    return stat.S_ISREG(mode) and temp_target(path.name) is None


def _same_bytes(source: Path, target: Path) -> bool:
    if not stat.S_ISREG(target.lstat().st_mode):
        return False
    return filecmp.cmp(source, target, shallow=False)


def _numbered(relative: PurePosixPath, number: int) -> PurePosixPath:
    if number == 0:
        return relative
    return relative.with_name(f"{relative.stem}.{number}{relative.suffix}")


def _fsync_if_present(folder: Path) -> None:
    try:
        fsync_dir(folder)
    except FileNotFoundError:  # an emptied folder removed by the tidy-up
        pass
    except OSError as exc:
        raise StorageError(
            f"cannot make the moves in {folder} durable: {exc.strerror or exc}",
            hint="check the disk; running the adoption again finishes it",
        ) from exc


def _raise_unless_missing(root: Path):
    def on_error(exc: OSError) -> None:
        missing = isinstance(exc, FileNotFoundError | NotADirectoryError)
        if missing and Path(exc.filename or "") == root:  # no such folder: no data in it
            return
        raise StorageError(
            f"cannot read {exc.filename}: {exc.strerror or exc}",
            hint="make the data folder readable by the user running the app, then retry",
        ) from exc

    return on_error


def _move_failed(source: Path, target: Path, exc: OSError) -> StorageError:
    reason = exc.strerror or str(exc)
    return StorageError(
        f"cannot move {source} to {target}: {reason}",
        hint="fix the cause and run the adoption again: files already moved stay moved, "
        "the rest follows; nothing is lost",
    )
