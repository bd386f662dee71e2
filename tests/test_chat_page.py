"""The Chat page under AppTest with a tiny local model: a turn with an image is
answered, saved, and a fresh session (a refresh or restart) shows it again. Against a
fake OpenAI server: an edit of a conversation another tab changed is refused, and a
broken import is an error message, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.chat.types import GenerationParams
from models.config import REPO_ROOT, load_config
from testkit.apptest import shown
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.profiles import fake_server_model_yaml, write_test_profile
from testkit.render import encode, render_lines
from utils.chat.conversation import StoredMessage
from utils.chat.store import ChatStore
from utils.ocr.pipeline import document_limits

APP = str(REPO_ROOT / "app.py")
pytestmark = pytest.mark.slow


def _chat_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_turn_with_image_is_answered_saved_and_restored(chat_profile: Path) -> None:
    at = _chat_page()
    model = next(s for s in at.sidebar.selectbox if s.label == "Model")
    assert model.value == "tiny_qwen"
    image = encode(render_lines(["RECEIPT 42"], size=(320, 200), font_size=24))
    at.chat_input[0].upload("scan.png", image, "image/png").set_value("What does it say?").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    usage = [shown(c.value) for c in at.chat_message[1].caption]
    assert any("tiny_qwen · transformers" in u and "1 image(s)" in u for u in usage), usage

    (saved,) = (chat_profile.parent / "results" / "chats").glob("*.json")
    record = json.loads(saved.read_text())
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert record["messages"][0]["images"][0]["name"] == "scan.png"
    assert "base64" not in saved.read_text()

    fresh = _chat_page()  # a new browser session: nothing in session_state
    assert [m.name for m in fresh.chat_message] == ["user", "assistant"]
    assert "What does it say?" in fresh.chat_message[0].markdown[0].value
    assert len(fresh.chat_message[0].get("image")) == 1


def test_follow_up_keeps_the_earlier_image_in_context(chat_profile: Path) -> None:
    at = _chat_page()
    image = encode(render_lines(["A"], size=(200, 120), font_size=20))
    at.chat_input[0].upload("a.png", image, "image/png").set_value("first").run()
    at.chat_input[0].set_value("and now?").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    second = [shown(c.value) for c in at.chat_message[3].caption]
    assert any("1 image(s)" in u for u in second), second  # the first turn's image was sent again


def test_a_new_chat_takes_the_models_own_token_limit(chat_profile: Path) -> None:
    at = _chat_page()
    limit = next(n for n in at.sidebar.number_input if n.label == "Max new tokens")
    assert limit.value == 8  # tiny_qwen's max_new_tokens in the profile, not the generic 512


# --------------------------------------------------------------------------- two writers, imports


@pytest.fixture
def fake_server_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The Chat page on a profile whose model is a local fake OpenAI server, showing a
    stored conversation with one answered question; yields (page, store, id, server)."""
    with FakeOpenAIServer() as server:
        profile = write_test_profile(tmp_path, fake_server_model_yaml(server.base_url))
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        config = load_config(profile).config
        store = ChatStore(config.data_dir / "chats", document_limits(config))
        conversation = store.new("fake_vlm", GenerationParams())
        conversation.messages += [
            StoredMessage(role="user", text="q1"),
            StoredMessage(role="assistant", text="a1"),
        ]
        store.save(conversation)
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert [m.name for m in at.chat_message] == ["user", "assistant"]
        yield at, store, conversation.id, server


def test_regenerate_after_another_tab_added_a_turn_is_refused(fake_server_page) -> None:
    at, store, conversation_id, server = fake_server_page
    other_tab = store.load(conversation_id)
    turn = [StoredMessage(role="user", text="q2"), StoredMessage(role="assistant", text="a2")]
    store.append_messages(other_tab, turn)

    next(b for b in at.button if b.label == "🔁 Regenerate").click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert any("changed since it was shown" in shown(e.value) for e in at.error), at.error
    assert [m.text for m in store.load(conversation_id).messages] == ["q1", "a1", "q2", "a2"]
    assert not server.chat_requests  # nothing was regenerated
    assert len(at.chat_message) == 4  # the page now shows the other tab's turn

    next(b for b in at.button if b.label == "🔁 Regenerate").click().run()  # on what it shows
    assert not at.exception, [e.value for e in at.exception]
    assert len(server.chat_requests) == 1
    texts = [m.text for m in store.load(conversation_id).messages]
    assert texts[:3] == ["q1", "a1", "q2"] and texts[3].startswith("echo: q2")


def test_importing_a_file_without_a_conversation_says_so(fake_server_page) -> None:
    at = fake_server_page[0]
    broken = json.dumps({"format": "chatvlmllm-conversation", "format_version": 1, "images": {}})
    at.file_uploader(key="chat_import").upload("broken.json", broken.encode()).run()
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("broken.json holds no conversation" in shown(e.value) for e in at.error), at.error


# ------------------------------------------------------------- the URL names the conversation


@pytest.fixture
def two_conversations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake-server profile with two stored conversations, "older" then "newer" (the
    newest opens by default); yields (store, older id, newer id)."""
    with FakeOpenAIServer() as server:
        profile = write_test_profile(tmp_path, fake_server_model_yaml(server.base_url))
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        config = load_config(profile).config
        store = ChatStore(config.data_dir / "chats", document_limits(config))
        ids = []
        for text in ("older", "newer"):
            conversation = store.new("fake_vlm", GenerationParams())
            conversation.messages += [
                StoredMessage(role="user", text=f"{text} question"),
                StoredMessage(role="assistant", text=f"{text} answer"),
            ]
            store.save(conversation)
            ids.append(conversation.id)
        yield store, ids[0], ids[1]


def _page_at(conversation_id: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if conversation_id is not None:
        at.query_params["c"] = conversation_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _question_shown(at: AppTest) -> str:
    return shown(at.chat_message[0].markdown[0].value)


def test_the_url_names_the_open_conversation_and_a_refresh_reopens_it(
    two_conversations,
) -> None:
    _, older, newer = two_conversations
    at = _page_at(None)
    assert _question_shown(at) == "newer question"
    assert at.query_params["c"] == newer
    next(s for s in at.sidebar.selectbox if s.label == "Open").set_value(older).run()
    assert _question_shown(at) == "older question"
    assert at.query_params["c"] == older

    refreshed = _page_at(older)  # a new session on the same URL: a refresh, a shared link
    assert _question_shown(refreshed) == "older question"
    assert next(s for s in refreshed.sidebar.selectbox if s.label == "Open").value == older


@pytest.mark.parametrize("bad_id", ["20200101T000000-0123456789ab", "../../etc/passwd"])
def test_an_unknown_conversation_in_the_url_says_so_and_offers_the_list(
    two_conversations, bad_id: str
) -> None:
    _, older, _ = two_conversations
    at = _page_at(bad_id)
    assert any("There is no conversation" in shown(w.value) for w in at.warning), at.warning
    assert not at.chat_message  # no other conversation passed off as the one asked for
    offered = [shown(b.label) for b in at.button if b.label.startswith("💬")]
    assert offered == ["💬 newer question (1)", "💬 older question (1)"]
    next(b for b in at.button if shown(b.label) == "💬 older question (1)").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _question_shown(at) == "older question"
    assert at.query_params["c"] == older


# ----------------------------------------------------------------- images in the conversation


def _blocks_holding_images(node, found: list) -> list:
    """The blocks (containers) that hold an image directly, anywhere under ``node``."""
    children = list(getattr(node, "children", {}).values())
    if any(child.type == "image" for child in children):
        found.append(node)
    for child in children:
        _blocks_holding_images(child, found)
    return found


def _fixed_width(block) -> int:
    """The block's width in pixels; 0 for a column or a block as wide as its parent."""
    config = getattr(block.proto, "width_config", None)
    return config.pixel_width if config is not None else 0


def test_conversation_images_are_thumbnails_not_column_wide(fake_server_page) -> None:
    at, store, conversation_id, _ = fake_server_page
    conversation = store.load(conversation_id)
    big = store.images.add(encode(render_lines(["WIDE"], size=(1800, 900))), "wide.png")
    small = store.images.add(encode(render_lines(["S"], size=(300, 200))), "small.png")
    store.append_messages(
        conversation, [StoredMessage(role="user", text="q2", images=[big, small])]
    )

    at.run()

    assert not at.exception, [e.value for e in at.exception]
    images = at.chat_message[2].get("image")
    assert [shown(i.captions[0]) for i in images] == ["wide.png", "small.png"]
    boxes = _blocks_holding_images(at.chat_message[2], [])
    widths = [_fixed_width(box) for box in boxes]
    assert len(boxes) == 2 and all(0 < width <= 320 for width in widths), widths
