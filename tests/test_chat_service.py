"""A chat turn keeps its answer however the stream ends: done, stopped, failed, closed;
concurrent turns on one conversation all stay; a new chat takes the model's own settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.chat.types import GenerationParams, PromptMessage, Usage
from models.config import load_config
from models.registry import create_chat_backend
from testkit.fake_openai_server import FakeOpenAIServer, Reply
from testkit.profiles import fake_server_model_yaml, write_test_profile
from utils.chat.conversation import truncate_for_regenerate
from utils.chat.service import new_user_message, save_question, stream_answer
from utils.chat.settings import default_chat_model, default_params, require_chat_model
from utils.chat.store import ChatStore
from utils.documents.limits import DocumentLimits
from utils.errors import GenerationError, ModelUnavailable, StorageError


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


def test_stopping_a_server_answer_saves_it_with_real_stats(store: ChatStore) -> None:
    """The Stop button on a server-backed model: the saved answer carries the time and
    the tokens received so far, not '0.0 s' and no tokens."""
    with FakeOpenAIServer() as server:
        server.script(Reply(chunks=tuple(f"w{i} " for i in range(40)), chunk_delay_s=0.05))
        backend = create_chat_backend("fake_vlm", _server_config(store, server))
        conversation = _asked(store)
        chunks = stream_answer(store, conversation, backend, GenerationParams())
        received = [next(chunks) for _ in range(3)]
        chunks.close()

    answer = store.load(conversation.id).messages[-1]
    assert answer.text == "".join(received) == "w0 w1 w2 "
    assert answer.interrupted and answer.error is None
    assert answer.usage.stopped
    assert answer.usage.seconds >= 0.1
    assert answer.usage.completion_tokens == 3


def _server_config(store: ChatStore, server: FakeOpenAIServer):
    profile = write_test_profile(store.root.parent, fake_server_model_yaml(server.base_url))
    return load_config(profile).config


def test_next_turn_sees_the_whole_history(store: ChatStore) -> None:
    conversation = _asked(store, "first")
    backend = FakeBackend(["answer one"])
    list(stream_answer(store, conversation, backend, GenerationParams()))
    save_question(store, conversation, "second", [])
    list(stream_answer(store, conversation, backend, GenerationParams()))
    texts = [m.text for m in backend.seen[-1]]
    assert texts == ["first", "answer one", "second"]


# --------------------------------------------------------------------------- concurrent turns


class GatedBackend(FakeBackend):
    """Streams its chunks only once every stream of the test has started."""

    def __init__(self, chunks: list[str], gate: threading.Barrier) -> None:
        super().__init__(chunks)
        self.gate = gate

    def stream(self, messages, params, stop=None) -> ScriptedStream:
        self.gate.wait(timeout=10)
        return super().stream(messages, params, stop)


def test_two_answers_saved_at_once_on_one_conversation_both_stay(store: ChatStore) -> None:
    """Two tabs (or two `cli.py chat --conversation ID`) answering at the same time."""
    conversation = _asked(store, "shared question")
    tabs = [store.load(conversation.id) for _ in range(2)]  # each read it before the other saved
    gate = threading.Barrier(2)
    failures: list[BaseException] = []

    def answer(tab, text: str) -> None:
        try:
            list(stream_answer(store, tab, GatedBackend([text], gate), GenerationParams()))
        except BaseException as exc:  # reported below; a thread's exception is lost otherwise
            failures.append(exc)

    threads = [
        threading.Thread(target=answer, args=(tab, f"answer {number}"))
        for number, tab in enumerate(tabs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    saved = store.load(conversation.id).messages
    assert saved[0].text == "shared question"
    assert sorted(m.text for m in saved[1:]) == ["answer 0", "answer 1"]
    for tab in tabs:  # each caller's copy ends with its own answer, as stored
        assert tab.messages[-1].text in {"answer 0", "answer 1"}
        assert [m.text for m in tab.messages] == [m.text for m in saved[: len(tab.messages)]]


def test_a_question_saved_from_a_stale_copy_keeps_the_other_turns(store: ChatStore) -> None:
    first = _asked(store, "q1")
    stale = store.load(first.id)
    list(stream_answer(store, first, FakeBackend(["a1"]), GenerationParams()))
    save_question(store, stale, "q2", [])
    assert [m.text for m in store.load(first.id).messages] == ["q1", "a1", "q2"]
    assert [m.text for m in stale.messages] == ["q1", "a1", "q2"]


def test_an_edit_of_a_conversation_changed_since_is_refused(store: ChatStore) -> None:
    conversation = _asked(store, "q1")
    list(stream_answer(store, conversation, FakeBackend(["a1"]), GenerationParams()))
    shown = store.load(conversation.id)
    other_tab = store.load(conversation.id)
    save_question(store, other_tab, "q2", [])  # another tab asks meanwhile

    with pytest.raises(StorageError, match="changed since") as refused:
        store.save_edit(truncate_for_regenerate(shown), shown.updated_at)
    assert "latest turns" in refused.value.hint
    assert [m.text for m in store.load(conversation.id).messages] == ["q1", "a1", "q2"]

    redrawn = store.load(conversation.id)  # the page shows the new turn; q2 gets answered
    list(stream_answer(store, redrawn, FakeBackend(["a2"]), GenerationParams()))
    store.save_edit(truncate_for_regenerate(redrawn), redrawn.updated_at)
    assert [m.text for m in store.load(conversation.id).messages] == ["q1", "a1", "q2"]


# --------------------------------------------------------------------------- model settings

SETTINGS_MODELS = """\
endpoints:
  local:
    base_url: http://127.0.0.1:9
models:
  sampler:
    display_name: Sampler
    backend: openai
    task: chat
    endpoint: local
    max_new_tokens: 77
    temperature: 0.4
    top_p: 0.8
  switched_off:
    display_name: Switched off
    backend: openai
    task: both
    endpoint: local
    enabled: false
"""


@pytest.fixture(scope="module")
def settings_config(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("chat_settings")
    return load_config(write_test_profile(base, SETTINGS_MODELS)).config


def test_a_new_chat_takes_the_models_own_sampling_settings(settings_config) -> None:
    params = default_params("sampler", settings_config)
    assert (params.max_new_tokens, params.temperature, params.top_p) == (77, 0.4, 0.8)
    assert default_params(None, settings_config) == GenerationParams()
    assert require_chat_model("sampler", settings_config).display_name == "Sampler"
    assert default_chat_model(settings_config) != "switched_off"


@pytest.mark.parametrize(
    ("model_id", "message", "hint"),
    [
        ("switched_off", "'switched_off' is disabled in the profile", "enabled: true"),
        ("nope", "no chat model 'nope' in the profile", "sampler"),
        ("rapidocr", "'rapidocr' is an OCR engine, not a chat model", "task: both"),
    ],
)
def test_only_enabled_chat_models_are_accepted(
    settings_config, model_id: str, message: str, hint: str
) -> None:
    for check in (require_chat_model, default_params):
        with pytest.raises(ModelUnavailable, match=message) as refused:
            check(model_id, settings_config)
        assert hint in refused.value.hint and "switched_off" not in refused.value.hint
