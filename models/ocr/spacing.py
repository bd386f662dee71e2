"""Word spaces from the image: put back the spaces a line recogniser dropped.

CTC recognisers such as PP-OCR's read a whole line crop and often leave out a
space between two words ("TAXINVOICE", "TEL:03-4021"), because a space is just
a wide stretch of blank columns and the model only emits it when it is sure.
The decoder does say where each character was read (the CTC time step of its
peak), and the crop shows where the ink is, so the evidence for a missed space
is visual: between two neighbouring characters there is a run of ink-free
columns clearly wider than the gaps between the letters of a word.

Widths are measured in units of the line's character pitch (median distance
between neighbouring character peaks), so the rule does not depend on the
font size or the crop's scale. Only spaces are added; the recogniser's own
characters and spaces are kept as they are.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

MIN_SPACE_PITCHES = 0.85
"""A blank run this many character pitches wide is a word space. In a monospaced
receipt font a space leaves about 1.2 pitches blank, while a narrow glyph inside a
word (':', '.', 'I') leaves up to about 0.7 on each side of it; proportional fonts
sit in between, so only their wider spaces are found. (0.85 was the best of
0.45-1.0 on the SROIE receipts: lower splits words at narrow glyphs.)"""

MIN_SPACE_AFTER_COLON_PITCHES = 0.55
"""Right after a label's colon a narrower blank run is already a space ("TEL: 03-4021").
On the SROIE receipts 43 of the 46 unspaced colons with at least 0.5 pitches blank on
their right were printed with a space there, while on a colon's left the same width
was a space only half the time (labels pad to line their colons up), so only the
right side gets the lower threshold. Tuned on the even ids, 0.45-0.75; the odd ids
gained as much. Not between two digits: "12:36" is a time."""

TEXT_BAND_SHARE = 0.15
"""Rows with at least this share of the busiest row's ink belong to the text line;
the crop's margins may hold bits of the lines above and below, which would fill gaps."""

INK_CONTRAST = 0.35
"""A pixel is ink when it is darker than the crop's paper by this share of the
paper-to-ink contrast (robust to grey thermal paper and faded print)."""

MIN_CONTRAST = 40
"""Crops with less grey-level contrast than this hold no readable ink evidence."""


def respace(text: str, char_x: Sequence[float], gray: np.ndarray) -> str:
    """``text`` with a space added wherever the crop shows one between two characters.

    ``char_x`` holds, for every non-space character of ``text`` in order, its x
    position in ``gray`` (the line crop the text was read from, dark text on
    light paper). Anything inconsistent returns ``text`` unchanged.
    """
    chars = [char for char in text if not char.isspace()]
    if len(chars) < 2 or len(char_x) != len(chars) or gray.ndim != 2:
        return text
    blank = blank_columns(gray)
    if blank is None:
        return text
    pitch = _character_pitch(text, char_x)
    if pitch <= 0:
        return text
    out: list[str] = []
    index = -1
    for position, char in enumerate(text):
        if char.isspace():
            out.append(char)
            continue
        index += 1
        follows_char = position > 0 and not text[position - 1].isspace()
        if follows_char:
            min_width = _space_threshold(text, position) * pitch
            if _gap_is_space(blank, char_x[index - 1], char_x[index], min_width):
                out.append(" ")
        out.append(char)
    return "".join(out)


def _space_threshold(text: str, position: int) -> float:
    """Blank pitches that make a space before ``text[position]``, whose left neighbour is
    a character."""
    if text[position - 1] != ":":
        return MIN_SPACE_PITCHES
    in_a_time = position >= 2 and text[position - 2].isdigit() and text[position].isdigit()
    return MIN_SPACE_PITCHES if in_a_time else MIN_SPACE_AFTER_COLON_PITCHES


def blank_columns(gray: np.ndarray) -> np.ndarray | None:
    """Per column of the crop, whether the text line's band holds no ink there."""
    values = gray.astype(np.float32)
    paper = float(np.percentile(values, 90))
    darkest = float(np.percentile(values, 1))
    if paper - darkest < MIN_CONTRAST:
        return None
    ink = values < paper - INK_CONTRAST * (paper - darkest)
    top, bottom = _text_band(ink.sum(axis=1))
    return ~ink[top:bottom].any(axis=0)


def _text_band(row_ink: np.ndarray) -> tuple[int, int]:
    """Rows [top, bottom) of the run of inked rows holding the most ink: the line itself,
    not the slivers of neighbouring lines a generous detector box may take in."""
    inked = row_ink >= TEXT_BAND_SHARE * row_ink.max()
    best, best_ink, start = (0, row_ink.size), -1.0, None
    for row, is_inked in enumerate([*inked, False]):
        if is_inked and start is None:
            start = row
        elif not is_inked and start is not None:
            run_ink = float(row_ink[start:row].sum())
            if run_ink > best_ink:
                best, best_ink = (start, row), run_ink
            start = None
    return best


def _character_pitch(text: str, char_x: Sequence[float]) -> float:
    """Median distance between the peaks of characters not separated by a space."""
    distances = []
    index = -1
    for position, char in enumerate(text):
        if char.isspace():
            continue
        index += 1
        if index > 0 and not text[position - 1].isspace():
            distances.append(char_x[index] - char_x[index - 1])
    return statistics.median(distances) if distances else 0.0


def _gap_is_space(blank: np.ndarray, start: float, end: float, min_width: float) -> bool:
    """Whether the widest blank run between two character peaks is a word space."""
    left, right = _longest_run(blank, start, end)
    return right - left >= min_width


def _longest_run(blank: np.ndarray, start: float, end: float) -> tuple[int, int]:
    """[left, right) of the longest run of blank columns strictly between two x positions."""
    lo = max(int(round(start)) + 1, 0)
    hi = min(int(round(end)), blank.size)
    best = (lo, lo)
    run_start = None
    for column in range(lo, hi + 1):
        is_blank = column < hi and bool(blank[column])
        if is_blank and run_start is None:
            run_start = column
        elif not is_blank and run_start is not None:
            if column - run_start > best[1] - best[0]:
                best = (run_start, column)
            run_start = None
    return best
