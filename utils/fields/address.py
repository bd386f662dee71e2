"""The ``address`` kind: consecutive address lines, up to the postcode, its city and region."""

from __future__ import annotations

import re

from models.ocr.base import OcrLine
from models.templates import NOT_FOUND, FieldSpec, FieldValue
from utils.fields.page import PageLines, beside
from utils.fields.text_match import has_any, is_labelled_number, is_remark

# How sure the address is: with a postcode among its lines, or without one.
_SURE_ADDRESS_WITH_POSTCODE = 0.8
_SURE_ADDRESS_NO_POSTCODE = 0.6

# A 5-digit postcode (MY, US, DE, FR, ...) or a Singapore one; not a lot/unit number.
_POSTCODE = re.compile(r"(?<![\w-])(\d{5})(?![\d-])|SINGAPORE\s*(\d{6})(?!\d)", re.I)
# ... and not a number after a label: "LOT 12345", "INV NO: 88821", "BLK. 10234".
_NOT_POSTCODE_BEFORE = re.compile(r"(?:LOT|NO|PT|PTD|UNIT|BLK|BLOCK|INV)\.?\s*[:#]?\s*$", re.I)
# A house number alone on its line, above the street: "68,", "NO. 13A", "12-1".
_HOUSE_NUMBER_LINE = re.compile(
    r"^\s*(?:NO\.?\s*)?\d{1,5}[A-Z]?(?:[-/]\d{1,4}[A-Z]?)?\s*[,.]?\s*$", re.I
)
# A street line that starts with its number ("70 ANG MO KIO AVE 3", "12, JALAN X"), or a
# unit number ("#08-67"): with a postcode line right below it, it starts the address.
_NUMBERED_STREET = re.compile(r"^\s*\d{1,5}[A-Z]?\b[ ,]+[A-Z]|#\d{1,3}-\d{1,4}", re.I)
# A line that ends with its postcode ("TAMAN SETIA 40170"): the city is on the next line.
_ENDS_WITH_POSTCODE = re.compile(r"(?<![\w-])\d{5}\s*[.,]?\s*$")
_MAX_CITY_WORDS = 4


def _has_postcode(text: str) -> bool:
    return any(
        not _NOT_POSTCODE_BEFORE.search(text[: match.start()]) for match in _POSTCODE.finditer(text)
    )


def _address_continues(text: str, spec: FieldSpec, seen_postcode: bool) -> bool:
    """After the postcode only a region line may follow ("SELANGOR DARUL EHSAN"); the
    city below a line that ends with the postcode is let in by ``extract_address``."""
    if has_any(text, spec.exclude_keywords) or not re.search(r"[A-Za-z]", text):
        return False
    if is_remark(text) or is_labelled_number(text):  # "(SELAYANG MALL)", "TEL: 03-1234"
        return False
    if seen_postcode:
        regions = spec.region_keywords or spec.keywords
        return has_any(text, regions) and not re.search(r"\d", text)
    return True


def _ends_with_postcode(text: str) -> bool:
    match = _ENDS_WITH_POSTCODE.search(text)
    return match is not None and not _NOT_POSTCODE_BEFORE.search(text[: match.start()])


def _is_city_line(text: str, spec: FieldSpec) -> bool:
    """A place name alone ("SHAH ALAM"): a few words, no digits, nothing excluded."""
    if has_any(text, spec.exclude_keywords) or is_remark(text) or re.search(r"\d", text):
        return False
    return 1 <= len(re.findall(r"[A-Za-z]+", text)) <= _MAX_CITY_WORDS


def _address_start(spec: FieldSpec, page: PageLines) -> tuple[int, OcrLine] | None:
    """The first line (and its block) with an address marker, or a postcode next to a
    place name."""
    top = page.first_line(spec)
    for i in range(top, min(top + spec.search_lines, len(page.lines))):
        for block in page.blocks_of(i):
            if _starts_address(block.text, spec):
                return i, block
    return None


def _starts_address(text: str, spec: FieldSpec) -> bool:
    if has_any(text, spec.exclude_keywords) or is_remark(text) or is_labelled_number(text):
        return False
    if has_any(text, spec.keywords) or has_any(text, spec.region_keywords):
        return True
    return _has_postcode(text) and len(re.findall(r"[A-Za-z]", text)) >= 3


def _earlier_start(start: int, spec: FieldSpec, page: PageLines) -> int:
    """The line above ``start`` when it is the address's unmarked first line: a house
    number alone ("68," above "LORONG KENARI 3"), or a numbered street above the
    postcode line the address was found by ("70 ANG MO KIO AVE 3" above "SINGAPORE
    753996"). Never above where the search began (the company's line)."""
    above = start - 1
    if above < page.first_line(spec):
        return start
    text = page.lines[above].text
    if has_any(text, spec.exclude_keywords) or is_remark(text):
        return start
    if _HOUSE_NUMBER_LINE.match(text):
        return above
    first = page.lines[start].text
    starts_at_postcode = _has_postcode(first) and not has_any(first, spec.keywords)
    if starts_at_postcode and _NUMBERED_STREET.search(text):
        return above
    return start


def extract_address(spec: FieldSpec, page: PageLines, max_lines: int = 6) -> FieldValue:
    """The address lines joined into one value; ``line`` is the first of them. Only the
    blocks in the address's column count: text printed beside it on the same rows is
    not part of it."""
    found = _address_start(spec, page)
    if found is None:
        return NOT_FOUND
    first, block = found
    start = _earlier_start(first, spec, page)
    # (line index, text, confidence) of each address line, first to last
    picked = [(i, page.lines[i].text, page.lines[i].confidence) for i in range(start, first)]
    picked.append((first, block.text, block.confidence))
    column = block.box
    seen_postcode = _has_postcode(block.text)
    # Lines beside the address do not count towards ``max_lines``; the window is bounded.
    for i in range(first + 1, min(start + 2 * max_lines, len(page.lines))):
        if len(picked) == max_lines:
            break
        in_column = [b for b in page.blocks_of(i) if not beside(b.box, column)]
        if not in_column:
            continue  # a block printed beside the address ("INV NO: 123" on the right)
        text = " ".join(b.text for b in in_column)
        city_below_postcode = _ends_with_postcode(picked[-1][1]) and _is_city_line(text, spec)
        if not (city_below_postcode or _address_continues(text, spec, seen_postcode)):
            break
        picked.append((i, text, min(b.confidence for b in in_column)))
        seen_postcode = seen_postcode or _has_postcode(text)
    sure = _SURE_ADDRESS_WITH_POSTCODE if seen_postcode else _SURE_ADDRESS_NO_POSTCODE
    value = " ".join(text.strip() for _, text, _ in picked)
    confidence = min(line_confidence for _, _, line_confidence in picked) * sure
    page.last_line = picked[-1][0]
    return FieldValue(value=value, confidence=confidence, line=start)
