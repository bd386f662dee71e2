"""Lone colons the detector missed: two stacked dots alone between two fragments.

Receipts print labels and values apart with a colon between them ("TOTAL   :
26.00"). PP-OCR's detector often finds no box for such a colon — two dots a few
pixels wide make a weak text region — so it never reaches the recogniser: the 63
SROIE development receipts hold 270 lone colons, RapidOCR's output 156.

The evidence is visual and narrow: in the blank stretch between a fragment and its
right-hand neighbour on the same line, exactly two small, roughly square blobs of
ink, one above the other, with nothing else in their column. Sizes are measured in
line heights, so the rule does not depend on the font size or the page's scale.
Anything less clear adds nothing; the recogniser's own text is never changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from models.ocr.base import Box, OcrLine

COLON_CONFIDENCE = 0.9
"""A found colon has no recogniser score; the shape test is strict (every one it added
on the SROIE development receipts was in the ground truth), so it is trusted as a
well-read character."""

SAME_LINE = 0.5
"""Two fragments are on one line when their boxes overlap by half the lower one."""

MIN_GAP, MAX_GAP = 0.15, 20.0
"""Gaps narrower than this (in line heights) hold no colon; wider ones are a row's
far ends (a label and its amount), still searched."""

DOT_SIZE = (0.05, 0.35)
"""A colon's dot is this many line heights wide and tall."""

DOT_FILL = 0.35
"""Share of its bounding box a dot's ink fills (an 'l' stroke or a dash cut short fills
its box too, but fails the size test)."""

DOT_SEPARATION = (0.2, 0.65)
"""Centre-to-centre distance of the two dots, in line heights."""

CLEAR_MARGIN = 0.3
"""No other ink within this many line heights left or right of the colon."""

MIN_CONTRAST = 40
"""Regions with less grey-level contrast than this hold no readable ink."""

FAINT_INK = 0.15
"""The second, faint-print threshold: darker than the paper by this share of the
paper-to-ink contrast (thermal receipts fade; their colons fade first)."""


class Blob(NamedTuple):
    """A connected run of ink in a gap: its bounding box and its pixel count."""

    left: int
    top: int
    width: int
    height: int
    area: int

    @property
    def cx(self) -> float:
        return self.left + self.width / 2

    @property
    def cy(self) -> float:
        return self.top + self.height / 2


def find_colons(gray: np.ndarray, fragments: Sequence[OcrLine]) -> list[OcrLine]:
    """The lone colons in the gaps between ``fragments`` on ``gray`` (the page they were
    read from, dark text on light paper), as new fragments; ``[]`` when there are none."""
    found = []
    for left, right in line_neighbours(fragments):
        if left.text.endswith(":") or right.text.startswith(":"):
            continue
        box = _colon_between(gray, left.box, right.box)
        if box is not None:
            found.append(OcrLine(text=":", box=box, confidence=COLON_CONFIDENCE))
    return found


def line_neighbours(fragments: Sequence[OcrLine]) -> list[tuple[OcrLine, OcrLine]]:
    """Each fragment with the nearest one to its right on the same line, if any."""
    by_left = sorted(fragments, key=lambda fragment: fragment.box[0])
    lefts = [fragment.box[0] for fragment in by_left]
    pairs = []
    for fragment in fragments:
        start = bisect.bisect_left(lefts, fragment.box[2])
        beside = (other for other in by_left[start:] if _right_of(fragment.box, other.box))
        nearest = next(beside, None)
        if nearest is not None:
            pairs.append((fragment, nearest))
    return pairs


def _right_of(box: Box, other: Box) -> bool:
    if other is box or other[0] < box[2]:
        return False
    overlap = min(box[3], other[3]) - max(box[1], other[1])
    return overlap >= SAME_LINE * min(box[3] - box[1], other[3] - other[1])


def _colon_between(gray: np.ndarray, left: Box, right: Box) -> Box | None:
    height = min(left[3] - left[1], right[3] - right[1])
    x0, x1 = left[2], right[0]
    if not MIN_GAP * height <= x1 - x0 <= MAX_GAP * height or x1 - x0 < 3:
        return None
    y0, y1 = min(left[1], right[1]), max(left[3], right[3])
    # The fragments' own ink, next to the gap, tells what paper and ink look like here.
    context = gray[y0:y1, max(left[0], x0 - 4 * height) : min(right[2], x1 + 4 * height)]
    if context.size == 0:
        return None
    gap = gray[y0:y1, x0:x1]
    for threshold in _ink_thresholds(context):
        colon = _colon_in(_blobs(gap < threshold), height)
        if colon is not None:
            return (x0 + colon[0], y0 + colon[1], x0 + colon[2], y0 + colon[3])
    return None


def _ink_thresholds(context: np.ndarray) -> list[float]:
    """Otsu's threshold for well-printed text, then a faint-print one."""
    import cv2

    paper, ink = float(np.percentile(context, 75)), float(np.percentile(context, 3))
    if paper - ink < MIN_CONTRAST:
        return []
    otsu, _ = cv2.threshold(context, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return [float(otsu), paper - FAINT_INK * (paper - ink)]


def _blobs(mask: np.ndarray) -> list[Blob]:
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    blobs = (Blob(*(int(value) for value in stats[label][:5])) for label in range(1, count))
    return [blob for blob in blobs if blob.area >= 2]  # single pixels are noise


def _colon_in(blobs: list[Blob], height: int) -> tuple[int, int, int, int] | None:
    """The box (gap coordinates) of two stacked dots with no other ink beside them."""
    dots = [blob for blob in blobs if _is_dot(blob, height)]
    for upper in dots:
        for lower in dots:
            if not _stacked(upper, lower, height):
                continue
            left = min(upper.left, lower.left)
            right = max(upper.left + upper.width, lower.left + lower.width)
            margin = CLEAR_MARGIN * height
            crowded = any(
                blob.left < right + margin and blob.left + blob.width > left - margin
                for blob in blobs
                if blob not in (upper, lower)
            )
            if not crowded:
                return (left, upper.top, right, lower.top + lower.height)
    return None


def _is_dot(blob: Blob, height: int) -> bool:
    smallest, largest = DOT_SIZE[0] * height, DOT_SIZE[1] * height
    return (
        smallest <= blob.width <= largest
        and smallest <= blob.height <= largest
        and blob.area >= DOT_FILL * blob.width * blob.height
    )


def _stacked(upper: Blob, lower: Blob, height: int) -> bool:
    """``lower`` sits under ``upper`` at a colon's spacing, centred on it, of like size."""
    if lower.top <= upper.top + upper.height:
        return False
    if abs(upper.cx - lower.cx) > 0.6 * max(upper.width, lower.width):
        return False
    if not DOT_SEPARATION[0] * height <= lower.cy - upper.cy <= DOT_SEPARATION[1] * height:
        return False
    return max(upper.area, lower.area) <= 3 * min(upper.area, lower.area)
