"""Conversation records and the pure operations on them: ids, titles, turn edits.

Nothing here touches a file: ``utils.chat.store`` reads and writes these records,
``utils.chat.images`` keeps the image bytes a ``StoredImage`` refers to.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.chat.types import GenerationParams, Usage
from utils.errors import BadInput
from utils.storage import VersionedRecord, utc_now_iso

#: A generated conversation id: UTC time to the second, then 48 random bits.
CONVERSATION_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{12}$"
_CONVERSATION_ID_RE = re.compile(CONVERSATION_ID_PATTERN)
_SHA256_PATTERN = r"^[0-9a-f]{64}$"

DEFAULT_TITLE = "New chat"
AUTO_TITLE_CHARS = 60
TITLE_MAX_CHARS = 120

ImageExt = Literal["png", "jpg", "webp", "bmp", "gif", "tiff"]

# Bidi controls can reorder how a title reads; control characters break one-line display.
_BIDI_MARKS = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def now_iso() -> str:
    """The current UTC time with microseconds: quick edits keep their order as text."""
    return utc_now_iso(timespec="microseconds")


# --------------------------------------------------------------------------- records


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
    """A whole conversation, as saved in ``<root>/<id>.json``.

    ``updated_at`` doubles as the revision: every write sets it, under the
    conversation's lock, so an edit can tell whether the file changed since it was read.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    id: str = Field(pattern=CONVERSATION_ID_PATTERN)
    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
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


# --------------------------------------------------------------------------- ids and titles


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


def clean_title(text: str, max_chars: int = TITLE_MAX_CHARS) -> str:
    """``text`` on one line, without control or bidi characters, at most ``max_chars``."""
    one_line = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text))
    visible = "".join(ch for ch in one_line if _is_visible_in_title(ch)).strip()
    if len(visible) <= max_chars:
        return visible
    return visible[: max_chars - 1].rstrip() + "…"


def _is_visible_in_title(ch: str) -> bool:
    return ch not in _BIDI_MARKS and unicodedata.category(ch) not in ("Cc", "Cs")


def title_from_messages(messages: list[StoredMessage]) -> str:
    """A title from the first question with visible text; empty when there is none."""
    for message in messages:
        if message.role == "user":
            title = clean_title(message.text, AUTO_TITLE_CHARS)
            if title:
                return title
    return ""


def all_images(conversation: Conversation) -> list[StoredImage]:
    """Every attached image, in order, repeats included."""
    return [image for message in conversation.messages for image in message.images]


# --------------------------------------------------------------------------- turn edits


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
