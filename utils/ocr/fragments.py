"""The geometry records of reading order: an engine fragment in the deskewed page frame,
and a visual line made of such fragments, with the thresholds they share."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from models.ocr.base import OcrLine

SAME_LINE_OVERLAP = 0.5
"""Two fragments share a line when their vertical overlap is at least this share of
the smaller height: half a line of overlap tolerates skew and mixed font sizes
without chaining neighbouring lines together."""

STACKED_OVERLAP = 0.3
"""Fragments overlapping horizontally by more than this share of the narrower one
are stacked (different lines), never parts of one line."""

MIN_CELL_GAP = 1.0
"""Table cells are separated by at least this many line heights of white space."""


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


def positioned(fragments: list[OcrLine]) -> bool:
    """Whether every fragment has a box (a VLM's text lines have none)."""
    return all(f.box is not None for f in fragments)


def median_height(fragments: Iterable[Fragment]) -> float:
    """Typical text height; fragment heights, because a tilted line's box is inflated."""
    heights = [fragment.height for fragment in fragments]
    return max(statistics.median(heights), 1.0) if heights else 1.0


def line_height(lines: Iterable[VisualLine]) -> float:
    return median_height(part for line in lines for part in line.parts)
