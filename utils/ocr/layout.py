"""Reading order for OCR fragments: visual lines, columns, plain text and Markdown.

Engines such as RapidOCR return one fragment per detected text box, in no useful
order; one visual line of a receipt ("TOTAL" ... "12.50") is often two or more
fragments, and a scanned page is usually tilted by a degree or two. This module
turns fragments into visual lines in reading order:

1. estimate the page skew from pairs of neighbouring fragments on one line and
   rotate every fragment centre by it, so that lines become horizontal;
2. group fragments into lines by vertical overlap with the horizontally nearest
   fragment already on the line (robust to curved or residually tilted lines);
3. find column gutters (a vertical band that no fragment crosses over a run of
   lines) and, where both sides look like columns of running text, read the left
   column before the right one; receipts and tables are never split this way;
4. optionally render Markdown: paragraphs at large vertical gaps, and runs of
   lines with aligned cells as tables.

All geometry below works on the deskewed coordinates; output boxes are always
unions of the engine's original boxes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.ocr.base import OcrLine

MAX_SKEW_SLOPE = math.tan(math.radians(5))
"""Steeper estimates are not page skew but fragments of different lines."""

SAME_LINE_OVERLAP = 0.5
"""Two fragments share a line when their vertical overlap is at least this share of
the smaller height: half a line of overlap tolerates skew and mixed font sizes
without chaining neighbouring lines together."""

STACKED_OVERLAP = 0.3
"""Fragments overlapping horizontally by more than this share of the narrower one
are stacked (different lines), never parts of one line."""

MIN_GUTTER = 1.0
"""Narrowest column gutter, in line heights: wider than any word space (~0.3)."""

MIN_COLUMN_LINES = 3
MIN_COLUMN_FILL = 0.7
"""Running text fills most of its column; receipt labels and amounts do not."""

MAX_BROKEN_COLUMN_LINES = 0.2
"""At most this share of a text column's lines may hold a cell-wide gap (receipt rows do)."""

MIN_COLUMN_LETTERS = 0.5
"""A text column is mostly letters; a column of amounts or codes is not."""

PARAGRAPH_GAP = 1.2
"""A vertical gap above this many line heights starts a new paragraph."""

MIN_CELL_GAP = 1.0
"""Table cells are separated by at least this many line heights of white space."""

CELL_ALIGN_TOLERANCE = 0.6
"""Cell edges or centres within this many line heights count as one column."""


@dataclass(frozen=True)
class Fragment:
    """One engine fragment with its box moved into the deskewed page frame."""

    source: OcrLine
    left: float
    top: float
    right: float
    bottom: float

    @property
    def cx(self) -> float:
        return (self.left + self.right) / 2

    @property
    def cy(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def text(self) -> str:
        return self.source.text.strip()


@dataclass(frozen=True)
class VisualLine:
    """The fragments of one visual line, left to right, in the deskewed frame."""

    parts: tuple[Fragment, ...]

    @property
    def fragments(self) -> tuple[OcrLine, ...]:
        """The engine's original fragments, left to right."""
        return tuple(part.source for part in self.parts)

    @property
    def left(self) -> float:
        return min(part.left for part in self.parts)

    @property
    def right(self) -> float:
        return max(part.right for part in self.parts)

    @property
    def top(self) -> float:
        return min(part.top for part in self.parts)

    @property
    def bottom(self) -> float:
        return max(part.bottom for part in self.parts)

    @property
    def cy(self) -> float:
        return statistics.fmean(part.cy for part in self.parts)

    @property
    def text(self) -> str:
        return " ".join(part.text for part in self.parts)

    def to_ocr_line(self) -> OcrLine:
        """One OcrLine: texts joined by a space, union box, length-weighted confidence."""
        boxes = [part.source.box for part in self.parts]
        union = (
            min(box[0] for box in boxes),
            min(box[1] for box in boxes),
            max(box[2] for box in boxes),
            max(box[3] for box in boxes),
        )
        # Long fragments carry more of the line's text, so they weigh more.
        total_length = sum(len(part.text) for part in self.parts)
        weighted = sum(len(part.text) * part.source.confidence for part in self.parts)
        confidence = min(1.0, max(0.0, weighted / total_length))
        return OcrLine(text=self.text, box=union, confidence=confidence)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def visual_lines(fragments: Iterable[OcrLine]) -> list[VisualLine]:
    """Fragments grouped into visual lines, in reading order (columns one after another).

    Blank fragments are dropped. The result does not depend on the input order.
    """
    sources = sorted((f for f in fragments if f.text.strip()), key=_canonical_key)
    if not sources:
        return []
    slope = estimate_skew(sources)
    return _read_region(_deskewed(sources, slope))


def reading_order(fragments: Iterable[OcrLine]) -> list[OcrLine]:
    """One merged OcrLine per visual line, in reading order.

    Text without positions (a VLM's lines) is already in reading order: kept as is.
    """
    fragments = list(fragments)
    if not _positioned(fragments):
        return [f for f in fragments if f.text.strip()]
    return [line.to_ocr_line() for line in visual_lines(fragments)]


def _positioned(fragments: list[OcrLine]) -> bool:
    return all(f.box is not None for f in fragments)


def to_plain_text(lines: Iterable[OcrLine]) -> str:
    """Lines joined by newlines (pass the output of ``reading_order``)."""
    return "\n".join(line.text for line in lines)


def table_rows(fragments: Iterable[OcrLine]) -> list[list[list[str]]]:
    """Every table found on the page: a list of rows, each a list of cell texts."""
    fragments = list(fragments)
    if not _positioned(fragments):
        return []
    lines = visual_lines(fragments)
    height = _line_height(lines)
    return [
        [[part.text for part in line.parts] for line in run]
        for paragraph in _paragraphs(lines, height)
        for is_table, run in _segments(paragraph, height)
        if is_table
    ]


def to_markdown(fragments: Iterable[OcrLine]) -> str:
    """Markdown: paragraphs separated by blank lines, aligned cell runs as tables."""
    fragments = list(fragments)
    if not _positioned(fragments):
        return "\n".join(f.text for f in fragments if f.text.strip())
    lines = visual_lines(fragments)
    height = _line_height(lines)
    blocks = [
        _markdown_table(run) if is_table else "\n".join(line.text for line in run)
        for paragraph in _paragraphs(lines, height)
        for is_table, run in _segments(paragraph, height)
    ]
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------
# Skew
# ---------------------------------------------------------------------------


def estimate_skew(fragments: Sequence[OcrLine]) -> float:
    """Page skew as a slope (dy per dx, positive when lines descend to the right).

    Distance-weighted median of the slopes between each fragment and its nearest
    right neighbour on the same line; 0 without at least two such pairs. The
    median ignores the odd pair of fragments from different lines.
    """
    pairs = _neighbour_slopes(_deskewed(fragments, 0.0))
    if len(pairs) < 2:
        return 0.0
    return max(-MAX_SKEW_SLOPE, min(MAX_SKEW_SLOPE, _weighted_median(pairs)))


def _neighbour_slopes(fragments: Sequence[Fragment]) -> list[tuple[float, float]]:
    """(slope, horizontal distance) from each fragment to its nearest right neighbour."""
    left = np.array([f.left for f in fragments])
    right = np.array([f.right for f in fragments])
    top = np.array([f.top for f in fragments])
    bottom = np.array([f.bottom for f in fragments])
    cx, cy = (left + right) / 2, (top + bottom) / 2
    height = bottom - top
    pairs = []
    for i in range(len(fragments)):
        overlap = np.minimum(bottom, bottom[i]) - np.maximum(top, top[i])
        smaller = np.maximum(np.minimum(height, height[i]), 1e-9)
        narrower = np.minimum(right - left, right[i] - left[i])
        beside = (cx > cx[i]) & (left >= right[i] - STACKED_OVERLAP * narrower)
        candidates = np.flatnonzero(beside & (overlap >= SAME_LINE_OVERLAP * smaller))
        if candidates.size == 0:
            continue
        j = candidates[np.argmin(left[candidates])]  # argmin keeps the first on ties
        slope = (cy[j] - cy[i]) / (cx[j] - cx[i])
        if abs(slope) <= MAX_SKEW_SLOPE:
            pairs.append((float(slope), float(cx[j] - cx[i])))
    return pairs


def _weighted_median(pairs: Sequence[tuple[float, float]]) -> float:
    """Median of values weighted by distance: far pairs measure slope more precisely."""
    ordered = sorted(pairs)
    half = sum(weight for _, weight in ordered) / 2
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= half:
            return value
    return ordered[-1][0]


def _deskewed(sources: Sequence[OcrLine], slope: float) -> list[Fragment]:
    """Rotate each box centre by the skew angle; the box keeps its size."""
    angle = math.atan(slope)
    cos, sin = math.cos(angle), math.sin(angle)
    fragments = []
    for source in sources:
        left, top, right, bottom = source.box
        cx, cy = (left + right) / 2, (top + bottom) / 2
        new_cx, new_cy = cx * cos + cy * sin, cy * cos - cx * sin
        half_w, half_h = (right - left) / 2, (bottom - top) / 2
        fragments.append(
            Fragment(source, new_cx - half_w, new_cy - half_h, new_cx + half_w, new_cy + half_h)
        )
    return fragments


def _canonical_key(line: OcrLine) -> tuple:
    """A total order on fragments, so shuffled input gives identical output."""
    left, top, right, bottom = line.box
    return (top, left, bottom, right, line.text, line.confidence)


# ---------------------------------------------------------------------------
# Lines
# ---------------------------------------------------------------------------


def _group_lines(fragments: Sequence[Fragment]) -> list[VisualLine]:
    """Greedy top-to-bottom grouping; each fragment joins the line it sits best on."""
    lines: list[list[Fragment]] = []
    for fragment in sorted(fragments, key=lambda f: (f.cy, f.left)):
        best, best_offset = None, math.inf
        for members in lines:
            offset = _offset_from_line(members, fragment)
            if offset is not None and offset < best_offset:
                best, best_offset = members, offset
        if best is None:
            lines.append([fragment])
        else:
            best.append(fragment)
    grouped = [VisualLine(tuple(sorted(members, key=lambda f: f.left))) for members in lines]
    return sorted(grouped, key=lambda line: (line.cy, line.left))


def _offset_from_line(members: Sequence[Fragment], fragment: Fragment) -> float | None:
    """Vertical offset from the line's nearest fragment, or None if it is not on this line.

    Comparing with the horizontally nearest member (not the line's mean) follows a
    line that still bends or tilts a little after deskewing.
    """
    if any(_stacked(member, fragment) for member in members):
        return None
    nearest = min(members, key=lambda member: _horizontal_distance(member, fragment))
    overlap = min(nearest.bottom, fragment.bottom) - max(nearest.top, fragment.top)
    if overlap < SAME_LINE_OVERLAP * min(nearest.height, fragment.height):
        return None
    return abs(nearest.cy - fragment.cy)


def _stacked(a: Fragment, b: Fragment) -> bool:
    overlap = min(a.right, b.right) - max(a.left, b.left)
    return overlap > STACKED_OVERLAP * min(a.width, b.width)


def _horizontal_distance(a: Fragment, b: Fragment) -> float:
    return max(0.0, max(a.left, b.left) - min(a.right, b.right))


def _median_height(fragments: Iterable[Fragment]) -> float:
    """Typical text height; fragment heights, because a tilted line's box is inflated."""
    heights = [fragment.height for fragment in fragments]
    return max(statistics.median(heights), 1.0) if heights else 1.0


def _line_height(lines: Iterable[VisualLine]) -> float:
    return _median_height(part for line in lines for part in line.parts)


# ---------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------


def _read_region(fragments: Sequence[Fragment]) -> list[VisualLine]:
    """Lines of a region in reading order; column runs are read left, then right."""
    lines = _group_lines(fragments)
    height = _median_height(fragments)
    ordered: list[VisualLine] = []
    start = 0
    while start < len(lines):
        split = _column_split(lines, start, height)
        if split is None:
            ordered.append(lines[start])
            start += 1
            continue
        end, gutter_x = split
        run_parts = [part for line in lines[start:end] for part in line.parts]
        ordered += _read_region([part for part in run_parts if part.cx < gutter_x])
        ordered += _read_region([part for part in run_parts if part.cx >= gutter_x])
        start = end
    return ordered


def _column_split(
    lines: Sequence[VisualLine], start: int, height: float
) -> tuple[int, float] | None:
    """(end of the run, gutter x) when lines[start:end] form two text columns."""
    end, gaps = _gutter_run(lines, start, MIN_GUTTER * height)
    if not gaps:
        return None
    gutter = max(gaps, key=lambda gap: (gap[1] - gap[0], -gap[0]))
    if not _looks_like_text_columns(lines[start:end], gutter):
        return None
    return end, (gutter[0] + gutter[1]) / 2


def _gutter_run(
    lines: Sequence[VisualLine], start: int, min_width: float
) -> tuple[int, list[tuple[float, float]]]:
    """Longest run from ``start`` whose fragments leave a vertical gap with text on both sides."""
    covered = _merged_spans([(p.left, p.right) for p in lines[start].parts])
    gaps = _gaps(covered, min_width)
    end = start + 1
    while end < len(lines):
        merged = _merged_spans(covered + [(p.left, p.right) for p in lines[end].parts])
        new_gaps = _gaps(merged, min_width)
        if not new_gaps:
            break
        covered, gaps, end = merged, new_gaps, end + 1
    return end, gaps


def _merged_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for left, right in sorted(spans):
        if merged and left <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], right))
        else:
            merged.append((left, right))
    return merged


def _gaps(spans: Sequence[tuple[float, float]], min_width: float) -> list[tuple[float, float]]:
    return [
        (a[1], b[0]) for a, b in zip(spans, spans[1:], strict=False) if b[0] - a[1] >= min_width
    ]


def _looks_like_text_columns(run: Sequence[VisualLine], gutter: tuple[float, float]) -> bool:
    """Two columns of running text, not a receipt's labels and amounts or a table.

    Each side needs several lines that mostly fill the column and mostly letters,
    and the gutter must be narrow next to the columns.
    """
    middle = (gutter[0] + gutter[1]) / 2
    left_side = [[p for p in line.parts if p.cx < middle] for line in run]
    right_side = [[p for p in line.parts if p.cx >= middle] for line in run]
    left_side = [parts for parts in left_side if parts]
    right_side = [parts for parts in right_side if parts]
    if min(len(left_side), len(right_side)) < MIN_COLUMN_LINES:
        return False
    left_width = gutter[0] - min(p.left for parts in left_side for p in parts)
    right_width = max(p.right for parts in right_side for p in parts) - gutter[1]
    if gutter[1] - gutter[0] > 0.5 * min(left_width, right_width):
        return False
    height = _median_height(p for parts in left_side + right_side for p in parts)
    return all(
        _fills_column(side, width) and _mostly_letters(side) and _mostly_unbroken(side, height)
        for side, width in ((left_side, left_width), (right_side, right_width))
    )


def _fills_column(side: Sequence[Sequence[Fragment]], width: float) -> bool:
    spans = [max(p.right for p in parts) - min(p.left for p in parts) for parts in side]
    return statistics.median(spans) >= MIN_COLUMN_FILL * width


def _mostly_unbroken(side: Sequence[Sequence[Fragment]], height: float) -> bool:
    """Lines of running text have word spaces only; cell gaps inside a side mean a table."""
    broken = sum(_has_cell_gap(parts, height) for parts in side)
    return broken <= MAX_BROKEN_COLUMN_LINES * len(side)


def _has_cell_gap(parts: Sequence[Fragment], height: float) -> bool:
    ordered = sorted(parts, key=lambda p: p.left)
    return any(
        b.left - a.right >= MIN_CELL_GAP * height
        for a, b in zip(ordered, ordered[1:], strict=False)
    )


def _mostly_letters(side: Sequence[Sequence[Fragment]]) -> bool:
    text = "".join(p.text for parts in side for p in parts if p.text)
    visible = [char for char in text if not char.isspace()]
    letters = sum(char.isalpha() for char in visible)
    return bool(visible) and letters >= MIN_COLUMN_LETTERS * len(visible)


# ---------------------------------------------------------------------------
# Paragraphs and tables
# ---------------------------------------------------------------------------


def _paragraphs(lines: Sequence[VisualLine], height: float) -> list[list[VisualLine]]:
    """Split at large vertical gaps and where reading jumps up (into the next column)."""
    paragraphs: list[list[VisualLine]] = []
    for line in lines:
        if paragraphs and not _starts_paragraph(paragraphs[-1][-1], line, height):
            paragraphs[-1].append(line)
        else:
            paragraphs.append([line])
    return paragraphs


def _starts_paragraph(previous: VisualLine, line: VisualLine, height: float) -> bool:
    gap = line.top - previous.bottom
    return gap > PARAGRAPH_GAP * height or line.cy < previous.top


def _segments(
    paragraph: Sequence[VisualLine], height: float
) -> list[tuple[bool, list[VisualLine]]]:
    """The paragraph cut into (is_table, lines) pieces; tables are runs of ≥ 2 aligned lines."""
    runs: list[list[VisualLine]] = []
    for line in paragraph:
        if runs and _same_columns(runs[-1][-1], line, height):
            runs[-1].append(line)
        else:
            runs.append([line])
    segments: list[tuple[bool, list[VisualLine]]] = []
    for run in runs:
        is_table = len(run) >= 2
        if not is_table and segments and not segments[-1][0]:
            segments[-1][1].extend(run)  # consecutive plain lines stay one text block
        else:
            segments.append((is_table, run))
    return segments


def _same_columns(a: VisualLine, b: VisualLine, height: float) -> bool:
    """Same number (≥ 2) of well-separated cells, each aligned left, right or centred."""
    if len(a.parts) != len(b.parts) or len(a.parts) < 2:
        return False
    if not (_cells_separated(a, height) and _cells_separated(b, height)):
        return False
    tolerance = CELL_ALIGN_TOLERANCE * height
    return all(
        min(abs(x.left - y.left), abs(x.right - y.right), abs(x.cx - y.cx)) <= tolerance
        for x, y in zip(a.parts, b.parts, strict=True)
    )


def _cells_separated(line: VisualLine, height: float) -> bool:
    """Word-level fragments (Tesseract) sit a word space apart; table cells much further."""
    return all(
        b.left - a.right >= MIN_CELL_GAP * height
        for a, b in zip(line.parts, line.parts[1:], strict=False)
    )


def _markdown_table(run: Sequence[VisualLine]) -> str:
    rows = [[_escape_cell(part.text) for part in line.parts] for line in run]
    header, body = rows[0], rows[1:]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _escape_cell(text: str) -> str:
    """Only pipes break a table cell; st.markdown renders no raw HTML, so nothing else."""
    return text.replace("|", "\\|")
