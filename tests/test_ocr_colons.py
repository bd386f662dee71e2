"""Lone colons found in the gap between two fragments of a rendered line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from models.ocr.base import OcrLine
from models.ocr.colons import find_colons, line_neighbours

FONT_SIZE = 28
TOP = 20


def render_row(parts: list[tuple[float, str]], ink: int = 20, paper: int = 235):
    """A grey page with each ``(x, text)`` drawn on one row, and each part's tight box."""
    font = ImageFont.load_default(size=FONT_SIZE)
    image = Image.new("L", (900, FONT_SIZE * 3), paper)
    draw = ImageDraw.Draw(image)
    boxes = []
    for x, text in parts:
        draw.text((x, TOP), text, fill=ink, font=font)
        left, _, right, _ = draw.textbbox((x, TOP), text, font=font)
        # Boxes as a detector gives them: the text's row, not the glyphs' own extent.
        boxes.append((int(left), TOP - 2, int(right), TOP + FONT_SIZE + 4))
    return np.asarray(image), boxes


def fragments(parts, boxes, keep) -> list[OcrLine]:
    """The parts the detector "found": those whose text is in ``keep``."""
    return [
        OcrLine(text=text, box=box, confidence=0.99)
        for (_, text), box in zip(parts, boxes, strict=True)
        if text in keep
    ]


def test_a_colon_the_detector_missed_is_added_between_label_and_value():
    parts = [(20, "TOTAL"), (300, ":"), (560, "26.00")]
    gray, boxes = render_row(parts)
    found = find_colons(gray, fragments(parts, boxes, {"TOTAL", "26.00"}))
    assert [line.text for line in found] == [":"]
    left, _, right, _ = found[0].box
    assert boxes[1][0] - 2 <= left and right <= boxes[1][2] + 2


def test_a_faded_colon_is_found_too():
    parts = [(20, "CASH"), (260, ":"), (500, "50.00")]
    gray, boxes = render_row(parts, ink=20)
    faded = gray.copy()
    colon = (slice(0, gray.shape[0]), slice(boxes[1][0] - 1, boxes[1][2] + 1))
    faded[colon] = np.where(gray[colon] < 200, 200, gray[colon])  # the colon alone fades
    assert [line.text for line in find_colons(faded, fragments(parts, boxes, {"CASH", "50.00"}))]


@pytest.mark.parametrize(
    "between",
    [".", "-", "=", "I", "8", "%", "·"],
    ids=["period", "dash", "equals", "letter", "digit", "percent", "middle-dot"],
)
def test_other_marks_in_the_gap_are_not_colons(between):
    parts = [(20, "TOTAL"), (300, between), (560, "26.00")]
    gray, boxes = render_row(parts)
    assert find_colons(gray, fragments(parts, boxes, {"TOTAL", "26.00"})) == []


def test_a_colon_already_read_is_not_added_again():
    parts = [(20, "TOTAL:"), (560, "26.00")]
    gray, boxes = render_row(parts)
    assert find_colons(gray, fragments(parts, boxes, {"TOTAL:", "26.00"})) == []


def test_an_empty_gap_or_a_blank_page_gives_nothing():
    parts = [(20, "TOTAL"), (560, "26.00")]
    gray, boxes = render_row(parts)
    assert find_colons(gray, fragments(parts, boxes, {"TOTAL", "26.00"})) == []
    blank = np.full_like(gray, 235)
    assert find_colons(blank, fragments(parts, boxes, {"TOTAL", "26.00"})) == []


def test_neighbours_are_on_the_same_line_and_nearest_first():
    label = OcrLine(text="TOTAL", box=(10, 10, 100, 40), confidence=1.0)
    far = OcrLine(text="26.00", box=(500, 12, 580, 42), confidence=1.0)
    near = OcrLine(text="RM", box=(300, 11, 340, 41), confidence=1.0)
    below = OcrLine(text="CASH", box=(120, 60, 200, 90), confidence=1.0)
    pairs = line_neighbours([label, far, near, below])
    assert (label, near) in pairs and (near, far) in pairs
    assert all(below not in pair for pair in pairs)
