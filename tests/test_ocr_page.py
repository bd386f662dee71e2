"""The OCR page under AppTest: upload, run, see text and fields, reopen the run."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT
from testkit.apptest import shown
from testkit.render import RECEIPT_LINES, encode, render_lines

APP = str(REPO_ROOT / "app.py")


def _ocr_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/ocr.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _run_button(at: AppTest):
    return next(b for b in at.button if b.label == "Run OCR")


def test_upload_run_and_see_text_fields_and_errors(temp_profile: Path) -> None:
    at = _ocr_page()
    assert _run_button(at).disabled  # nothing uploaded yet
    receipt = encode(render_lines(RECEIPT_LINES))
    at.file_uploader[0].set_value(
        [("receipt.png", receipt, "image/png"), ("broken.png", b"\x89PNG garbage", "image/png")]
    )
    template = next(s for s in at.sidebar.selectbox if s.label == "Template")
    template.set_value("receipt")
    at.run()
    _run_button(at).click().run()
    assert not at.exception, [e.value for e in at.exception]

    labels = [shown(e.label) for e in at.expander]
    assert any(label.startswith("✅ receipt.png") for label in labels), labels
    assert any(label.startswith("❌ broken.png") for label in labels), labels
    assert any("TOTAL" in t.value.upper() for t in at.text)
    assert any("broken.png" in shown(e.value) for e in at.error)
    fields = at.dataframe[0].value
    assert fields.set_index("field").loc["total", "value"] == "10.00"
    assert {"TXT", "Markdown", "JSON", "Fields CSV"} <= {b.label for b in at.get("download_button")}

    runs = list((temp_profile.parent / "results" / "ocr").glob("*.json"))
    assert len(runs) == 1
    uploads = list((temp_profile.parent / "results" / "uploads").glob("[0-9a-f]*[0-9a-f]"))
    assert len(uploads) == 1 and len(uploads[0].name) == 64  # stored by hash, not by name


def test_boxes_toggle_draws_the_page(temp_profile: Path) -> None:
    at = _ocr_page()
    at.file_uploader[0].set_value(("hello.png", encode(render_lines(["HELLO 42"])), "image/png"))
    at.run()
    _run_button(at).click().run()
    at.toggle[0].set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) == 1
