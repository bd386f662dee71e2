"""Strings from servers, files and models are text: never Markdown, math or images.

A server's error message, the model ids a server lists, an uploaded file's name
and math in an answer each carry Markdown that would load an image from a
TEST-NET host (or typeset a block tall enough to bury the page). Each must
show as written, load nothing and leave the page usable; the browser aborts any
request for another host (see ``testkit.e2e_harness.new_page``).
"""

from __future__ import annotations

from typing import Any

import pytest

from testkit import e2e_harness as h
from testkit.fake_openai_server import Fail, Reply
from tests.e2e.test_pages import open_expander, receipt_png

pytestmark = pytest.mark.e2e

# Tall enough to notice a typeset \rule, short enough for any real message.
MAX_MESSAGE_HEIGHT_PX = 3000


def start_chat(page: Any, server: h.AppServer, model: str) -> None:
    h.open_page(page, server, "/")
    h.new_chat(page)
    h.choose(page, "Model", model)


def test_a_server_error_shows_as_text_now_and_after_reload(
    page: Any, app_server: h.AppServer, watch: h.PageWatch, hostile_server: Any
) -> None:
    start_chat(page, app_server, "Hostile fake VLM")
    hostile_server.script(Fail(500, message=h.HOSTILE_ERROR))
    h.chat_send(page, "Make the server fail (e2e-error)")
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="Interrupted")
    alert.first.wait_for(timeout=h.SLOW_MS)
    assert "![e](http://203.0.113.7/error.png)" in alert.first.inner_text()
    page.reload()
    alert.first.wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    assert "$\\rule{900em}{900em}$" in alert.first.inner_text()
    assert not alert.first.locator("img, .katex").count()
    h.assert_page_was_harmless(page, watch)


def test_math_in_an_answer_cannot_bury_the_chat(
    page: Any, app_server: h.AppServer, watch: h.PageWatch, hostile_server: Any
) -> None:
    start_chat(page, app_server, "Hostile fake VLM")
    hostile_server.script(Reply(chunks=("Math: ", "$\\rule{5000em}{5000em}$", " (e2e-math-done)")))
    h.chat_send(page, "Typeset something (e2e-math)")
    answer = page.locator('[data-testid="stChatMessage"]').filter(has_text="e2e-math-done")
    answer.first.wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    box = answer.first.bounding_box()
    assert box is not None and box["height"] < MAX_MESSAGE_HEIGHT_PX, box
    assert "\\rule{5000em}{5000em}" in answer.first.inner_text()
    h.assert_page_was_harmless(page, watch)


def test_model_ids_a_server_lists_are_text(
    page: Any, app_server: h.AppServer, watch: h.PageWatch
) -> None:
    start_chat(page, app_server, "Ghost served model")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("does not serve").first.wait_for(timeout=h.SLOW_MS)
    assert h.HOSTILE_MODEL_ID in sidebar.inner_text()
    assert not sidebar.locator("img").count()
    h.open_page(page, app_server, "/models")
    advice = open_expander(page, "unavailable entries")
    assert h.HOSTILE_MODEL_ID in advice.inner_text()
    assert not advice.locator("img").count()
    h.assert_page_was_harmless(page, watch)


def test_an_uploaded_file_name_is_text(
    page: Any, app_server: h.AppServer, watch: h.PageWatch
) -> None:
    h.open_page(page, app_server, "/ocr")
    h.choose(page, "Engine", "Hostile fake VLM")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [h.png_payload(h.HOSTILE_FILE_NAME, receipt_png())]
    )
    h.settle(page)
    h.click_button(page, "Run OCR")
    page.get_by_text("1 of 1 file(s) read").wait_for(timeout=h.SLOW_MS)
    label = page.locator('[data-testid="stExpander"] summary').filter(has_text="![f]")
    assert h.HOSTILE_FILE_NAME in label.first.inner_text()
    assert not label.first.locator("img").count()
    h.assert_page_was_harmless(page, watch)
