"""The ``keyword_value`` and ``regex`` kinds: free text after a label, or a pattern on a line."""

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

# A following "WORD:" on the same row starts another field ("CS0388 DATE: 10/05/2017").
_NEXT_LABEL = re.compile(r"\s+[A-Za-z][A-Za-z./#]*\s*:")
_LEADING_SEPARATORS = re.compile(r"^[\s:#=.\-]+")


def _clean_value(text: str) -> str:
    text = _LEADING_SEPARATORS.sub("", text)
    next_label = _NEXT_LABEL.search(text)
    return (text[: next_label.start()] if next_label else text).strip()


def _match_pattern(spec: FieldSpec, text: str) -> str | None:
    if spec.pattern is None:
        return text or None
    match = re.search(spec.pattern, text, re.IGNORECASE)
    return match.group(1).strip() if match and match.group(1) else None


def extract_keyword_value(spec: FieldSpec, page: PageLines) -> FieldValue:
    """The text after a label (same row, else the line below), matching ``spec.pattern``."""
    lines = page.lines
    for index, label_end in ordered(labelled_lines(spec, lines), spec.pick):
        after = after_label(lines, index, label_end)
        value = _match_pattern(spec, _clean_value(after.text))
        if value:
            return FieldValue(value=value, confidence=after.confidence * SURE_SAME_ROW, line=index)
        below = line_below(lines, index)
        if below is None or has_any(lines[below].text, spec.exclude_keywords):
            continue
        value = _match_pattern(spec, _clean_value(lines[below].text))
        if value:
            confidence = min(lines[index].confidence, lines[below].confidence) * SURE_BELOW
            return FieldValue(value=value, confidence=confidence, line=below)
    return NOT_FOUND


def extract_regex(spec: FieldSpec, page: PageLines) -> FieldValue:
    """``spec.pattern``'s first group on a line (holding a keyword, when the spec names any)."""
    for index in ordered(list(range(len(page.lines))), spec.pick):
        line = page.lines[index]
        if spec.keywords and not has_any(line.text, spec.keywords):
            continue
        if has_any(line.text, spec.exclude_keywords):
            continue
        value = _match_pattern(spec, line.text)
        if value:
            return FieldValue(value=value, confidence=line.confidence * SURE_SAME_ROW, line=index)
    return NOT_FOUND
