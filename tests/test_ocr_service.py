"""The OCR pipeline end to end on pages the tests draw: text, fields, boxes, cache,
per-page status, bad input, saved runs and exports."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from models.config import AppConfig, load_config
from models.ocr.base import OcrResult
from testkit.render import RECEIPT_LINES, encode, pdf_bytes, render_lines
from utils.cache import DiskCache
from utils.errors import ModelUnavailable
from utils.ocr import pipeline as ocr_service
from utils.ocr.exports import document_markdown, document_text, fields_csv, results_json
from utils.ocr.pipeline import DocumentResult, OcrSettings, OcrStage, ocr_file
from utils.ocr.records import field_records
from utils.ocr.runs import OcrRun, list_ocr_runs, load_run, save_run
from utils.storage import new_run_id

RAPID = OcrSettings(engine="rapidocr")
RECEIPT = OcrSettings(engine="rapidocr", template="receipt")


@pytest.fixture
def config(temp_profile: Path) -> AppConfig:
    return load_config(temp_profile).config


@pytest.fixture(scope="module")
def receipt_png() -> bytes:
    return encode(render_lines(RECEIPT_LINES))


@pytest.fixture(scope="module")
def receipt_result(receipt_png: bytes) -> DocumentResult:
    config = load_config().config
    return ocr_file(receipt_png, "receipt.png", RECEIPT, config)


def _words(text: str) -> set[str]:
    return set(text.upper().split())


def test_receipt_text_lines_and_fields(receipt_result: DocumentResult) -> None:
    assert receipt_result.ok and receipt_result.error is None
    (page,) = receipt_result.pages
    assert page.status == "ok" and page.page == 1
    assert {"SUNRISE", "TRADING", "COFFEE", "TOTAL", "10.00"} <= _words(page.text)
    # Label and amount on one visual line stay on one line.
    assert any("TOTAL" in line.text and "10.00" in line.text for line in page.lines)
    fields = receipt_result.fields
    assert fields["total"].value == "10.00"
    assert fields["date"].value == "14/03/2019"
    assert "SUNRISE TRADING" in (fields["company"].value or "")
    assert 0 < fields["total"].confidence <= 1
    assert fields["total"].line is not None


def test_boxes_are_inside_the_page(receipt_result: DocumentResult) -> None:
    page = receipt_result.pages[0]
    assert (page.width, page.height) == (900, 700)
    for line in page.lines:
        left, top, right, bottom = line.box
        assert 0 <= left < right <= 900 and 0 <= top < bottom <= 700


def test_boxes_map_back_to_original_pixels(temp_profile: Path) -> None:
    """A page over the pixel budget is read smaller; boxes still land on the original."""
    small = load_config(temp_profile).config
    limited = small.model_copy(
        update={
            "app": small.app.model_copy(
                update={"upload": small.app.upload.model_copy(update={"max_side": 900})}
            )
        }
    )
    big = render_lines(["INVOICE 12345"], size=(1800, 400), font_size=60)
    result = ocr_file(encode(big), "big.png", RAPID, limited)
    page = result.pages[0]
    assert page.processed_scale == pytest.approx(0.5)
    assert (page.width, page.height) == (1800, 400)
    (line,) = page.lines
    drawn = ImageDraw.Draw(big).textbbox((50, 40), "INVOICE 12345", ImageFont.load_default(60))
    left, top, right, bottom = line.box
    # The detector pads its boxes; without the mapping the box would be half this size.
    assert left <= drawn[0] + 5 and top <= drawn[1] + 5, (line.box, drawn)
    assert right >= drawn[2] - 5 and bottom >= drawn[3] - 5, (line.box, drawn)
    assert right - left < 1.3 * (drawn[2] - drawn[0]), (line.box, drawn)


def test_blank_page_is_blank_never_invented(config: AppConfig) -> None:
    blank = encode(Image.new("RGB", (800, 600), "white"))
    result = ocr_file(blank, "blank.png", RECEIPT, config)
    assert result.pages[0].status == "blank"
    assert result.pages[0].text == "" and result.pages[0].lines == []
    assert all(field.value is None for field in result.fields.values())


def test_pdf_pages_each_get_a_status(config: AppConfig) -> None:
    pages = [render_lines(["PAGE ONE HELLO"]), Image.new("RGB", (900, 700), "white")]
    result = ocr_file(pdf_bytes(pages), "two.pdf", RAPID, config)
    assert [p.status for p in result.pages] == ["ok", "blank"]
    assert [p.page for p in result.pages] == [1, 2]
    assert "HELLO" in result.text.upper()


def test_stages_are_reported_before_each_step_starts(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress bar says what is happening from the start, not after page 1."""
    stages: list[OcrStage] = []

    class RecordingEngine:
        name = "recording"

        def __init__(self) -> None:
            self.stage_at_read: list[str] = []

        def ocr(self, image: Image.Image) -> OcrResult:
            self.stage_at_read.append(stages[-1].label)
            return OcrResult(engine=self.name, width=image.width, height=image.height)

    def create_engine(*_, **__) -> RecordingEngine:
        assert stages[-1].label == "loading the engine"  # said before the engine loads
        return engine

    engine = RecordingEngine()
    monkeypatch.setattr(ocr_service, "create_ocr_engine", create_engine)
    pages = [render_lines(["A"]), render_lines(["B"]), render_lines(["C"])]
    ocr_file(pdf_bytes(pages), "three.pdf", RECEIPT, config, progress=stages.append)
    assert [s.label for s in stages] == [
        "opening the file",
        "loading the engine",
        "reading page 1 of 3",
        "reading page 2 of 3",
        "reading page 3 of 3",
        "finding the template's fields",
    ]
    assert engine.stage_at_read == [
        "reading page 1 of 3",
        "reading page 2 of 3",
        "reading page 3 of 3",
    ]
    assert [s.share for s in stages] == [0, 0, 0, pytest.approx(1 / 3), pytest.approx(2 / 3), 1]


def test_bad_input_is_an_error_result_naming_the_file(config: AppConfig) -> None:
    result = ocr_file(b"this is not an image", "../../etc/notes.png", RAPID, config)
    assert not result.ok and result.pages == []
    assert "notes.png" in result.error and "../" not in result.error


def test_unknown_engine_raises_with_the_fix(config: AppConfig) -> None:
    with pytest.raises(ModelUnavailable, match="no model 'nope'"):
        ocr_file(encode(render_lines(["X"])), "x.png", OcrSettings(engine="nope"), config)


def test_one_failing_page_does_not_lose_the_others(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FlakyEngine:
        name = "flaky"
        calls = 0

        def ocr(self, image: Image.Image) -> OcrResult:
            FlakyEngine.calls += 1
            if FlakyEngine.calls == 2:
                raise RuntimeError("engine crashed")
            return OcrResult(engine="flaky", width=image.width, height=image.height)

    monkeypatch.setattr(ocr_service, "create_ocr_engine", lambda *_, **__: FlakyEngine())
    pages = [render_lines(["A"]), render_lines(["B"]), render_lines(["C"])]
    result = ocr_file(pdf_bytes(pages), "three.pdf", RAPID, config)
    assert [p.status for p in result.pages] == ["blank", "error", "blank"]
    assert "engine crashed" in result.pages[1].error
    assert not result.ok


def test_repeated_file_is_served_from_cache(config: AppConfig, receipt_png: bytes) -> None:
    cache = DiskCache(config.cache_dir, max_mb=16)
    first = ocr_file(receipt_png, "r.png", RECEIPT, config, cache)
    second = ocr_file(receipt_png, "r.png", RECEIPT, config, cache)
    assert not first.from_cache and second.from_cache
    assert second.text == first.text and second.fields == first.fields
    other = ocr_file(receipt_png, "r.png", RAPID, config, cache)  # other settings: a miss
    assert not other.from_cache


def test_runs_are_saved_listed_and_reopened(
    config: AppConfig, receipt_result: DocumentResult
) -> None:
    failed = DocumentResult(file="bad.png", engine="rapidocr", error="not an image")
    run = OcrRun(
        run_id=new_run_id(),
        created_at="2026-01-01T00:00:00+00:00",
        settings=RECEIPT.model_dump(),
        documents=[receipt_result, failed],
    )
    save_run(config, run)
    (summary,) = list_ocr_runs(config)
    assert (summary.run_id, summary.files, summary.failed) == (run.run_id, 2, 1)
    assert load_run(config, run.run_id) == run
    assert load_run(config, "../../etc/passwd") is None


def test_corrupt_run_is_moved_aside_and_the_rest_still_lists(
    config: AppConfig, receipt_result: DocumentResult
) -> None:
    good = OcrRun(run_id=new_run_id(), created_at="x", documents=[receipt_result])
    save_run(config, good)
    broken = config.data_dir / "ocr" / "20200101T000000Z-abcdef.json"
    broken.write_text('{"schema_version": 1, "run_id": ', encoding="utf-8")
    assert [s.run_id for s in list_ocr_runs(config)] == [good.run_id]
    assert not broken.exists()
    assert list((config.data_dir / ".corrupt").iterdir())


def test_exports_round_trip(receipt_result: DocumentResult) -> None:
    failed = DocumentResult(file="=cmd|evil.png", engine="rapidocr", error="not an image")
    docs = [receipt_result, failed]
    exported = json.loads(results_json(docs))[0]
    assert exported.pop("records")[0]["fields"]["total"]["value"] == "10.00"
    assert DocumentResult.model_validate(exported) == receipt_result
    assert "TOTAL" in document_text(receipt_result).upper()
    markdown = document_markdown(receipt_result)
    assert markdown.startswith("# receipt.png") and "| total | 10.00 |" in markdown
    rows = list(csv.reader(io.StringIO(fields_csv(docs))))
    assert rows[0] == [
        "file",
        *("company", "company page", "date", "date page"),
        *("address", "address page", "total", "total page"),
        "error",
    ]
    assert rows[1][0] == "receipt.png" and rows[1][7:9] == ["10.00", "1"]
    assert rows[2][0] == "'=cmd|evil.png"  # a formula is never handed to a spreadsheet
    assert rows[2][-1] == "not an image"


def test_deskew_boxes_map_back_onto_the_tilted_page() -> None:
    """A box found on the straightened page lands on the same ink of the tilted page."""
    from utils.ocr.pipeline import _unrotate

    page = Image.new("L", (600, 400), 255)
    page.paste(0, (200, 150, 260, 190))  # the "ink"
    tilted = page.rotate(4, expand=False, fillcolor=255)
    straightened = tilted.rotate(-4, expand=True, fillcolor=255)
    found = straightened.point(lambda v: 255 if v > 128 else 0).getbbox(alpha_only=False)
    ink = Image.eval(straightened, lambda v: 255 - v).getbbox()
    assert found is not None and ink is not None
    mapped = _unrotate(ink, 4, straightened.size, tilted.size)
    truth = Image.eval(tilted, lambda v: 255 - v).getbbox()
    assert all(abs(a - b) <= 4 for a, b in zip(mapped, truth, strict=True)), (mapped, truth)


@pytest.mark.slow
def test_auto_rotate_reads_a_sideways_page(config: AppConfig) -> None:
    upright = render_lines(["INVOICE 12345", "TOTAL 88.50"], size=(700, 300), font_size=36)
    sideways = upright.rotate(90, expand=True)
    settings = OcrSettings(engine="rapidocr", auto_rotate=True)
    result = ocr_file(encode(sideways), "side.png", settings, config)
    page = result.pages[0]
    assert page.quarter_turns == 3  # three counter-clockwise turns undo one
    assert (page.width, page.height) == (700, 300)
    assert {"INVOICE", "12345", "TOTAL", "88.50"} <= _words(page.text)


def test_engine_without_boxes_keeps_its_text_and_markdown(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How a VLM engine's output flows through the pipeline."""
    from models.ocr.base import OcrLine

    class TextOnlyEngine:
        name = "vlm:fake"

        def ocr(self, image: Image.Image) -> OcrResult:
            lines = [
                OcrLine(text=t, box=None, confidence=1.0) for t in ["SHOP SDN BHD", "TOTAL 7.50"]
            ]
            return OcrResult(
                engine=self.name,
                lines=lines,
                width=image.width,
                height=image.height,
                markdown="**SHOP SDN BHD**\n\nTOTAL 7.50",
                settings={"usage": {"completion_tokens": 9}},
            )

    monkeypatch.setattr(ocr_service, "create_ocr_engine", lambda *_, **__: TextOnlyEngine())
    result = ocr_file(encode(render_lines(["x"])), "v.png", RECEIPT, config)
    page = result.pages[0]
    assert page.text == "SHOP SDN BHD\nTOTAL 7.50"
    assert page.markdown.startswith("**SHOP SDN BHD**")
    assert all(line.box is None for line in page.lines)
    assert page.usage == {"completion_tokens": 9}
    assert result.fields["total"].value == "7.50"


SECOND_RECEIPT = [
    ("MOONLIGHT STORES SDN BHD", None),
    ("8, JALAN BUNGA RAYA", None),
    ("50200 KUALA LUMPUR", None),
    ("DATE: 02/05/2021", None),
    ("TEA", "3.00"),
    ("TOTAL", "7.25"),
]


@pytest.fixture(scope="module")
def two_receipts_pdf() -> bytes:
    """A PDF of two receipts, one per page, with their own company and total."""
    return pdf_bytes([render_lines(RECEIPT_LINES), render_lines(SECOND_RECEIPT)])


def test_fields_per_page_gives_each_page_its_own_record(
    config: AppConfig, two_receipts_pdf: bytes
) -> None:
    per_page = RECEIPT.model_copy(update={"fields_per": "page"})
    result = ocr_file(two_receipts_pdf, "receipts.pdf", per_page, config)
    first, second = field_records(result)
    assert (first.page, second.page) == (1, 2)
    assert first.fields["total"].value == "10.00" and second.fields["total"].value == "7.25"
    assert "SUNRISE" in first.fields["company"].value
    assert "MOONLIGHT" in second.fields["company"].value
    assert second.field_pages["total"] == 2

    rows = list(csv.DictReader(io.StringIO(fields_csv([result]))))
    assert [(r["page"], r["total"]) for r in rows] == [("1", "10.00"), ("2", "7.25")]
    (exported,) = json.loads(results_json([result]))
    assert [r["fields"]["total"]["value"] for r in exported["records"]] == ["10.00", "7.25"]
    assert [r["page"] for r in exported["records"]] == [1, 2]


def test_fields_per_document_name_the_page_each_came_from(config: AppConfig) -> None:
    """A two-page invoice: the seller on page 1, the total on page 2, one record."""
    header, items = RECEIPT_LINES[:4], RECEIPT_LINES[4:]
    pdf = pdf_bytes([render_lines(header), render_lines(items)])
    result = ocr_file(pdf, "two-pages.pdf", RECEIPT, config)
    (record,) = field_records(result)
    assert record.page is None  # the whole document
    assert "SUNRISE" in record.fields["company"].value and record.fields["total"].value == "10.00"
    assert record.field_pages["company"] == 1 and record.field_pages["date"] == 1
    assert record.field_pages["total"] == 2

    (row,) = csv.DictReader(io.StringIO(fields_csv([result])))
    assert (row["total"], row["total page"], row["company page"]) == ("10.00", "2", "1")
    assert "page" not in row  # one record per file: no page column
    (exported,) = json.loads(results_json([result]))
    (only,) = exported["records"]
    assert only["page"] is None and only["field_pages"]["total"] == 2
    assert "| total | 10.00 |" in document_markdown(result)


def test_each_page_is_handed_on_as_soon_as_it_is_read(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The page shows page 1's text while page 2 is still being read."""
    heard: list[tuple[int, int]] = []  # (page handed on, pages the engine had read by then)

    class CountingEngine:
        name = "counting"
        reads = 0

        def ocr(self, image: Image.Image) -> OcrResult:
            CountingEngine.reads += 1
            return OcrResult(engine=self.name, width=image.width, height=image.height)

    monkeypatch.setattr(ocr_service, "create_ocr_engine", lambda *_, **__: CountingEngine())
    pages = [render_lines(["A"]), render_lines(["B"]), render_lines(["C"])]
    data = pdf_bytes(pages)
    cache = DiskCache(tmp_path / "cache")
    on_page = lambda page: heard.append((page.page, CountingEngine.reads))  # noqa: E731
    ocr_file(data, "three.pdf", RAPID, config, cache, on_page=on_page)
    assert heard == [(1, 1), (2, 2), (3, 3)]
    heard.clear()
    again = ocr_file(data, "three.pdf", RAPID, config, cache, on_page=on_page)
    assert again.from_cache and [page for page, _ in heard] == [1, 2, 3]  # at once, no reads
    assert CountingEngine.reads == 3


def test_the_default_engine_is_loaded_in_the_background_once(config: AppConfig) -> None:
    from models.registry import create_ocr_engine
    from utils.ocr.preload import preload_default_engine

    thread = preload_default_engine(config)
    assert thread is not None and thread.daemon
    thread.join(timeout=60)
    first = create_ocr_engine(config.ocr.engine, config)
    assert create_ocr_engine(config.ocr.engine, config) is first  # loaded once, then shared
    vlm_default = config.model_copy(
        update={"ocr": config.ocr.model_copy(update={"engine": "qwen2_vl_2b"})}
    )
    assert preload_default_engine(vlm_default) is None  # a VLM loads on first use only


def test_a_second_preload_finds_the_engine_warm_and_reads_nothing(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve.py preloads at start-up and app.py again on its first run: one warm-up."""
    from models.registry import create_ocr_engine
    from utils.ocr.preload import preload_default_engine

    outcomes: list[bool] = []
    preload_default_engine(config, on_done=outcomes.append).join(timeout=60)
    engine = create_ocr_engine(config.ocr.engine, config)
    reads: list[object] = []
    monkeypatch.setattr(engine, "ocr", reads.append)
    preload_default_engine(config, on_done=outcomes.append).join(timeout=60)
    assert outcomes == [True, True] and reads == []
