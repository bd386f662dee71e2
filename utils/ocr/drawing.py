"""Boxes drawn on a page image, for the OCR page and the benchmark drill-down."""

from __future__ import annotations

from collections.abc import Iterable

from PIL import Image, ImageDraw

from models.ocr.base import OcrLine


def draw_boxes(
    image: Image.Image, lines: Iterable[OcrLine], scale: float = 1.0, color=(220, 30, 30)
) -> Image.Image:
    """A copy of ``image`` with each line's box outlined.

    ``scale`` maps original-page coordinates onto ``image`` (the processed page
    is usually smaller than the original).
    """
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(min(canvas.size) / 500))
    for line in lines:
        if line.box is None:
            continue
        left, top, right, bottom = (round(v * scale) for v in line.box)
        draw.rectangle((left, top, right, bottom), outline=color, width=width)
    return canvas
