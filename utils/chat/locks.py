"""Lock files of the chat store.

A conversation file is rewritten whole (``utils.storage`` writes it atomically under
its own per-file lock). That lock covers one write, not a read-modify-write: two
processes that each read the conversation, add their turn and write it back would keep
only the last writer's turn. ``conversation_lock`` is held around the whole
read-modify-write instead, so each writer re-reads what the one before it wrote.

The lock files live in ``<root>/.locks/`` with the storage layer's, out of sight of the
conversation list; the storage layer's own lock is taken inside this one, never the
other way round.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.storage import holding_lock, lock_path_for

logger = logging.getLogger(__name__)


def conversation_lock_path(root: Path, conversation_id: str) -> Path:
    # Beside the storage layer's own lock of <id>.json (.locks/<id>.json.lock), never it:
    # that one is taken inside this one by every write.
    storage_lock = lock_path_for(root / f"{conversation_id}.json")
    return storage_lock.with_name(f"{conversation_id}.conversation.lock")


@contextmanager
def conversation_lock(root: Path, conversation_id: str) -> Iterator[None]:
    """Hold the lock of one conversation for a read-modify-write of its file.

    Raises ``StorageError`` when another writer keeps it too long, or when the folder
    is not writable (the message names it).
    """
    lock_file = conversation_lock_path(root, conversation_id)
    with holding_lock(lock_file, root / f"{conversation_id}.json"):
        yield


def remove_conversation_lock(root: Path, conversation_id: str) -> None:
    """Remove a deleted conversation's lock file (at worst a writer racing the delete
    recreates the conversation, as it would without the lock)."""
    _unlink_quietly(conversation_lock_path(root, conversation_id))


def remove_storage_lock_file(path: Path) -> None:
    """Remove the lock file ``utils.storage`` keeps for a deleted data file ``path``.

    Without this, every deleted conversation and image would leave one. Removing it can
    at worst let two writers of a file that is being deleted overlap, and both write
    whole files.
    """
    _unlink_quietly(lock_path_for(path))


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.debug("could not remove the lock file %s: %s", path, exc)
