"""Labels and their values, paired by position on the page.

A value sits on the label's visual row, to the right, or else on the line just
below; text without positions (a VLM's) counts one line as one row.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.ocr.base import OcrLine
from models.templates import FieldSpec
from utils.fields.text_match import has_any, label_end

# How sure a labelled value is on its own, by where it sat; multiplied by the
# OCR confidence of the line(s) the value came from.
SURE_SAME_ROW = 0.9
SURE_BELOW = 0.75


def _same_row(a: OcrLine, b: OcrLine) -> bool:
    overlap = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    return overlap > 0.5 * max(1, min(a.height, b.height))


def _row_to_the_right(lines: list[OcrLine], index: int) -> list[int]:
    """Other lines on the same visual row that start right of this line's middle."""
    anchor = lines[index]
    if anchor.box is None:  # text without positions (a VLM's): one line is one row
        return []
    middle = (anchor.box[0] + anchor.box[2]) / 2
    found = [
        j
        for j, other in enumerate(lines)
        if j != index and other.box[0] >= middle and _same_row(anchor, other)
    ]
    return sorted(found, key=lambda j: lines[j].box[0])


def line_below(lines: list[OcrLine], index: int) -> int | None:
    """The nearest line just under this one that overlaps it horizontally."""
    anchor = lines[index]
    if anchor.box is None:  # text without positions: the next line is the one below
        return index + 1 if index + 1 < len(lines) else None
    reach = anchor.box[3] + 1.5 * max(anchor.height, 1)
    best, best_gap = None, None
    for j, other in enumerate(lines):
        below = anchor.center_y < other.box[1] <= reach
        overlaps = other.box[0] < anchor.box[2] and other.box[2] > anchor.box[0]
        if j == index or not (below and overlaps):
            continue
        gap = other.box[1] - anchor.box[3]
        if best_gap is None or gap < best_gap:
            best, best_gap = j, gap
    return best


@dataclass(frozen=True)
class Labelled:
    """The text after a label on its row, and the lines it came from."""

    text: str
    confidence: float


def after_label(lines: list[OcrLine], index: int, end_of_label: int) -> Labelled:
    """Text after the label on the label's line plus the rest of its visual row."""
    parts = [lines[index].text[end_of_label:]]
    confidences = [lines[index].confidence]
    for j in _row_to_the_right(lines, index):
        parts.append(lines[j].text)
        confidences.append(lines[j].confidence)
    text = " ".join(part.strip() for part in parts if part.strip())
    return Labelled(text=text, confidence=min(confidences))


def labelled_lines(spec: FieldSpec, lines: list[OcrLine]) -> list[tuple[int, int]]:
    """(line index, label end) of lines holding a keyword and no excluded keyword."""
    found = []
    for i, line in enumerate(lines):
        end = label_end(line.text, spec.keywords)
        if end is not None and not has_any(line.text, spec.exclude_keywords):
            found.append((i, end))
    return found


def ordered(items: list, pick: str) -> list:
    """``items`` in the order ``FieldSpec.pick`` searches them: top down, or bottom up."""
    return list(reversed(items)) if pick == "last" else items
