"""A chat turn keeps its answer however the stream ends: done, stopped, failed, closed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.chat.types import GenerationParams, PromptMessage, Usage
from utils.chat.service import new_user_message, stream_answer
from utils.chat.store import ChatStore
from utils.documents.loader import DocumentLimits
from utils.errors import GenerationError


class ScriptedStream:
    def __init__(self, chunks: list[str], fail_after: int | None, stop: threading.Event) -> None:
        self.chunks, self.fail_after, self.stop = chunks, fail_after, stop
        self.usage = Usage(model_id="fake", backend="fake")

    def __iter__(self) -> Iterator[str]:
        for index, chunk in enumerate(self.chunks):
            if self.fail_after is not None and index == self.fail_after:
                self.usage.error = "server went away"
                raise GenerationError("server went away")
            if self.stop.is_set():
                self.usage.stopped = True
                return
            yield chunk
        self.usage.completion_tokens = len(self.chunks)


class FakeBackend:
    model_id, backend = "fake", "fake"

    def __init__(self, chunks: list[str], fail_after: int | None = None) -> None:
        self.chunks, self.fail_after = chunks, fail_after
        self.seen: list[list[PromptMessage]] = []
        self.stop: threading.Event | None = None

    def stream(self, messages, params, stop=None) -> ScriptedStream:
        self.seen.append(messages)
        self.stop = stop
        return ScriptedStream(self.chunks, self.fail_after, stop)


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    return ChatStore(tmp_path / "chats", DocumentLimits())


def _asked(store: ChatStore, question: str = "What is this?"):
    conversation = store.new("fake", GenerationParams())
    conversation.messages.append(new_user_message(question, []))
    store.save(conversation)
    return conversation


def test_complete_answer_is_saved_with_usage(store: ChatStore) -> None:
    conversation = _asked(store)
    backend = FakeBackend(["Hel", "lo"])
    assert list(stream_answer(store, conversation, backend, GenerationParams())) == ["Hel", "lo"]
    saved = store.load(conversation.id)
    assert [m.role for m in saved.messages] == ["user", "assistant"]
    answer = saved.messages[-1]
    assert answer.text == "Hello" and not answer.interrupted and answer.error is None
    assert answer.usage.completion_tokens == 2
    assert backend.seen[0][-1].text == "What is this?"


def test_failure_mid_answer_keeps_the_partial_text_and_the_error(store: ChatStore) -> None:
    conversation = _asked(store)
    chunks = stream_answer(
        store, conversation, FakeBackend(["a", "b", "c"], fail_after=2), GenerationParams()
    )
    received = []
    with pytest.raises(GenerationError):
        for chunk in chunks:
            received.append(chunk)
    assert received == ["a", "b"]
    answer = store.load(conversation.id).messages[-1]
    assert answer.text == "ab" and answer.interrupted and "went away" in answer.error


def test_closing_the_stream_early_stops_the_model_and_saves(store: ChatStore) -> None:
    """What a Streamlit rerun (the Stop button) does to the generator."""
    conversation = _asked(store)
    backend = FakeBackend(["one ", "two ", "three"])
    chunks = stream_answer(store, conversation, backend, GenerationParams())
    assert next(chunks) == "one "
    chunks.close()
    assert backend.stop.is_set()
    answer = store.load(conversation.id).messages[-1]
    assert answer.text == "one " and answer.interrupted


def test_next_turn_sees_the_whole_history(store: ChatStore) -> None:
    conversation = _asked(store, "first")
    backend = FakeBackend(["answer one"])
    list(stream_answer(store, conversation, backend, GenerationParams()))
    conversation.messages.append(new_user_message("second", []))
    list(stream_answer(store, conversation, backend, GenerationParams()))
    texts = [m.text for m in backend.seen[-1]]
    assert texts == ["first", "answer one", "second"]
