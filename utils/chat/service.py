"""One chat turn: keep the question, stream the answer, keep the answer.

Used by the Chat page and `cli.py chat`. Whatever ends the stream — the last
token, the Stop button, a server error, the browser going away — the answer
so far is saved before the generator exits.

Both halves of a turn are appended to the stored conversation under its lock
(``ChatStore.append_messages``), never written over it from the copy read at the
start: two tabs or commands taking turns at once each keep their turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from models.chat.types import ChatBackend, GenerationParams, Usage
from utils.chat.conversation import Conversation, StoredImage, StoredMessage
from utils.chat.prompt import to_prompt
from utils.chat.store import ChatStore
from utils.errors import GenerationError
from utils.storage import utc_now_iso

logger = logging.getLogger(__name__)


def new_user_message(text: str, images: list[StoredImage]) -> StoredMessage:
    return StoredMessage(
        role="user", text=text, images=images, created_at=utc_now_iso(timespec="auto")
    )


def save_question(
    store: ChatStore, conversation: Conversation, text: str, images: list[StoredImage]
) -> StoredMessage:
    """Append the question to the stored conversation (and to ``conversation``)."""
    question = new_user_message(text, images)
    store.append_messages(conversation, [question])
    return question


def stream_answer(
    store: ChatStore,
    conversation: Conversation,
    backend: ChatBackend,
    params: GenerationParams,
    stop: threading.Event | None = None,
) -> Iterator[str]:
    """Yield the answer's chunks; append and save the assistant message at the end.

    A ``GenerationError`` is re-raised after the partial answer was saved (marked
    interrupted, with the error). Closing the generator early (a Streamlit rerun,
    Ctrl-C) sets ``stop`` so the model stops too, and saves what was produced.
    Afterwards ``conversation`` ends with the saved answer.
    """
    stop = stop or threading.Event()
    chunks: list[str] = []
    stream = None
    reading: Iterator[str] | None = None
    error: str | None = None
    finished = False
    try:
        stream = backend.stream(to_prompt(conversation, store.images), params, stop)
        reading = iter(stream)
        for chunk in reading:
            chunks.append(chunk)
            yield chunk
        finished = True
    except GenerationError as exc:
        error = str(exc)
        raise
    finally:
        if not finished:
            stop.set()
            _close(reading)  # the stream's usage is final only once it is closed
        usage = stream.usage if stream is not None else None
        _keep_answer(store, conversation, "".join(chunks), usage, finished, error)


def _close(reading: Iterator[str] | None) -> None:
    """Close a stream's iterator left mid-answer (a generator's own ``finally`` runs
    then, not whenever the garbage collector gets to it)."""
    close = getattr(reading, "close", None)
    if close is not None:
        close()


def _keep_answer(
    store: ChatStore,
    conversation: Conversation,
    text: str,
    usage: Usage | None,
    finished: bool,
    error: str | None,
) -> None:
    if not text and error is None and usage is None:
        return  # nothing was produced and nothing went wrong: e.g. closed before starting
    stopped = bool(usage and usage.stopped)
    message = StoredMessage(
        role="assistant",
        text=text,
        usage=usage,
        interrupted=not finished or stopped,
        error=error,
        created_at=utc_now_iso(timespec="auto"),
    )
    store.append_messages(conversation, [message])
    logger.info(
        "answer saved: %d chars, interrupted=%s, error=%s",
        len(text),
        message.interrupted,
        bool(error),
    )
