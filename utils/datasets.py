"""Labelled document sets: SROIE-style folders (ID.jpg + ID.csv + ID.json).

``ID.csv`` holds one text line per row: eight corner coordinates, then the
text (which may itself contain commas); ``ID.json`` holds the key fields.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from models.ocr_base import OcrLine

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")


@dataclass(frozen=True)
class LabelledItem:
    """One document with its ground truth (either part may be missing)."""

    item_id: str
    image: Path
    lines: list[OcrLine] | None
    fields: dict[str, str] | None

    @property
    def text(self) -> str:
        """Ground-truth text: the lines in file order, one per line."""
        return "\n".join(line.text for line in self.lines or [])


def sroie_items(folder: Path) -> list[LabelledItem]:
    """Every image in ``folder`` with whatever ground truth sits beside it, sorted by id."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [_item(image) for image in images]


def _item(image: Path) -> LabelledItem:
    csv_path, json_path = image.with_suffix(".csv"), image.with_suffix(".json")
    lines = read_sroie_lines(csv_path) if csv_path.is_file() else None
    fields = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else None
    return LabelledItem(image.stem, image, lines, fields)


def read_sroie_lines(path: Path) -> list[OcrLine]:
    """The CSV's rows as OcrLines (confidence 1.0), in file order; blank rows skipped."""
    lines = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for row in csv.reader(text.splitlines()):
        if len(row) < 9:
            continue
        coords = [float(value) for value in row[:8]]
        xs, ys = coords[0::2], coords[1::2]
        line_text = ",".join(row[8:]).strip()
        if line_text:
            box = (int(min(xs)), int(min(ys)), round(max(xs)), round(max(ys)))
            lines.append(OcrLine(text=line_text, box=box, confidence=1.0))
    return lines
