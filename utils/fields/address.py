"""The ``address`` kind: consecutive address lines, up to the postcode and its region."""

from __future__ import annotations

import re

from models.templates import NOT_FOUND, FieldSpec, FieldValue
from utils.fields.page import PageLines
from utils.fields.text_match import has_any, is_remark

# How sure the address is: with a postcode among its lines, or without one.
_SURE_ADDRESS_WITH_POSTCODE = 0.8
_SURE_ADDRESS_NO_POSTCODE = 0.6

# A 5-digit postcode (MY, US, DE, FR, ...) or a Singapore one; not a lot/unit number.
_POSTCODE = re.compile(r"(?<![\w-])(\d{5})(?![\d-])|SINGAPORE\s*(\d{6})(?!\d)", re.I)
_NOT_POSTCODE_BEFORE = re.compile(r"(?:LOT|NO|PT|PTD|UNIT|BLK|BLOCK)\.?\s*$", re.I)


def _has_postcode(text: str) -> bool:
    return any(
        not _NOT_POSTCODE_BEFORE.search(text[: match.start()]) for match in _POSTCODE.finditer(text)
    )


def _address_continues(text: str, spec: FieldSpec, seen_postcode: bool) -> bool:
    """After the postcode only a region line may follow ("SELANGOR DARUL EHSAN")."""
    if has_any(text, spec.exclude_keywords) or not re.search(r"[A-Za-z]", text):
        return False
    if is_remark(text):  # "(SELAYANG MALL)", "(GST ID ...)"
        return False
    if seen_postcode:
        return has_any(text, spec.keywords) and not re.search(r"\d", text)
    return True


def _address_start(spec: FieldSpec, page: PageLines) -> int | None:
    """The first line with an address marker, or a postcode next to a place name."""
    top = page.first_line(spec)
    for i in range(top, min(top + spec.search_lines, len(page.lines))):
        text = page.lines[i].text
        if has_any(text, spec.exclude_keywords) or is_remark(text):
            continue
        if has_any(text, spec.keywords):
            return i
        if _has_postcode(text) and len(re.findall(r"[A-Za-z]", text)) >= 3:
            return i
    return None


def extract_address(spec: FieldSpec, page: PageLines, max_lines: int = 6) -> FieldValue:
    """The address lines joined into one value; ``line`` is the first of them."""
    lines = page.lines
    start = _address_start(spec, page)
    if start is None:
        return NOT_FOUND
    picked = [start]
    seen_postcode = _has_postcode(lines[start].text)
    for i in range(start + 1, min(start + max_lines, len(lines))):
        if not _address_continues(lines[i].text, spec, seen_postcode):
            break
        picked.append(i)
        seen_postcode = seen_postcode or _has_postcode(lines[i].text)
    sure = _SURE_ADDRESS_WITH_POSTCODE if seen_postcode else _SURE_ADDRESS_NO_POSTCODE
    value = " ".join(lines[i].text.strip() for i in picked)
    confidence = min(lines[i].confidence for i in picked) * sure
    page.last_line = picked[-1]
    return FieldValue(value=value, confidence=confidence, line=start)
