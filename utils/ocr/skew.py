"""Page skew measured from OCR boxes, and fragments moved into the deskewed frame.

(``utils.documents.geometry.skew_from_pixels`` measures skew from the pixels instead,
before the engine runs.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from models.ocr.base import OcrLine
from utils.ocr.fragments import SAME_LINE_OVERLAP, STACKED_OVERLAP, Fragment

MAX_SKEW_SLOPE = math.tan(math.radians(5))
"""Steeper estimates are not page skew but fragments of different lines."""


def skew_from_boxes(fragments: Sequence[OcrLine]) -> float:
    """Page skew as a slope (dy per dx, positive when lines descend to the right).

    Distance-weighted median of the slopes between each fragment and its nearest
    right neighbour on the same line; 0 without at least two such pairs. The
    median ignores the odd pair of fragments from different lines.
    """
    pairs = _neighbour_slopes(deskewed(fragments, 0.0))
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


def deskewed(sources: Sequence[OcrLine], slope: float) -> list[Fragment]:
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


def canonical_key(line: OcrLine) -> tuple:
    """A total order on fragments, so shuffled input gives identical output."""
    left, top, right, bottom = line.box
    return (top, left, bottom, right, line.text, line.confidence)
