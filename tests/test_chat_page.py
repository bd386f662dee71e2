"""The Chat page under AppTest with a tiny local model: a turn with an image is
answered, saved, and a fresh session (a refresh or restart) shows it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT
from testkit.render import encode, render_lines

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
    usage = [c.value for c in at.chat_message[1].caption]
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
    second = [c.value for c in at.chat_message[3].caption]
    assert any("1 image(s)" in u for u in second), second  # the first turn's image was sent again


def test_a_new_chat_takes_the_models_own_token_limit(chat_profile: Path) -> None:
    at = _chat_page()
    limit = next(n for n in at.sidebar.number_input if n.label == "Max new tokens")
    assert limit.value == 8  # tiny_qwen's max_new_tokens in the profile, not the generic 512
