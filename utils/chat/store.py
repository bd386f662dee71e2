"""Persistent chat conversations: one JSON file per conversation, images stored once by hash.

Layout under ``root`` (the app's ``data_dir / "chats"``)::

    <conversation_id>.json        the conversation (atomic, whole-file writes)
    images/<sha256>.<ext>         each attached image's original bytes, once

The Chat page keeps the active conversation in session state and calls ``save`` after
every turn, so a refresh or restart loses nothing. Image bytes never go into the
conversation JSON (only into an explicit ``export_json`` download).

Names that reach a path are always ours: conversation ids are generated and checked
against ``CONVERSATION_ID_PATTERN``, image files are named by their hash and a fixed
extension. An uploaded file's name is display text only, sanitised.

Two browser tabs may save the same conversation: the last writer wins, and the file is
always whole (``utils.storage`` writes through a temp file under a lock).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.chat.types import GenerationParams, PromptMessage, Usage
from utils.documents.loader import DocumentLimits, load_document, sanitize_filename
from utils.errors import BadInput, StorageError
from utils.storage import (
    CORRUPT_DIR_NAME,
    VersionedRecord,
    atomic_write_bytes,
    atomic_write_json,
    read_json_or_none,
)

logger = logging.getLogger(__name__)

#: A generated conversation id: UTC time to the second, then 48 random bits.
CONVERSATION_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{12}$"
_CONVERSATION_ID_RE = re.compile(CONVERSATION_ID_PATTERN)
_SHA256_PATTERN = r"^[0-9a-f]{64}$"

DEFAULT_TITLE = "New chat"
_AUTO_TITLE_CHARS = 60
_TITLE_MAX_CHARS = 120

ImageExt = Literal["png", "jpg", "webp", "bmp", "gif", "tiff"]
# Magic bytes -> extension. load_document has already accepted the bytes as an image,
# so one of these matches; the extension comes from the content, never the file name.
_EXT_BY_MAGIC: tuple[tuple[bytes, ImageExt], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
_IMAGE_FILE_RE = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp|bmp|gif|tiff)$")

#: Unreferenced images younger than this survive a sweep: another tab may have attached
#: one (``add_image``) and not yet saved the conversation that refers to it.
IMAGE_SWEEP_GRACE_S = 3600.0
#: Decoded images kept in memory, by bytes of RGB pixels: ``to_prompt`` runs every turn
#: and would otherwise decode every photo of the conversation again each time.
_IMAGE_CACHE_BYTES = 128 * 1024 * 1024

EXPORT_FORMAT = "chatvlmllm-conversation"
EXPORT_FORMAT_VERSION = 1
#: Largest conversation file ``import_json`` accepts (base64 images included).
DEFAULT_MAX_IMPORT_MB = 200.0

# Bidi controls can reorder how a title reads; control characters break one-line display.
_BIDI_MARKS = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def now_iso() -> str:
    """The current UTC time as ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --------------------------------------------------------------------------- models


class StoredImage(BaseModel):
    """An attached image: its bytes live in ``images/<sha256>.<ext>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=_SHA256_PATTERN)
    ext: ImageExt
    width: int = Field(ge=1)  # upright (EXIF applied), before any downscaling
    height: int = Field(ge=1)
    name: str = Field(max_length=200)  # sanitised display name, never a path

    @property
    def file_name(self) -> str:
        return f"{self.sha256}.{self.ext}"


class StoredMessage(BaseModel):
    """One turn as stored: text, attached images, and for answers what they cost."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    text: str
    images: list[StoredImage] = Field(default_factory=list)
    usage: Usage | None = None
    interrupted: bool = False  # the user stopped the answer; its text is partial
    error: str | None = None  # the answer failed; text holds what came before
    created_at: str = Field(default_factory=now_iso)


class Conversation(VersionedRecord):
    """A whole conversation, as saved in ``<root>/<id>.json``."""

    SCHEMA_VERSION: ClassVar[int] = 1

    id: str = Field(pattern=CONVERSATION_ID_PATTERN)
    title: str = Field(min_length=1, max_length=_TITLE_MAX_CHARS)
    model_id: str | None
    system_prompt: str = ""
    params: GenerationParams
    messages: list[StoredMessage] = Field(default_factory=list)
    created_at: str
    updated_at: str


class ConversationSummary(BaseModel):
    """What the conversation list shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    model_id: str | None
    updated_at: str
    turns: int  # questions asked


@dataclass(frozen=True, slots=True)
class _ScannedFile:
    """What ``list`` and the image sweep need from one conversation file."""

    identity: tuple[int, int, int]  # inode, mtime_ns, size: a rewrite changes it
    summary: ConversationSummary
    image_files: frozenset[str]


# --------------------------------------------------------------------------- the store


class ChatStore:
    """Conversations and their images under ``root``; safe to share between sessions."""

    def __init__(
        self,
        root: Path,
        limits: DocumentLimits,
        *,
        corrupt_dir: Path | None = None,
        max_import_mb: float = DEFAULT_MAX_IMPORT_MB,
        image_sweep_grace_s: float = IMAGE_SWEEP_GRACE_S,
    ) -> None:
        self.root = Path(root)
        self.images_dir = self.root / "images"
        # Beside the other data files' .corrupt folder: <data_dir>/.corrupt.
        self.corrupt_dir = corrupt_dir or self.root.parent / CORRUPT_DIR_NAME
        self.limits = limits
        self.max_import_mb = max_import_mb
        self.image_sweep_grace_s = image_sweep_grace_s
        self._scan_cache: dict[str, _ScannedFile] = {}
        self._scan_lock = threading.Lock()
        self._images = _DecodedImageCache(_IMAGE_CACHE_BYTES)

    # ----------------------------------------------------------------- conversations

    def new(
        self,
        model_id: str | None,
        params: GenerationParams,
        system_prompt: str = "",
        title: str = DEFAULT_TITLE,
    ) -> Conversation:
        """A fresh, empty conversation; not written until the first ``save``."""
        stamp = now_iso()
        return Conversation(
            id=new_conversation_id(),
            title=clean_title(title, _TITLE_MAX_CHARS) or DEFAULT_TITLE,
            model_id=model_id,
            system_prompt=system_prompt,
            params=params,
            messages=[],
            created_at=stamp,
            updated_at=stamp,
        )

    def save(self, conversation: Conversation) -> None:
        """Write the conversation atomically.

        Updates ``conversation`` in place: ``updated_at`` becomes now, and a title still
        at the default is taken from the first question's text.
        """
        path = self._conversation_path(conversation.id)
        conversation.updated_at = now_iso()
        if conversation.title == DEFAULT_TITLE:
            conversation.title = _title_from_messages(conversation.messages) or DEFAULT_TITLE
        atomic_write_json(path, conversation)

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

    def rename(self, conversation_id: str, title: str) -> None:
        """Give a stored conversation a new title (cleaned; empty is refused)."""
        cleaned = clean_title(title, _TITLE_MAX_CHARS)
        if not cleaned:
            raise BadInput("The new title is empty.", hint="Type at least one visible character.")
        conversation = self.load(conversation_id)
        if conversation is None:
            raise StorageError(
                f"Conversation {conversation_id} does not exist or could not be read.",
                hint="Reload the page; it may have been deleted in another tab.",
            )
        conversation.title = cleaned
        self.save(conversation)

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
        _remove_lock_file(path)
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
        if not self.images_dir.is_dir():
            return 0
        referenced = frozenset().union(*(scanned.image_files for scanned in self._scan()))
        cutoff = time.time() - self.image_sweep_grace_s
        removed = 0
        for entry in os.scandir(self.images_dir):
            if not _IMAGE_FILE_RE.fullmatch(entry.name) or entry.name in referenced:
                continue
            try:
                if entry.stat().st_mtime > cutoff:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:  # a sweep in another session got there first
                continue
            _remove_lock_file(Path(entry.path))
            self._images.forget(entry.name)
            removed += 1
        if removed:
            logger.info("removed %d chat image(s) no conversation refers to", removed)
        return removed

    # ----------------------------------------------------------------- images

    def add_image(self, data: bytes, filename: str) -> StoredImage:
        """Validate an uploaded image and store its bytes once, by hash.

        Refuses PDFs and multi-page TIFFs (those belong on the OCR page) and anything
        ``load_document`` refuses: wrong type, too big, too many pixels, undecodable.
        """
        document = load_document(data, filename, self.limits)
        if document.kind != "image":
            raise BadInput(
                f"{document.name} is a PDF; the chat takes images only.",
                hint="Attach images, or use the OCR page for PDFs.",
            )
        if document.page_count != 1:
            raise BadInput(
                f"{document.name} has {document.page_count} pages; the chat takes single images.",
                hint="Attach the pages as separate images, or use the OCR page for documents.",
            )
        page = next(document.pages())  # decodes it all: a damaged file fails here, not later
        width, height = page.original_size
        stored = StoredImage(
            sha256=document.sha256,
            ext=_image_extension(data),
            width=width,
            height=height,
            name=document.name,
        )
        self._write_image_once(stored, data)
        self._images.put(stored.file_name, page.image)
        return stored

    def load_image(self, image: StoredImage) -> Image.Image:
        """The stored image as upright RGB, within the pixel budget of ``limits``."""
        cached = self._images.get(image.file_name)
        if cached is not None:
            return cached
        path = self.images_dir / image.file_name
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(
                f"The image {image.name} of this conversation is missing ({path}).",
                hint="Its file was removed; delete or edit the turn that attached it.",
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"Cannot read the image {image.name} ({path}): {exc.strerror or exc}",
                hint="Check the data folder's permissions.",
            ) from exc
        decoded = next(load_document(data, image.name, self.limits).pages()).image
        self._images.put(image.file_name, decoded)
        return decoded.copy()

    def to_prompt(self, conversation: Conversation, upto: int | None = None) -> list[PromptMessage]:
        """The conversation as a model sees it: system prompt, then turns with images.

        ``upto`` limits it to ``messages[:upto]``. Interrupted partial answers stay in
        the context; answers with no text (failed before the first token) are left out,
        and the questions around them merged, since some chat templates insist that
        user and assistant turns alternate.
        """
        prompt: list[PromptMessage] = []
        if conversation.system_prompt.strip():
            prompt.append(PromptMessage(role="system", content=[conversation.system_prompt]))
        for message in conversation.messages[:upto]:
            if message.role == "assistant" and not message.text.strip():
                continue
            content = self._message_content(message)
            if prompt and prompt[-1].role == message.role:
                prompt[-1].content.extend(content)
            else:
                prompt.append(PromptMessage(role=message.role, content=content))
        return prompt

    def _message_content(self, message: StoredMessage) -> list[str | Image.Image]:
        # Images before the text: the order VLM chat templates are trained on.
        content: list[str | Image.Image] = [self.load_image(image) for image in message.images]
        if message.text or not content:
            content.append(message.text)
        return content

    # ----------------------------------------------------------------- export / import

    def export_json(self, conversation: Conversation) -> bytes:
        """A portable file: the conversation plus its images embedded as base64."""
        images: dict[str, dict[str, str]] = {}
        for image in _all_images(conversation):
            if image.sha256 not in images:
                images[image.sha256] = {
                    "ext": image.ext,
                    "data": base64.b64encode(self._image_bytes(image)).decode("ascii"),
                }
        document = {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_FORMAT_VERSION,
            "conversation": {
                **conversation.model_dump(mode="json"),
                "schema_version": Conversation.SCHEMA_VERSION,
            },
            "images": images,
        }
        return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")

    def import_json(self, data: bytes, filename: str = "conversation.json") -> Conversation:
        """Read an ``export_json`` file into a new, saved conversation with a new id.

        Everything is checked before anything is stored: size, format, schema, and that
        each embedded image matches its hash; then each image goes through ``add_image``.
        """
        name = sanitize_filename(filename)
        raw = _parse_export(data, name, self.max_import_mb)
        conversation = _validate_imported(raw["conversation"], name)
        image_bytes = _decode_embedded_images(raw.get("images"), conversation, name)
        stored: dict[str, StoredImage] = {}
        for image in _all_images(conversation):
            if image.sha256 not in stored:
                stored[image.sha256] = self.add_image(image_bytes[image.sha256], image.name)
        for message in conversation.messages:
            # Size and format come from the bytes, not from what the file claims.
            message.images = [
                stored[image.sha256].model_copy(update={"name": sanitize_filename(image.name)})
                for image in message.images
            ]
        conversation.title = clean_title(conversation.title, _TITLE_MAX_CHARS) or DEFAULT_TITLE
        self.save(conversation)
        return conversation

    def export_markdown(self, conversation: Conversation) -> str:
        """A readable transcript; images by name, texts as they are (a download)."""
        params = conversation.params
        lines = [
            f"# {conversation.title}",
            "",
            f"- Model: {conversation.model_id or '(none)'}",
            f"- Created: {conversation.created_at}",
            f"- Updated: {conversation.updated_at}",
            f"- Settings: max_new_tokens={params.max_new_tokens}, "
            f"temperature={params.temperature:g}, top_p={params.top_p:g}",
            "",
        ]
        if conversation.system_prompt.strip():
            lines += ["## System prompt", "", conversation.system_prompt, ""]
        for message in conversation.messages:
            lines += _markdown_turn(message)
        return "\n".join(lines).rstrip("\n") + "\n"

    # ----------------------------------------------------------------- internals

    def _conversation_path(self, conversation_id: str) -> Path:
        if not is_conversation_id(conversation_id):
            raise BadInput(
                f"{conversation_id!r:.80} is not a conversation id.",
                hint="Pick the conversation from the list instead.",
            )
        return self.root / f"{conversation_id}.json"

    def _write_image_once(self, image: StoredImage, data: bytes) -> None:
        path = self.images_dir / image.file_name
        try:
            # Already stored: refresh its age so a concurrent sweep's grace period covers it.
            os.utime(path)
            return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(
                f"Cannot update {path}: {exc.strerror or exc}",
                hint="Check the data folder's permissions.",
            ) from exc
        atomic_write_bytes(path, data)

    def _image_bytes(self, image: StoredImage) -> bytes:
        path = self.images_dir / image.file_name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StorageError(
                f"Cannot read the image {image.name} ({path}): {exc.strerror or exc}",
                hint="Its file is missing or unreadable; the conversation cannot be exported.",
            ) from exc

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
            image_files=frozenset(image.file_name for image in _all_images(conversation)),
        )


# --------------------------------------------------------------------------- pure helpers


def new_conversation_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(6)}"


def is_conversation_id(text: object) -> bool:
    """Whether ``text`` has the form of a generated id (safe to use in a path)."""
    return isinstance(text, str) and _CONVERSATION_ID_RE.fullmatch(text) is not None


def summarize(conversation: Conversation) -> ConversationSummary:
    return ConversationSummary(
        id=conversation.id,
        title=conversation.title,
        model_id=conversation.model_id,
        updated_at=conversation.updated_at,
        turns=sum(message.role == "user" for message in conversation.messages),
    )


def clean_title(text: str, max_chars: int) -> str:
    """``text`` on one line, without control or bidi characters, at most ``max_chars``."""
    one_line = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text))
    visible = "".join(ch for ch in one_line if _is_visible_in_title(ch)).strip()
    if len(visible) <= max_chars:
        return visible
    return visible[: max_chars - 1].rstrip() + "…"


def _is_visible_in_title(ch: str) -> bool:
    return ch not in _BIDI_MARKS and unicodedata.category(ch) not in ("Cc", "Cs")


def last_user_index(conversation: Conversation) -> int | None:
    """Index of the last question, or None when nothing has been asked."""
    for index in range(len(conversation.messages) - 1, -1, -1):
        if conversation.messages[index].role == "user":
            return index
    return None


def truncate_for_regenerate(conversation: Conversation) -> Conversation:
    """A copy ending at the last question, its answer dropped, ready to answer again."""
    index = _require_question(conversation, "regenerate")
    return _with_messages(conversation, slice(0, index + 1))


def drop_last_turn(conversation: Conversation) -> Conversation:
    """A copy without the last question and its answer."""
    index = _require_question(conversation, "edit")
    return _with_messages(conversation, slice(0, index))


def replace_last_question(conversation: Conversation, text: str) -> Conversation:
    """A copy whose last question has the new ``text`` (same images) and no answer yet.

    The result ends with the edited question: the caller streams a new answer and must
    not append the question again.
    """
    index = _require_question(conversation, "edit")
    edited = _with_messages(conversation, slice(0, index + 1))
    edited.messages[-1].text = text
    edited.messages[-1].created_at = now_iso()
    return edited


def _with_messages(conversation: Conversation, keep: slice) -> Conversation:
    # A deep copy, so the page can change the result's messages without touching the
    # conversation it came from (which may still be shown or saved).
    copy = conversation.model_copy(deep=True)
    copy.messages = copy.messages[keep]
    return copy


def _require_question(conversation: Conversation, action: str) -> int:
    index = last_user_index(conversation)
    if index is None:
        raise BadInput(
            f"There is no question to {action} in this conversation.",
            hint="Ask a question first.",
        )
    return index


def _title_from_messages(messages: list[StoredMessage]) -> str:
    for message in messages:
        if message.role == "user":
            title = clean_title(message.text, _AUTO_TITLE_CHARS)
            if title:
                return title
    return ""


def _all_images(conversation: Conversation) -> list[StoredImage]:
    return [image for message in conversation.messages for image in message.images]


def _conversation_id_of_file(file_name: str) -> str | None:
    stem, dot, suffix = file_name.rpartition(".")
    return stem if dot and suffix == "json" and is_conversation_id(stem) else None


def _image_extension(data: bytes) -> ImageExt:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _EXT_BY_MAGIC:
        if data.startswith(magic):
            return ext
    # load_document accepts only these signatures; reaching here is a bug, not bad input.
    raise AssertionError("image bytes with no known signature passed load_document")


def _remove_lock_file(path: Path) -> None:
    # utils.storage leaves <file>.lock behind; without this, every deleted conversation
    # and image would leave one. Removing it can at worst let two writers of a file that
    # is being deleted overlap, and both write whole files.
    try:
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
    except OSError as exc:
        logger.debug("could not remove the lock file of %s: %s", path, exc)


def _markdown_turn(message: StoredMessage) -> list[str]:
    speaker = "You" if message.role == "user" else "Assistant"
    lines = [f"## {speaker} ({message.created_at})", ""]
    lines += [f"[image: {image.name}, {image.width}×{image.height}]" for image in message.images]
    if message.images:
        lines.append("")
    if message.text:
        lines += [message.text, ""]
    if message.interrupted:
        lines += ["*(stopped before the answer was complete)*", ""]
    if message.error:
        lines += [f"*(failed: {message.error})*", ""]
    if message.usage is not None:
        lines += [_usage_line(message.usage), ""]
    return lines


def _usage_line(usage: Usage) -> str:
    parts = [f"{usage.model_id} via {usage.backend}"]
    if usage.completion_tokens is not None:
        parts.append(f"{usage.completion_tokens} tokens")
    parts.append(f"{usage.seconds:.1f} s")
    return "*" + ", ".join(parts) + "*"


# --------------------------------------------------------------------------- import checks


def _parse_export(data: bytes, name: str, max_mb: float) -> dict[str, Any]:
    if len(data) > max_mb * 1024 * 1024:
        raise BadInput(
            f"{name} is {len(data) / 1024 / 1024:.1f} MB, over the import limit of {max_mb:g} MB.",
            hint="Import a smaller conversation export.",
        )
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadInput(
            f"{name} is not a JSON file.", hint="Import a file made by “Export conversation”."
        ) from exc
    if not isinstance(raw, dict) or raw.get("format") != EXPORT_FORMAT:
        raise BadInput(
            f"{name} is not a conversation export of this app.",
            hint="Import a file made by “Export conversation”.",
        )
    if raw.get("format_version") != EXPORT_FORMAT_VERSION:
        raise BadInput(
            f"{name} has export format version {raw.get('format_version')!r:.20}; "
            f"this app reads version {EXPORT_FORMAT_VERSION}.",
            hint="Export it again with this version of the app.",
        )
    return raw


def _validate_imported(raw: Any, name: str) -> Conversation:
    if not isinstance(raw, dict):
        raise BadInput(f"{name} holds no conversation.", hint="The file is damaged; export again.")
    version = raw.get("schema_version")
    if version != Conversation.SCHEMA_VERSION:
        raise BadInput(
            f"{name} holds a conversation of schema version {version!r:.20}; "
            f"this app reads version {Conversation.SCHEMA_VERSION}.",
            hint="Export it again with this version of the app.",
        )
    # The id in the file is ignored: an import always becomes a new conversation.
    try:
        return Conversation.model_validate({**raw, "id": new_conversation_id()})
    except ValidationError as exc:
        raise BadInput(
            f"{name} does not hold a valid conversation ({_describe_errors(exc)}).",
            hint="The file is damaged or was edited by hand; export it again.",
        ) from exc


def _decode_embedded_images(
    raw_images: Any, conversation: Conversation, name: str
) -> dict[str, bytes]:
    """The bytes of every image the conversation refers to, each checked against its hash."""
    if not isinstance(raw_images, dict):
        raise BadInput(f"{name} has no image section.", hint="The file is damaged; export again.")
    decoded: dict[str, bytes] = {}
    for image in _all_images(conversation):
        if image.sha256 in decoded:
            continue
        entry = raw_images.get(image.sha256)
        blob = _decode_base64(entry.get("data") if isinstance(entry, dict) else None)
        if blob is None:
            raise BadInput(
                f"{name} lacks the image {image.name} that the conversation refers to.",
                hint="The file is incomplete or was edited by hand; export it again.",
            )
        if hashlib.sha256(blob).hexdigest() != image.sha256:
            raise BadInput(
                f"The image {image.name} in {name} does not match its checksum.",
                hint="The file was altered or damaged; export it again.",
            )
        decoded[image.sha256] = blob
    return decoded


def _decode_base64(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _describe_errors(exc: ValidationError) -> str:
    # Field paths and messages only: str(exc) would quote the file's content.
    parts = [
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors()[:3]
    ]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; {more} more" if more else "")


# --------------------------------------------------------------------------- image cache


class _DecodedImageCache:
    """Recently decoded images, least recently used dropped first; hands out copies."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Image.Image | None:
        with self._lock:
            image = self._images.get(key)
            if image is None:
                return None
            self._images.move_to_end(key)
        # A copy: callers (backends) may resize or draw on what they get.
        return image.copy()

    def put(self, key: str, image: Image.Image) -> None:
        size = _pixel_bytes(image)
        if size > self._max_bytes:
            return
        with self._lock:
            self._drop(key)
            self._images[key] = image
            self._bytes += size
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._images)))

    def forget(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        image = self._images.pop(key, None)
        if image is not None:
            self._bytes -= _pixel_bytes(image)


def _pixel_bytes(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())
