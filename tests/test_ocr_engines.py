"""The classical OCR engines on pages rendered here with PIL (no data files, no network)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydantic import ValidationError

from models.ocr.base import OcrEngine, OcrLine, OcrResult
from models.ocr.rapid import (
    RapidOcrEngine,
    RapidOcrOptions,
    bundled_model_paths,
    get_rapidocr_engine,
    quad_to_box,
    quarter_turns_from_votes,
)
from models.ocr.tesseract import (
    TesseractEngine,
    TesseractOptions,
    apt_package_for,
    lines_from_data,
    tesseract_status,
)
from utils.errors import ModelUnavailable

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="tesseract not installed: sudo apt-get install -y tesseract-ocr tesseract-ocr-eng",
)

PAGE_LINES = ["INVOICE 12345", "Coffee beans 2 kg", "TOTAL 9.00"]
Bbox = tuple[int, int, int, int]


def render_page(
    lines: list[str], size: tuple[int, int] = (800, 360)
) -> tuple[Image.Image, list[Bbox]]:
    """White page with one text line every 100 px; returns the page and each line's drawn bbox."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    bboxes = []
    for row, text in enumerate(lines):
        origin = (60, 50 + 100 * row)
        draw.text(origin, text, fill="black", font=font)
        bboxes.append(tuple(int(v) for v in draw.textbbox(origin, text, font=font)))
    return image, bboxes


def squash(text: str) -> str:
    """Upper-case text without whitespace: engines differ in spacing, not in letters."""
    return re.sub(r"\s+", "", text).upper()


def fragments_on_row(result: OcrResult, bbox: Bbox) -> list[OcrLine]:
    """Fragments whose vertical centre lies inside a drawn line's bbox, left to right."""
    on_row = [line for line in result.lines if bbox[1] <= line.center_y <= bbox[3]]
    return sorted(on_row, key=lambda line: line.box[0])


def row_text(result: OcrResult, bbox: Bbox) -> str:
    return squash("".join(line.text for line in fragments_on_row(result, bbox)))


def add_gaussian_noise(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + np.random.default_rng(seed).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def rapid_engine() -> RapidOcrEngine:
    return get_rapidocr_engine(RapidOcrOptions())


@pytest.fixture(scope="module")
def tesseract_engine() -> TesseractEngine:
    if shutil.which("tesseract") is None:
        pytest.skip(
            "tesseract not installed: sudo apt-get install -y tesseract-ocr tesseract-ocr-eng"
        )
    return TesseractEngine(TesseractOptions())


@pytest.fixture(params=["rapidocr", "tesseract"])
def engine(request: pytest.FixtureRequest) -> OcrEngine:
    fixture = "rapid_engine" if request.param == "rapidocr" else "tesseract_engine"
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="module")
def page() -> tuple[Image.Image, list[Bbox]]:
    return render_page(PAGE_LINES)


# --- both engines on rendered pages -------------------------------------------------------


def test_engines_implement_the_interface(engine: OcrEngine) -> None:
    assert isinstance(engine, OcrEngine)
    assert engine.name in {"rapidocr", "tesseract"}


def test_known_lines_are_read(engine: OcrEngine, page: tuple[Image.Image, list[Bbox]]) -> None:
    image, bboxes = page
    result = engine.ocr(image)
    assert result.engine == engine.name
    assert (result.width, result.height) == image.size
    assert result.seconds > 0
    for text, bbox in zip(PAGE_LINES, bboxes, strict=True):
        assert row_text(result, bbox) == squash(text), result.text


def test_boxes_lie_around_the_drawn_text(
    engine: OcrEngine, page: tuple[Image.Image, list[Bbox]]
) -> None:
    image, bboxes = page
    result = engine.ocr(image)
    margin = 20  # engines pad boxes (RapidOCR's unclip) or clip them to the glyph ink
    for bbox in bboxes:
        row = fragments_on_row(result, bbox)
        assert row
        for line in row:
            left, top, right, bottom = line.box
            assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height
            assert left >= bbox[0] - margin and right <= bbox[2] + margin
            assert top >= bbox[1] - margin and bottom <= bbox[3] + margin
        covered = max(line.box[2] for line in row) - min(line.box[0] for line in row)
        assert covered >= 0.8 * (bbox[2] - bbox[0])


def test_confidences_are_fractions_and_high_on_clean_text(
    engine: OcrEngine, page: tuple[Image.Image, list[Bbox]]
) -> None:
    result = engine.ocr(page[0])
    assert result.lines
    assert all(0.0 <= line.confidence <= 1.0 for line in result.lines)
    assert min(line.confidence for line in result.lines) > 0.6


def test_blank_page_yields_no_lines(engine: OcrEngine) -> None:
    result = engine.ocr(Image.new("RGB", (800, 600), "white"))
    assert result.lines == []
    assert result.text == ""


# Tesseract falls off a cliff between sigma 35 (reads every line) and 40 (psm 4: nothing,
# psm 6: invented words); RapidOCR still reads the page at 45.
NOISE_SIGMA = {"rapidocr": 45.0, "tesseract": 30.0}


def test_noisy_page_still_yields_the_main_words(
    engine: OcrEngine, page: tuple[Image.Image, list[Bbox]]
) -> None:
    noisy = add_gaussian_noise(page[0], sigma=NOISE_SIGMA[engine.name])
    words = squash(engine.ocr(noisy).text)
    for word in ("INVOICE", "12345", "TOTAL"):
        assert word in words


def test_no_fragment_has_empty_text(engine: OcrEngine) -> None:
    image, _ = render_page(["A . B", "  x  "])
    assert all(line.text.strip() for line in engine.ocr(image).lines)


def test_settings_record_the_options(rapid_engine: RapidOcrEngine) -> None:
    result = rapid_engine.ocr(Image.new("RGB", (64, 64), "white"))
    assert result.settings == RapidOcrOptions().model_dump()


# --- RapidOCR -------------------------------------------------------------------------------


def test_rapidocr_loads_only_the_bundled_weights() -> None:
    package_dir = Path(sys.modules["models.ocr.rapid"].bundled_model_dir()).parent
    for path in bundled_model_paths():
        assert path.is_file() and path.parent.parent == package_dir


def test_rapidocr_creation_touches_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access while creating the RapidOCR engine")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # A fresh instance (not the shared one) so the models really load under the patch.
    engine = RapidOcrEngine(RapidOcrOptions(text_score=0.45))
    det_path = Path(str(engine._rapid.cfg.Det.model_path))
    assert det_path in bundled_model_paths()


def test_rapidocr_engine_is_shared_per_options() -> None:
    first = get_rapidocr_engine(RapidOcrOptions())
    assert get_rapidocr_engine(RapidOcrOptions()) is first
    assert get_rapidocr_engine() is first
    other = get_rapidocr_engine(RapidOcrOptions(use_angle_cls=True))
    assert other is not first
    assert other.options.use_angle_cls is True


def test_missing_rapidocr_package_is_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # makes `import rapidocr` fail
    with pytest.raises(ModelUnavailable) as caught:
        RapidOcrEngine(RapidOcrOptions())
    assert "pip install rapidocr==3.10.0" in (caught.value.hint or "")


def test_rapidocr_options_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        RapidOcrOptions(box_threshold=0.4)
    with pytest.raises(ValidationError):
        RapidOcrOptions(text_score=1.5)


def test_quad_to_box_takes_the_extremes_and_clips_to_the_image() -> None:
    quad = [[-3.0, 10.2], [120.6, 8.0], [121.0, 40.0], [-2.0, 41.7]]
    assert quad_to_box(quad, width=100, height=200) == (0, 8, 100, 42)


QUARTER_TURNS = {
    1: Image.Transpose.ROTATE_90,
    2: Image.Transpose.ROTATE_180,
    3: Image.Transpose.ROTATE_270,
}


def test_rapidocr_with_line_classifier_reads_pages_turned_90_degrees_either_way() -> None:
    # No page-orientation model: tall crops are turned 90 degrees, then the 0/180
    # line classifier fixes the upside-down ones, so both directions read.
    engine = get_rapidocr_engine(RapidOcrOptions(use_angle_cls=True))
    image, _ = render_page(["INVOICE 12345", "TOTAL AMOUNT 9.00"], size=(700, 260))
    for turns in (1, 3):
        text = squash(engine.ocr(image.transpose(QUARTER_TURNS[turns])).text)
        assert "INVOICE12345" in text and "TOTALAMOUNT9.00" in text, (turns, text)


def test_page_quarter_turns_finds_how_to_make_the_page_upright(
    rapid_engine: RapidOcrEngine,
) -> None:
    image, _ = render_page(["INVOICE 12345", "TOTAL AMOUNT 9.00", "Tea 2"], size=(700, 360))
    assert rapid_engine.page_quarter_turns(image) == 0
    for turns, transpose in QUARTER_TURNS.items():
        fix = rapid_engine.page_quarter_turns(image.transpose(transpose))
        assert (turns + fix) % 4 == 0, (turns, fix)


def test_page_quarter_turns_of_a_blank_page_is_zero(rapid_engine: RapidOcrEngine) -> None:
    assert rapid_engine.page_quarter_turns(Image.new("RGB", (300, 300), "white")) == 0


def test_quarter_turns_from_votes() -> None:
    assert quarter_turns_from_votes(vertical=False, upside_down_votes=1, upright_votes=9) == 0
    assert quarter_turns_from_votes(vertical=False, upside_down_votes=9, upright_votes=1) == 2
    assert quarter_turns_from_votes(vertical=True, upside_down_votes=0, upright_votes=5) == 1
    assert quarter_turns_from_votes(vertical=True, upside_down_votes=5, upright_votes=0) == 3


def test_rapidocr_is_safe_to_share_between_threads(rapid_engine: RapidOcrEngine) -> None:
    # Small and squarish: RapidOCR upscales the short side to 736 px before detection.
    image, _ = render_page(["TOTAL 9.00"], size=(260, 160))
    expected = rapid_engine.ocr(image).text
    assert squash(expected) == "TOTAL9.00"
    texts: list[str] = []

    def read() -> None:
        texts.append(rapid_engine.ocr(image).text)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert texts == [expected] * 2


# --- Tesseract ----------------------------------------------------------------------------


def test_missing_tesseract_binary_is_model_unavailable_with_apt_hint() -> None:
    with pytest.raises(ModelUnavailable) as caught:
        TesseractEngine(TesseractOptions(tesseract_cmd="/nonexistent/tesseract"))
    assert "sudo apt-get install -y tesseract-ocr" in (caught.value.hint or "")
    available, detail = tesseract_status("/nonexistent/tesseract")
    assert available is False and "/nonexistent/tesseract" in detail


def test_binary_that_is_not_tesseract_is_model_unavailable(tmp_path: Path) -> None:
    fake = tmp_path / "tesseract"
    fake.write_text("#!/bin/sh\necho 'not tesseract'\n")
    fake.chmod(0o755)
    with pytest.raises(ModelUnavailable):
        TesseractEngine(TesseractOptions(tesseract_cmd=str(fake)))


@needs_tesseract
def test_missing_language_names_its_apt_package() -> None:
    with pytest.raises(ModelUnavailable) as caught:
        TesseractEngine(TesseractOptions(languages=["eng", "zzz"]))
    assert "zzz" in caught.value.message
    assert caught.value.hint == "sudo apt-get install -y tesseract-ocr-zzz"


@needs_tesseract
def test_tesseract_status_reports_version_and_languages() -> None:
    available, detail = tesseract_status()
    assert available is True
    assert "eng" in detail


@needs_tesseract
def test_tesseract_limits_openmp_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    TesseractEngine(TesseractOptions())
    assert os.environ["OMP_THREAD_LIMIT"] == "1"


def test_apt_package_names() -> None:
    assert apt_package_for("rus") == "tesseract-ocr-rus"
    assert apt_package_for("chi_sim") == "tesseract-ocr-chi-sim"


def test_tesseract_options_reject_unsafe_language_codes() -> None:
    with pytest.raises(ValidationError):
        TesseractOptions(languages=["eng --psm 0"])
    with pytest.raises(ValidationError):
        TesseractOptions(languages=[])


def test_lines_from_data_groups_words_by_line_and_averages_confidence() -> None:
    # Shape of pytesseract's image_to_data(output_type=DICT): levels 1-4 carry conf -1.
    data = {
        "level": [1, 2, 3, 4, 5, 5, 4, 5, 5],
        "block_num": [0, 1, 1, 1, 1, 1, 1, 1, 1],
        "par_num": [0, 0, 1, 1, 1, 1, 1, 1, 1],
        "line_num": [0, 0, 0, 1, 1, 1, 2, 2, 2],
        "left": [0, 10, 10, 10, 10, 80, 10, 10, 60],
        "top": [0, 10, 10, 10, 12, 10, 50, 50, 52],
        "width": [300, 200, 200, 200, 60, 50, 100, 40, 200],
        "height": [120, 80, 80, 30, 28, 30, 30, 30, 30],
        "conf": [-1, -1, -1, -1, 90, 70.5, -1, 60, "40"],
        "text": ["", "", "", "", "TOTAL", "9.00", "", "Thank", " "],
    }
    lines = lines_from_data(data, width=200, height=120)
    assert [line.text for line in lines] == ["TOTAL 9.00", "Thank"]
    assert lines[0].box == (10, 10, 130, 40)
    assert lines[0].confidence == pytest.approx(0.8025)
    assert lines[1].box == (10, 50, 50, 80)  # the blank word is not part of the line


@needs_tesseract
def test_tesseract_reads_grayscale_input(tesseract_engine: TesseractEngine) -> None:
    image, bboxes = render_page(["TOTAL 9.00"], size=(500, 140))
    result = tesseract_engine.ocr(image.convert("L"))
    assert row_text(result, bboxes[0]) == "TOTAL9.00"
    assert result.settings["psm"] == tesseract_engine.options.psm
