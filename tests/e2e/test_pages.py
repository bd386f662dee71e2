"""Each page used the way a person uses it, in headless Chromium against `streamlit run`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from testkit import e2e_harness as h
from testkit.render import RECEIPT_LINES, encode, pdf_bytes, render_lines

pytestmark = pytest.mark.e2e

PDF_PAGES = [["FIRST PAGE ALPHA", "INVOICE 4711"], ["SECOND PAGE BRAVO", "THANK YOU"]]


def receipt_png() -> bytes:
    return encode(render_lines(RECEIPT_LINES))


def two_page_pdf() -> bytes:
    return pdf_bytes([render_lines(lines, size=(900, 300)) for lines in PDF_PAGES])


def expander(page: Any, title_part: str) -> Any:
    return page.locator('[data-testid="stExpander"]').filter(
        has=page.locator("summary", has_text=title_part)
    )


def open_expander(page: Any, title_part: str) -> Any:
    """Open the expander (unless it already is) and return it."""
    box = expander(page, title_part)
    details = box.locator("details").first
    if details.get_attribute("open") is None:
        box.locator("summary").first.click()  # the first: expanders may nest
    page.wait_for_function("d => d.open", arg=details.element_handle())
    return box


def choose_run(page: Any, name: str) -> None:
    """Open run ``name`` in the "One run" section (its picker shows names, not ids)."""
    h.pick_option(page, page.locator(".st-key-drill_run [data-testid='stSelectbox']"), name)


def test_ocr_image_and_pdf(page: Any, app_server: h.AppServer) -> None:
    h.open_page(page, app_server, "/ocr")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [
            h.png_payload("receipt.png", receipt_png()),
            {"name": "two-pages.pdf", "mimeType": "application/pdf", "buffer": two_page_pdf()},
        ]
    )
    h.settle(page)
    h.choose(page, "Template", "receipt")
    h.click_button(page, "Run OCR")
    page.get_by_text("2 of 2 file(s) read").wait_for(timeout=h.SLOW_MS)

    receipt = open_expander(page, "receipt.png")
    receipt_text = receipt.locator('[data-testid="stText"]').first
    assert "TOTAL" in receipt_text.inner_text()
    fields = {
        row[0]: row[1] for row in h.grid_rows(page, receipt.locator('[data-testid="stDataFrame"]'))
    }
    assert fields.get("total") == "10.00", fields
    assert not receipt.locator('[data-testid="stImage"]').count()
    receipt.get_by_text("Show boxes").click()
    receipt.locator('[data-testid="stImage"] img').first.wait_for()

    pdf = open_expander(page, "two-pages.pdf")
    assert "2 page(s)" in pdf.locator("summary").inner_text()
    pdf_text = " ".join(pdf.locator('[data-testid="stText"]').all_inner_texts())
    assert "ALPHA" in pdf_text and "BRAVO" in pdf_text, pdf_text

    exported = json.loads(h.download(page, page.get_by_role("button", name="JSON", exact=True)))
    exported_text = json.dumps(exported)
    assert "TOTAL" in exported_text and "ALPHA" in exported_text and "BRAVO" in exported_text
    assert receipt_text.inner_text().splitlines()[0] in exported_text


def test_chat_with_image_survives_reload_and_exports(page: Any, app_server: h.AppServer) -> None:
    h.open_page(page, app_server, "/")
    h.new_chat(page)
    h.choose(page, "Model", "Tiny Qwen2-VL")
    question = "What is the total on this receipt? (e2e-chat)"
    h.chat_send(page, question, [h.png_payload("receipt.png", receipt_png())])

    messages = page.locator('[data-testid="stChatMessage"]')
    messages.filter(has_text=question).first.wait_for(timeout=h.SLOW_MS)
    assistant = messages.filter(has_text="tok/s")
    assistant.first.wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    assert page.locator('[data-testid="stChatMessage"]').count() == 2
    stats = assistant.first.locator('[data-testid="stCaptionContainer"]').last.inner_text()
    assert re.search(r"\d+ → \d+ tokens", stats), stats
    assert "1 image(s)" in stats and "tiny_qwen" in stats, stats

    page.reload()
    h.settle(page)
    messages = page.locator('[data-testid="stChatMessage"]')
    messages.filter(has_text=question).first.wait_for()
    # The text can be drawn a moment before the picture's element: wait for it.
    pictures = messages.filter(has_text=question).locator('[data-testid="stImage"]')
    pictures.first.wait_for(timeout=h.SLOW_MS)
    assert pictures.count() == 1
    assert messages.filter(has_text="tok/s").count() == 1

    open_expander(page, "Rename, delete, export")
    exported = h.download(page, page.get_by_role("button", name="Export JSON"))
    assert question in exported.decode("utf-8")


def start_benchmark(page: Any, limit: int, name: str, engines: list[str] | None = None) -> None:
    """Start a run on the built-in sample set and wait until it has finished."""
    open_expander(page, "Start a run")
    if engines is not None:
        h.multiselect(page, "Engines and models", engines, clear=True)
    h.fill_number(page, "Limit", limit)
    h.fill_text(page, "Run name (optional)", name)
    h.click_button(page, "Start", timeout_ms=240_000)
    page.get_by_text(re.compile(r"Run \S+: complete")).wait_for(timeout=h.SLOW_MS)
    h.settle(page)  # the tables below the message are drawn after it


def test_benchmark_run_compare_and_drill_down(page: Any, app_server: h.AppServer) -> None:
    h.open_page(page, app_server, "/benchmark")
    start_benchmark(page, 2, "e2e-first")
    start_benchmark(page, 1, "e2e-second")

    runs = h.grid_rows(page, page.locator('[data-testid="stDataFrame"]').first)
    names = {row[1]: row for row in runs}
    assert {"e2e-first", "e2e-second"} <= set(names), runs
    assert names["e2e-first"][5] == "rapidocr" and names["e2e-first"][6] == "2/2", runs

    h.multiselect(page, "Runs (the first is the baseline)", ["e2e-first", "e2e-second"])
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=h.SLOW_MS)

    choose_run(page, "e2e-first")
    h.choose(page, "Item", "invoice")
    # The item's image with the engine's boxes, then the word diff against the truth.
    page.locator('[data-testid="stImage"] img').last.wait_for()
    diff = h.grid_rows(page, h.grid_with_column(page, "prediction").first)
    assert diff and {row[0] for row in diff} <= {"same", "changed", "missing", "extra"}, diff


def test_models_page_lists_catalog_with_availability(page: Any, app_server: h.AppServer) -> None:
    h.open_page(page, app_server, "/models")
    page.get_by_text(re.compile(r"\d+ of \d+ available")).wait_for(timeout=h.SLOW_MS)
    rows = {
        row[1]: row for row in h.grid_rows(page, page.locator('[data-testid="stDataFrame"]').first)
    }
    assert rows["rapidocr"][0] == "✅", rows
    assert rows["tiny_qwen"][0] == "✅", rows
    assert rows["qwen2_vl_2b"][0] == "⚠️", rows
    advice = open_expander(page, "unavailable entries")
    assert "python cli.py models download Qwen/Qwen2-VL-2B-Instruct" in advice.inner_text()
