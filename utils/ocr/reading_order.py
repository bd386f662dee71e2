"""Reading order for OCR fragments: visual lines, columns, plain text.

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
4. optionally render Markdown (``utils.ocr.markdown``): paragraphs at large
   vertical gaps, and runs of lines with aligned cells as tables.

All geometry below works on the deskewed coordinates; output boxes are always
unions of the engine's original boxes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from models.ocr.base import OcrLine
from utils.ocr.fragments import (
    MIN_CELL_GAP,
    SAME_LINE_OVERLAP,
    STACKED_OVERLAP,
    Fragment,
    VisualLine,
    median_height,
    positioned,
)
from utils.ocr.skew import canonical_key, deskewed, skew_from_boxes

MIN_GUTTER = 1.0
"""Narrowest column gutter, in line heights: wider than any word space (~0.3)."""

BLOCK_GAP = 2.0
"""Parts of one visual line at least this many line heights apart are separate blocks
(an address and the invoice number printed beside it), for the field rules."""

MIN_COLUMN_LINES = 3
MIN_COLUMN_FILL = 0.7
"""Running text fills most of its column; receipt labels and amounts do not."""

MAX_BROKEN_COLUMN_LINES = 0.2
"""At most this share of a text column's lines may hold a cell-wide gap (receipt rows do)."""

MIN_COLUMN_LETTERS = 0.5
"""A text column is mostly letters; a column of amounts or codes is not."""


def visual_lines(fragments: Iterable[OcrLine]) -> list[VisualLine]:
    """Fragments grouped into visual lines, in reading order (columns one after another).

    Blank fragments are dropped. The result does not depend on the input order.
    """
    sources = sorted((f for f in fragments if f.text.strip()), key=canonical_key)
    if not sources:
        return []
    slope = skew_from_boxes(sources)
    return _read_region(deskewed(sources, slope))


def reading_order(fragments: Iterable[OcrLine]) -> list[OcrLine]:
    """One merged OcrLine per visual line, in reading order.

    Text without positions (a VLM's lines) is already in reading order: kept as is.
    """
    fragments = list(fragments)
    if not positioned(fragments):
        return [f for f in fragments if f.text.strip()]
    return [line.to_ocr_line() for line in visual_lines(fragments)]


def line_blocks(fragments: Iterable[OcrLine]) -> list[list[OcrLine]]:
    """Per line of ``reading_order`` (same order), its blocks left to right: runs of
    fragments without a gap of ``BLOCK_GAP`` line heights, each merged into one OcrLine.
    Empty lists when the fragments have no positions."""
    fragments = list(fragments)
    if not positioned(fragments):
        return [[] for f in fragments if f.text.strip()]
    lines = visual_lines(fragments)
    height = median_height(part for line in lines for part in line.parts)
    return [_blocks(line, BLOCK_GAP * height) for line in lines]


def _blocks(line: VisualLine, min_gap: float) -> list[OcrLine]:
    runs: list[list[Fragment]] = [[line.parts[0]]]
    for before, part in zip(line.parts, line.parts[1:], strict=False):
        if part.left - before.right >= min_gap:
            runs.append([])
        runs[-1].append(part)
    return [VisualLine(tuple(run)).to_ocr_line() for run in runs]


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


# ---------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------


def _read_region(fragments: Sequence[Fragment]) -> list[VisualLine]:
    """Lines of a region in reading order; column runs are read left, then right."""
    lines = _group_lines(fragments)
    height = median_height(fragments)
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
    height = median_height(p for parts in left_side + right_side for p in parts)
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
