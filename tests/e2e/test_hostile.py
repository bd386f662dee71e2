"""Model output is data, never markup: a hostile answer shows as text and does nothing.

The "hostile" model (a fake OpenAI-compatible server, see conftest.py) answers every
request with a <script> tag, an <img onerror>, a javascript: link, a remote image on a
TEST-NET address and a 5,000-character line. Wherever the app shows model output
(chat, OCR text, the benchmark diff) no script may run, no dialog open, no request
leave 127.0.0.1, and the text must be readable as text.
"""

from __future__ import annotations

from typing import Any

import pytest

from testkit import e2e_harness as h
from tests.e2e.test_pages import choose_run, open_expander, receipt_png, start_benchmark

pytestmark = pytest.mark.e2e

SCRIPT_TAG = "<script>window.__pwned=1</script>"


def assert_no_horizontal_overflow(page: Any) -> None:
    """The 5,000-character line wraps or scrolls inside its element, not the page."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow} px wider than the window"


def test_hostile_chat_answer_is_inert_text(
    page: Any, app_server: h.AppServer, watch: h.PageWatch
) -> None:
    h.open_page(page, app_server, "/")
    h.new_chat(page)
    h.choose(page, "Model", "Hostile fake VLM")
    h.chat_send(page, "Say something nasty (e2e-hostile)")
    messages = page.locator('[data-testid="stChatMessage"]')
    messages.filter(has_text="(e2e-hostile)").first.wait_for(timeout=h.SLOW_MS)
    answer = page.locator('[data-testid="stChatMessage"]').filter(has_text="Here is your answer")
    answer.first.wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    shown = answer.first.inner_text()
    assert SCRIPT_TAG in shown, shown[:500]
    assert "![remote](http://203.0.113.7/pixel.png)" in shown, shown[:500]
    assert h.LONG_LINE in shown.replace("\n", "")
    assert not answer.first.locator("img").count(), "an <img> was rendered from the answer"
    links = answer.first.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert not [href for href in links if not href.startswith("http")], links
    assert_no_horizontal_overflow(page)
    h.assert_page_was_harmless(page, watch)


def test_hostile_ocr_text_is_inert_text(
    page: Any, app_server: h.AppServer, watch: h.PageWatch
) -> None:
    h.open_page(page, app_server, "/ocr")
    h.choose(page, "Engine", "Hostile fake VLM")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [h.png_payload("hostile-receipt.png", receipt_png())]
    )
    h.settle(page)
    h.click_button(page, "Run OCR")
    page.get_by_text("1 of 1 file(s) read").wait_for(timeout=h.SLOW_MS)
    document = open_expander(page, "hostile-receipt.png")
    text = document.locator('[data-testid="stText"]').first.inner_text()
    assert SCRIPT_TAG in text and "javascript:window.__pwned=3" in text, text[:500]
    page.locator('[data-testid="stRadio"] label', has_text="Markdown").click()
    h.settle(page)
    markdown_view = open_expander(page, "hostile-receipt.png").locator('[data-testid="stCode"]')
    assert SCRIPT_TAG in markdown_view.first.inner_text()
    assert_no_horizontal_overflow(page)
    h.assert_page_was_harmless(page, watch)


def test_hostile_benchmark_prediction_is_inert_in_diff(
    page: Any, app_server: h.AppServer, watch: h.PageWatch
) -> None:
    h.open_page(page, app_server, "/benchmark")
    start_benchmark(page, 1, "e2e-hostile", engines=["hostile"])
    newest = h.grid_rows(page, page.locator('[data-testid="stDataFrame"]').first)[0]
    assert newest[1] == "e2e-hostile", newest
    choose_run(page, "e2e-hostile")
    h.choose(page, "Item", "hostile")
    diff = h.grid_rows(page, h.grid_with_column(page, "prediction").first)
    predicted = " ".join(row[2] for row in diff)
    assert SCRIPT_TAG in predicted and "onerror=" in predicted, predicted[:500]
    assert_no_horizontal_overflow(page)
    h.assert_page_was_harmless(page, watch)
