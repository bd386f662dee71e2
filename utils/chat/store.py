"""Persistent chat conversations: one JSON file per conversation.

Layout under ``root`` (the app's ``data_dir / "chats"``)::

    <conversation_id>.json        the conversation (atomic, whole-file writes)
    images/<sha256>.<ext>         attached images, once each (``utils.chat.images``)
    .locks/                       one lock file per conversation (``utils.chat.locks``)

The Chat page and ``cli.py chat`` save every turn as it happens, so a refresh or a
restart loses nothing. Image bytes never go into the conversation JSON.

Several writers may share a conversation (browser tabs, CLI commands). Each write is a
read-modify-write under the conversation's lock, so none is lost:

- ``append_messages`` (a question, an answer) re-reads the file and appends to what
  is there, keeping turns other writers added since the caller read it;
- ``save_edit`` (regenerate, edit and resend) replaces the turns only if nobody saved
  the conversation since the caller read it (``updated_at`` is the revision);
- ``save`` writes a conversation as given: for new ones and imports.

Names that reach a path are always ours: conversation ids are generated and checked
against ``CONVERSATION_ID_PATTERN``; image files are named by their hash.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from models.chat.types import GenerationParams
from utils.chat.conversation import (
    DEFAULT_TITLE,
    Conversation,
    ConversationSummary,
    StoredMessage,
    all_images,
    clean_title,
    is_conversation_id,
    new_conversation_id,
    now_iso,
    summarize,
    title_from_messages,
)
from utils.chat.images import ChatImages
from utils.chat.locks import (
    conversation_lock,
    remove_conversation_lock,
    remove_storage_lock_file,
)
from utils.documents.limits import DocumentLimits
from utils.errors import BadInput, StorageError
from utils.storage import CORRUPT_DIR_NAME, atomic_write_json, read_json_or_none

logger = logging.getLogger(__name__)

#: Unreferenced images younger than this survive a sweep: another tab may have attached
#: one and not yet saved the conversation that refers to it.
IMAGE_SWEEP_GRACE_S = 3600.0
#: Conversations whose last write a store remembers (see ``_LastWrites``).
_REMEMBERED_WRITES = 16


@dataclass(frozen=True, slots=True)
class _ScannedFile:
    """What ``list`` and the image sweep need from one conversation file."""

    identity: tuple[int, int, int]  # inode, mtime_ns, size: a rewrite changes it
    summary: ConversationSummary
    image_files: frozenset[str]


class ChatStore:
    """Conversations and their images under ``root``; safe to share between sessions."""

    def __init__(
        self,
        root: Path,
        limits: DocumentLimits,
        *,
        corrupt_dir: Path | None = None,
        image_sweep_grace_s: float = IMAGE_SWEEP_GRACE_S,
    ) -> None:
        self.root = Path(root)
        self.images = ChatImages(self.root / "images", limits)
        # Beside the other data files' .corrupt folder: <data_dir>/.corrupt.
        self.corrupt_dir = corrupt_dir or self.root.parent / CORRUPT_DIR_NAME
        self.image_sweep_grace_s = image_sweep_grace_s
        self._scan_cache: dict[str, _ScannedFile] = {}
        self._scan_lock = threading.Lock()
        self._last_writes = _LastWrites(_REMEMBERED_WRITES)

    # ----------------------------------------------------------------- reading

    def new(
        self,
        model_id: str | None,
        params: GenerationParams,
        system_prompt: str = "",
        title: str = DEFAULT_TITLE,
    ) -> Conversation:
        """A fresh, empty conversation; not written until its first turn is saved."""
        stamp = now_iso()
        return Conversation(
            id=new_conversation_id(),
            title=clean_title(title) or DEFAULT_TITLE,
            model_id=model_id,
            system_prompt=system_prompt,
            params=params,
            messages=[],
            created_at=stamp,
            updated_at=stamp,
        )

    def load(self, conversation_id: str) -> Conversation | None:
        """The stored conversation, or None when missing or corrupt (then moved aside)."""
        path = self._conversation_path(conversation_id)
        conversation = read_json_or_none(path, Conversation, self.corrupt_dir)
        if conversation is not None and conversation.id != conversation_id:
            # A file copied by hand under another name: the file name is the identity.
            conversation.id = conversation_id
        return conversation

    def list(self) -> list[ConversationSummary]:
        """Every readable conversation, most recently updated first.

        Files unchanged since the last call are not read again, so the sidebar can call
        this on every rerun. Corrupt files are moved aside and left out.
        """
        summaries = [scanned.summary for scanned in self._scan()]
        summaries.sort(key=lambda summary: (summary.updated_at, summary.id), reverse=True)
        return summaries

    # ----------------------------------------------------------------- writing

    def append_messages(
        self, conversation: Conversation, messages: Sequence[StoredMessage]
    ) -> None:
        """Add turns to the stored conversation without losing anyone else's.

        Under the conversation's lock the file is read again and ``messages`` appended
        to what it holds, so turns other tabs or commands saved since ``conversation``
        was read are kept. The settings (model, system prompt, sampling) are taken from
        ``conversation``; the title from the file (a rename elsewhere stays). A
        conversation not on disk yet is written with its own messages first.

        ``conversation`` is updated in place to what was stored: its messages then end
        with ``messages``.
        """
        with self._locked(conversation.id):
            base = self._stored(conversation.id) or conversation
            merged = conversation.model_copy(
                update={
                    "messages": [*base.messages, *messages],
                    "title": base.title,
                    "created_at": base.created_at,
                }
            )
            self._write(merged)
        conversation.messages = merged.messages
        conversation.title = merged.title
        conversation.created_at = merged.created_at
        conversation.updated_at = merged.updated_at

    def save_edit(self, edited: Conversation, base_revision: str) -> None:
        """Write an edited conversation (regenerate, edit and resend) as a whole, if the
        stored one is still at ``base_revision`` (the ``updated_at`` it was read with).

        Raises ``StorageError`` and changes nothing when another writer saved the
        conversation since, or deleted it: the edit was made on turns that are gone.
        """
        with self._locked(edited.id):
            current = self._stored(edited.id)
            if current is None:
                raise StorageError(
                    f"Conversation {edited.id} no longer exists.",
                    hint="It was deleted in another tab; start a new chat.",
                )
            if current.updated_at != base_revision:
                raise StorageError(
                    "This conversation changed since it was shown (another tab or "
                    "`cli.py chat` saved to it); nothing was changed.",
                    hint="Look at the latest turns, then regenerate or edit again.",
                )
            self._write(edited)

    def save(self, conversation: Conversation) -> None:
        """Write the conversation as given (a new one, an import); the last writer wins.

        Updates ``conversation`` in place: ``updated_at`` becomes now, and a title still
        at the default is taken from the first question's text. For a turn on a stored
        conversation use ``append_messages``, for an edit ``save_edit``.
        """
        with self._locked(conversation.id):
            self._write(conversation)

    def rename(self, conversation_id: str, title: str) -> None:
        """Give a stored conversation a new title (cleaned; empty is refused)."""
        cleaned = clean_title(title)
        if not cleaned:
            raise BadInput("The new title is empty.", hint="Type at least one visible character.")
        with self._locked(conversation_id):
            conversation = self._stored(conversation_id)
            if conversation is None:
                raise StorageError(
                    f"Conversation {conversation_id} does not exist or could not be read.",
                    hint="Reload the page; it may have been deleted in another tab.",
                )
            conversation.title = cleaned
            self._write(conversation)

    def delete(self, conversation_id: str) -> bool:
        """Remove a conversation; False if there was none. Then sweep unused images."""
        path = self._conversation_path(conversation_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(
                f"Cannot delete {path}: {exc.strerror or exc}",
                hint="Check the data folder's permissions.",
            ) from exc
        self._last_writes.forget(conversation_id)
        remove_storage_lock_file(path)
        remove_conversation_lock(self.root, conversation_id)
        try:
            self.sweep_images()
        except (OSError, StorageError) as exc:
            # The conversation is gone either way; leftover images go in a later sweep.
            logger.warning("image sweep after deleting %s failed: %s", conversation_id, exc)
        return True

    def sweep_images(self) -> int:
        """Delete stored images that no conversation refers to; return how many went.

        Images younger than the grace period are kept: another tab may have attached one
        and not yet saved the conversation that refers to it.
        """
        if not self.images.folder.is_dir():
            return 0
        referenced = frozenset().union(*(scanned.image_files for scanned in self._scan()))
        return self.images.sweep(referenced, self.image_sweep_grace_s)

    # ----------------------------------------------------------------- internals

    @contextmanager
    def _locked(self, conversation_id: str) -> Iterator[None]:
        self._conversation_path(conversation_id)  # checks the id before it names a lock file
        with conversation_lock(self.root, conversation_id):
            yield

    def _stored(self, conversation_id: str) -> Conversation | None:
        """The conversation as it is on disk now; the caller holds its lock."""
        path = self._conversation_path(conversation_id)
        return self._last_writes.recall(path, conversation_id) or self.load(conversation_id)

    def _write(self, conversation: Conversation) -> None:
        """Stamp and write; the caller holds the conversation's lock."""
        path = self._conversation_path(conversation.id)
        conversation.updated_at = now_iso()
        if conversation.title == DEFAULT_TITLE:
            conversation.title = title_from_messages(conversation.messages) or DEFAULT_TITLE
        self._last_writes.forget(conversation.id)  # a failed write leaves the file unknown
        atomic_write_json(path, conversation)
        self._last_writes.remember(path, conversation)

    def _conversation_path(self, conversation_id: str) -> Path:
        if not is_conversation_id(conversation_id):
            raise BadInput(
                f"{conversation_id!r:.80} is not a conversation id.",
                hint="Pick the conversation from the list instead.",
            )
        return self.root / f"{conversation_id}.json"

    def _scan(self) -> list[_ScannedFile]:
        """Read each conversation file that changed since the last scan; reuse the rest."""
        if not self.root.is_dir():
            return []
        with self._scan_lock:
            seen: dict[str, _ScannedFile] = {}
            for entry in os.scandir(self.root):
                conversation_id = _conversation_id_of_file(entry.name)
                if conversation_id is None:
                    continue
                scanned = self._scan_file(entry, conversation_id)
                if scanned is not None:
                    seen[entry.name] = scanned
            self._scan_cache = seen
            return list(seen.values())

    def _scan_file(self, entry: os.DirEntry[str], conversation_id: str) -> _ScannedFile | None:
        try:
            stat = entry.stat()
        except FileNotFoundError:  # deleted since scandir listed it
            return None
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._scan_cache.get(entry.name)
        if cached is not None and cached.identity == identity:
            return cached
        conversation = self.load(conversation_id)
        if conversation is None:
            return None
        return _ScannedFile(
            identity=identity,
            summary=summarize(conversation),
            image_files=frozenset(image.file_name for image in all_images(conversation)),
        )


class _LastWrites:
    """What this store last wrote to the conversation files it wrote most recently.

    A turn is appended to the file as it is on disk. When that file is still the one
    this store wrote (same inode, modification time and size: every write replaces the
    file, so a write by anyone else changes the inode), it is the remembered copy, and
    reading and validating the whole file again is skipped.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._written: OrderedDict[str, tuple[tuple[int, int, int], Conversation]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, path: Path, conversation: Conversation) -> None:
        identity = _file_identity(path)
        if identity is None:
            return
        # Copies of the messages: the caller keeps and may change its own objects.
        messages = [message.model_copy() for message in conversation.messages]
        copy = conversation.model_copy(update={"messages": messages})
        with self._lock:
            self._written[conversation.id] = (identity, copy)
            self._written.move_to_end(conversation.id)
            while len(self._written) > self._capacity:
                self._written.popitem(last=False)

    def recall(self, path: Path, conversation_id: str) -> Conversation | None:
        """The remembered copy if ``path`` is unchanged since; handed out once."""
        with self._lock:
            remembered = self._written.pop(conversation_id, None)
        if remembered is None or remembered[0] != _file_identity(path):
            return None
        return remembered[1]

    def forget(self, conversation_id: str) -> None:
        with self._lock:
            self._written.pop(conversation_id, None)


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _conversation_id_of_file(file_name: str) -> str | None:
    stem, dot, suffix = file_name.rpartition(".")
    return stem if dot and suffix == "json" and is_conversation_id(stem) else None
