"""The OCR page under AppTest: upload, run, see text and fields, reopen the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT
from testkit.apptest import blank_when_missing, shown
from testkit.render import RECEIPT_LINES, accented_page, encode, pdf_bytes, render_lines
from utils.safe_markdown import escape_markdown

APP = str(REPO_ROOT / "app.py")


def _ocr_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/ocr.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _run_button(at: AppTest):
    return next(b for b in at.button if b.label == "Run OCR")


def test_with_no_engine_left_the_reasons_are_shown_as_plain_text(
    temp_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "weights missing under /srv/**models**/[fix](javascript:alert(1))"
    monkeypatch.setattr("models.registry._probe", lambda entry, config: (False, reason))
    at = _ocr_page()
    errors = [e.value for e in at.error]
    assert any(
        "No OCR engine is available" in e and escape_markdown(reason) in e for e in errors
    ), errors
    assert not any("**models**" in e for e in errors)


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

    files = {shown(e.label)[2:].split(" — ")[0]: e for e in at.expander}
    assert shown(files["receipt.png"].label).startswith("✅"), list(files)
    assert shown(files["broken.png"].label).startswith("❌"), list(files)
    # The first file's result is open; the rest wait, collapsed, below the batch table.
    assert files["receipt.png"].proto.expanded and not files["broken.png"].proto.expanded
    assert any("TOTAL" in t.value.upper() for t in at.text)
    assert any("broken.png" in shown(e.value) for e in at.error)
    batch = at.dataframe[0].value.set_index("file")
    assert list(batch.index) == ["receipt.png", "broken.png"]
    assert {"pages", "status", "seconds", "company", "date", "total"} <= set(batch.columns)
    assert batch.loc["receipt.png", ["pages", "status", "total"]].tolist() == [1, "ok", "10.00"]
    assert batch.loc["broken.png", ["pages", "status"]].tolist() == [0, "failed"]
    fields = at.dataframe[1].value
    assert fields.set_index("field").loc["total", "value"] == "10.00"
    assert all(blank_when_missing(d) for d in at.dataframe)  # missing cells blank, not "None"
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
    assert not at.dataframe  # one file: no batch table, its result shown open
    (result,) = [e for e in at.expander if "hello.png" in shown(e.label)]
    assert result.proto.expanded


def test_fields_per_page_shows_a_record_for_each_page(temp_profile: Path) -> None:
    at = _ocr_page()
    second = [("MOONLIGHT STORES SDN BHD", None), ("TEA", "3.00"), ("TOTAL", "7.25")]
    pdf = pdf_bytes([render_lines(RECEIPT_LINES), render_lines(second)])
    at.file_uploader[0].set_value(("receipts.pdf", pdf, "application/pdf"))
    next(s for s in at.sidebar.selectbox if s.label == "Template").set_value("receipt").run()
    next(r for r in at.sidebar.radio if r.label == "Fields per").set_value("page")
    at.run()
    _run_button(at).click().run()
    assert not at.exception, [e.value for e in at.exception]
    (fields,) = at.dataframe  # one file: no batch table, its record per page
    records = fields.value.set_index("page")
    assert records.loc[1, "total"] == "10.00" and records.loc[2, "total"] == "7.25"
    assert "MOONLIGHT" in records.loc[2, "company"]


def test_accents_are_read_when_the_user_asks(temp_profile: Path) -> None:
    at = _ocr_page()
    at.file_uploader[0].set_value([("cafe.png", encode(accented_page()), "image/png")])
    at.run()
    _run_button(at).click().run()
    assert any("SETIA ALAM" in t.value for t in at.text), [t.value for t in at.text]
    _accents_box(at).check().run()
    _run_button(at).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("SETIA ÁLAM" in t.value for t in at.text), [t.value for t in at.text]


def test_the_star_button_remembers_engine_template_and_accents(temp_profile: Path) -> None:
    at = _ocr_page()
    next(s for s in at.sidebar.selectbox if s.label == "Template").set_value("receipt")
    _accents_box(at).check()
    at.run()
    star = next(b for b in at.sidebar.button if b.label.startswith("⭐"))
    star.click().run()
    assert not at.exception, [e.value for e in at.exception]

    reopened = _ocr_page()  # a new tab: only what was stored carries over
    assert next(s for s in reopened.sidebar.selectbox if s.label == "Template").value == "receipt"
    assert _accents_box(reopened).value
    _accents_box(reopened).uncheck()
    reopened.run()
    next(b for b in reopened.sidebar.button if b.label.startswith("⭐")).click().run()
    assert not _accents_box(_ocr_page()).value


def _accents_box(at: AppTest):
    return next(c for c in at.sidebar.checkbox if c.label == "Read accents and other scripts")
