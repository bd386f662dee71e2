"""The ``company`` kind: the seller's name near the top, maybe split over lines."""

from __future__ import annotations

import re

from models.ocr.base import OcrLine
from models.templates import NOT_FOUND, FieldSpec, FieldValue
from utils.fields.page import PageLines, beside
from utils.fields.text_match import has_any, is_remark, keyword_regex

# How sure the name is: a line with a company marker ("SDN BHD"), or else the
# first name-like line of the window.
_SURE_COMPANY_MARKER = 0.85
_SURE_COMPANY_GUESS = 0.4

# Registration numbers printed with the name: "(1070687-M)", "(CO. NO:20154-T)".
_REGISTRATION_IN_PARENS = re.compile(r"\([^()]*\d[^()]*\)?")
_TRAILING_REGISTRATION = re.compile(r"\s+\d{3,}-?\s?[A-Z]$")


def _company_text(text: str) -> str:
    text = _REGISTRATION_IN_PARENS.sub(" ", text)
    text = _TRAILING_REGISTRATION.sub("", text.strip())
    return " ".join(text.split())


def _looks_like_name(text: str) -> bool:
    """Mostly letters: not a number, date, phone or code line."""
    cleaned = _company_text(text)
    letters = sum(char.isalpha() for char in cleaned)
    digits = sum(char.isdigit() for char in cleaned)
    return letters >= 2 and digits <= letters / 3


def _has_glued_marker(text: str, keywords: list[str]) -> bool:
    """A marker inside words OCR glued together ("SANYUSTATIONERYSHOP").

    Only long glued tokens and long markers count, so "STORE" never matches "RESTORE".
    """
    glued = [token for token in re.findall(r"[A-Za-z]+", text) if len(token) >= 10]
    markers = [re.sub(r"[^A-Z]", "", keyword.upper()) for keyword in keywords]
    return any(
        len(marker) >= 5 and marker in token.upper() for token in glued for marker in markers
    )


def _has_marker(text: str, keywords: list[str]) -> bool:
    return has_any(text, keywords) or _has_glued_marker(text, keywords)


def _starts_with_marker(text: str, keywords: list[str]) -> bool:
    return any(m.start() == 0 for k in keywords for m in keyword_regex(k).finditer(text.strip()))


def _ends_with_marker(text: str, keywords: list[str]) -> bool:
    stripped = text.strip(" .,")
    return any(
        m.end() == len(stripped) for k in keywords for m in keyword_regex(k).finditer(stripped)
    )


def _unclosed_paren(text: str) -> bool:
    return text.count("(") > text.count(")")


def _usable_name_line(text: str, spec: FieldSpec) -> bool:
    cleaned = _company_text(text)
    return _looks_like_name(text) and not has_any(cleaned, spec.exclude_keywords)


def _span_start(spec: FieldSpec, lines: list[OcrLine], anchor: int, top: int) -> int:
    """Step up while the name's line starts with a marker ("POPULAR BOOK" / "CO. (M) SDN BHD")."""
    start = anchor
    while start > top and _starts_with_marker(lines[start].text, spec.keywords):
        if not _usable_name_line(lines[start - 1].text, spec):
            break
        start -= 1
    return start


def _span_end(spec: FieldSpec, lines: list[OcrLine], anchor: int) -> int:
    """Step down while the name obviously goes on: an open "(", a marker starting the
    next line, or a name not ending in a marker followed by one more plain name line."""
    end = anchor
    while end + 1 < len(lines) and end - anchor < 2:
        current, following = lines[end].text, lines[end + 1].text
        if not _usable_name_line(following, spec) or is_remark(following):
            break
        if beside(lines[end + 1].box, lines[end].box):
            break  # a title printed beside the name ("CASH BILL" on the right)
        if _unclosed_paren(current) or _starts_with_marker(following, spec.keywords):
            end += 1
            continue
        plain_next = (
            not re.search(r"\d", following)
            and re.search(r"[A-Za-z]{4}", following) is not None
            and not _has_marker(following, spec.keywords)
        )
        if (
            end == anchor
            and plain_next
            and not _ends_with_marker(_company_text(current), spec.keywords)
        ):
            end += 1
        break
    return end


def _company_value(text: str) -> str:
    """The name without registration numbers or a stray one-letter OCR crumb at the end."""
    words = _company_text(text).split()
    while len(words) > 1 and len(words[-1]) == 1 and words[-1].isalpha():
        words.pop()
    return " ".join(words)


def extract_company(spec: FieldSpec, page: PageLines) -> FieldValue:
    """The name-like line with a company marker (or the first one) and the lines it runs on to."""
    lines = page.lines
    top = page.first_line(spec)
    window = [
        i
        for i in range(top, min(top + spec.search_lines, len(lines)))
        if _usable_name_line(lines[i].text, spec)
    ]
    anchor = next((i for i in window if _has_marker(lines[i].text, spec.keywords)), None)
    sure = _SURE_COMPANY_MARKER
    if anchor is None:
        anchor, sure = (window[0] if window else None), _SURE_COMPANY_GUESS
    if anchor is None:
        return NOT_FOUND
    span = range(
        _span_start(spec, lines, anchor, top=window[0]), _span_end(spec, lines, anchor) + 1
    )
    value = _company_value(" ".join(lines[i].text for i in span))
    if not value:
        return NOT_FOUND
    confidence = min(lines[i].confidence for i in span) * sure
    page.last_line = span[-1]
    return FieldValue(value=value, confidence=confidence, line=span[0])
