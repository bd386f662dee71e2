"""The ``date`` kind: a printed date, returned exactly as printed."""

from __future__ import annotations

import re

from models.templates import NOT_FOUND, FieldSpec, FieldValue
from utils.fields.labels import (
    SURE_BELOW,
    SURE_SAME_ROW,
    after_label,
    labelled_lines,
    line_below,
    ordered,
)
from utils.fields.page import PageLines
from utils.fields.text_match import has_any

# A date found on a line with no date label: any date on the page will do, so less sure.
_SURE_UNLABELLED = 0.6

_MONTH = r"(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC)[A-Z]*\.?"
# A 19xx/20xx or two-digit year; OCR often glues the time on ("05-03-201819:02:50").
_YEAR = r"((?:19|20)\d{2}|\d{2})(?:(?!\d)|(?=\d{1,2}:\d{2}))"
# OCR may put a space next to a separator ("18 /04/2017"): one is allowed on each side.
_SEP = r" ?([/.-]) ?"
_SAME_SEP = r" ?\2 ?"
_DATE_PATTERNS = [
    # 25/12/2018, 12-28-2017, 17.01.18
    re.compile(rf"(?<![\dA-Za-z])(\d{{1,2}}){_SEP}(\d{{1,2}}){_SAME_SEP}{_YEAR}"),
    # 2017-12-28
    re.compile(rf"(?<![\dA-Za-z])(\d{{4}}){_SEP}(\d{{1,2}}){_SAME_SEP}(\d{{1,2}})(?!\d)"),
    # 10 MAR 2018, 14/JUN/2017, 05 MAY 18, 4 DECEMBER, 2017
    re.compile(rf"(?<![\dA-Za-z])(\d{{1,2}})[\s/.-]*({_MONTH})[\s/.,-]*{_YEAR}", re.I),
    # March 10, 2018
    re.compile(rf"(?<![A-Za-z])({_MONTH})\s*(\d{{1,2}}),?\s+(\d{{4}})(?!\d)", re.I),
]


def _plausible_numeric_date(match: re.Match[str]) -> bool:
    """Day and month in range in either order (receipts print both d/m and m/d)."""
    groups = match.groups()
    if len(groups[0]) == 4:  # year first
        first, second = int(groups[2]), int(groups[3])
        return 1 <= first <= 12 and 1 <= second <= 31
    first, second = int(groups[0]), int(groups[2])
    return (1 <= first <= 31 and 1 <= second <= 12) or (1 <= first <= 12 and 1 <= second <= 31)


def find_date(text: str) -> str | None:
    """The first printed date in ``text``, exactly as printed, or None."""
    best: re.Match[str] | None = None
    for number, pattern in enumerate(_DATE_PATTERNS):
        for match in pattern.finditer(text):
            if number < 2 and not _plausible_numeric_date(match):
                continue
            if best is None or match.start() < best.start():
                best = match
            break
    return best.group(0).strip(" ,") if best else None


def extract_date(spec: FieldSpec, page: PageLines) -> FieldValue:
    """A date next to a label (same row, else the line below), else any date on the page."""
    lines = page.lines
    for index, label_end in ordered(labelled_lines(spec, lines), spec.pick):
        after = after_label(lines, index, label_end)
        found = find_date(after.text)
        if found:
            return FieldValue(value=found, confidence=after.confidence * SURE_SAME_ROW, line=index)
        below = line_below(lines, index)
        found = find_date(lines[below].text) if below is not None else None
        if found:
            confidence = min(lines[index].confidence, lines[below].confidence) * SURE_BELOW
            return FieldValue(value=found, confidence=confidence, line=below)
    for index in ordered(list(range(len(lines))), spec.pick):
        if has_any(lines[index].text, spec.exclude_keywords):
            continue
        found = find_date(lines[index].text)
        if found:
            confidence = lines[index].confidence * _SURE_UNLABELLED
            return FieldValue(value=found, confidence=confidence, line=index)
    return NOT_FOUND
