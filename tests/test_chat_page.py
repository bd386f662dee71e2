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
from utils.errors import ModelUnavailable
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


# --------------------------------------------------------------- no usable model (issue 11)


@pytest.fixture
def no_model_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped catalog with no weights on disk (an empty Hugging Face cache) and its
    served entry switched off: no chat model can run."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    profile = write_test_profile(tmp_path, "models:\n  dots_ocr_vllm:\n    enabled: false\n")
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    return profile


def _saved_chats(profile: Path) -> list[Path]:
    return sorted((profile.parent / "results" / "chats").glob("*.json"))


def test_no_usable_model_shows_the_ways_out_and_disables_the_input(
    no_model_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")  # the tests run offline; a first visit may not
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    at = _page_at(None)
    assert any("No chat model can run" in shown(i.value) for i in at.info), at.info
    assert any(b.label == "⬇️ Download" for b in at.button)
    captions = [shown(c.value) for c in at.caption]
    assert any("HuggingFaceTB/SmolVLM-256M-Instruct" in c for c in captions), captions
    assert any(b.label == "🔌 Check and save" for b in at.button)
    assert at.chat_input[0].proto.disabled
    assert "download one or connect a server" in at.chat_input[0].placeholder
    assert not _saved_chats(no_model_profile)


def test_offline_the_download_says_what_to_do(
    no_model_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = _page_at(None)
    assert any("HF_HUB_OFFLINE" in shown(w.value) for w in at.warning), at.warning
    assert not any(b.label == "⬇️ Download" for b in at.button)


def _connect(at: AppTest, base_url: str, served_name: str) -> None:
    next(t for t in at.text_input if t.label == "Base URL").set_value(base_url)
    next(t for t in at.text_input if t.label == "Model name on the server").set_value(served_name)
    next(b for b in at.button if b.label == "🔌 Check and save").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_connecting_a_server_saves_overrides_and_the_model_answers(
    no_model_profile: Path,
) -> None:
    overrides = no_model_profile.parent / "results" / "overrides.yaml"
    with FakeOpenAIServer(models=("fake-vlm", "other")) as server:
        at = _page_at(None)
        _connect(at, server.base_url, "not-served")
        errors = [shown(e.value) for e in at.error]
        assert any(f"{server.base_url} does not serve 'not-served'" in e for e in errors), errors
        assert any("it serves: fake-vlm, other" in shown(c.value) for c in at.caption)
        assert not overrides.exists()

        _connect(at, server.base_url, "fake-vlm")
        assert not at.error, [e.value for e in at.error]
        assert "fake-vlm" in overrides.read_text()
        assert "served_name: fake-vlm" in overrides.read_text()
        model = next(s for s in at.sidebar.selectbox if s.label == "Model")
        assert model.value == "server_fake-vlm"
        assert not at.chat_input[0].proto.disabled
        assert not at.info  # the empty state is gone

        at.chat_input[0].set_value("hello").run()
        assert not at.exception, [e.value for e in at.exception]
        assert [m.name for m in at.chat_message] == ["user", "assistant"]
        assert len(server.chat_requests) == 1


def test_an_unreachable_server_is_refused_and_nothing_saved(no_model_profile: Path) -> None:
    with FakeOpenAIServer() as server:
        url = server.base_url  # closed when the block ends: nothing listens there any more
    at = _page_at(None)
    _connect(at, url, "fake-vlm")
    assert any("did not answer" in shown(e.value) for e in at.error), at.error
    assert not (no_model_profile.parent / "results" / "overrides.yaml").exists()


def test_a_model_that_cannot_be_created_saves_nothing_and_keeps_the_question(
    fake_server_page, monkeypatch: pytest.MonkeyPatch
) -> None:
    at, store, conversation_id, server = fake_server_page

    def cannot_load(model_id: str, config) -> None:
        raise ModelUnavailable("the model could not be loaded", hint="free some memory")

    monkeypatch.setattr("models.registry.create_chat_backend", cannot_load)
    at.chat_input[0].set_value("lost question?").run()

    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert any("not sent: the model could not be loaded" in e for e in errors), errors
    assert [m.text for m in store.load(conversation_id).messages] == ["q1", "a1"]
    assert at.chat_input[0].proto.value == "lost question?"  # back in the input
    assert not server.chat_requests


def test_the_picker_skips_a_model_that_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    with FakeOpenAIServer() as server:
        profile = write_test_profile(tmp_path, fake_server_model_yaml(server.base_url))
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        config = load_config(profile).config
        store = ChatStore(config.data_dir / "chats", document_limits(config))
        conversation = store.new("qwen2_vl_2b", GenerationParams())  # no weights here
        conversation.messages += [StoredMessage(role="user", text="q1")]
        store.save(conversation)
        at = _page_at(None)
        model = next(s for s in at.sidebar.selectbox if s.label == "Model")
        assert model.value == "fake_vlm"
