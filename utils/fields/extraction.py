"""Document templates (``models.templates``) -> structured fields.

``extract_fields`` runs a template over OCR lines in reading order. The rules
only ever copy text that is on the page: a field nothing matches comes back as
``value=None`` with confidence 0. Labels and values are paired by position on
the page (same visual row, to the right; else the line just below), so the
rules work both on merged reading-order lines and on loose engine fragments.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Literal

from models.ocr.base import OcrLine
from models.templates import NOT_FOUND, FieldSpec, FieldValue, TemplateSpec

# How sure each rule is on its own; multiplied by the OCR confidence of the
# line(s) the value came from.
_SURE_SAME_ROW = 0.9
_SURE_BELOW = 0.75
_SURE_UNLABELLED = 0.6
_SURE_COMPANY_MARKER = 0.85
_SURE_COMPANY_GUESS = 0.4
_SURE_ADDRESS_WITH_POSTCODE = 0.8
_SURE_ADDRESS_NO_POSTCODE = 0.6
_SURE_MRZ_CHECKED = 0.95
_SURE_MRZ_UNCHECKED = 0.85
_SURE_MRZ_BAD_CHECK = 0.2
_SURE_MRZ_BAD_COMPOSITE = 0.5

CHECK_DIGIT_MISMATCH = "check digit mismatch"


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def extract_fields(template: TemplateSpec, lines: list[OcrLine]) -> dict[str, FieldValue]:
    """Every field of ``template`` found in ``lines`` (OCR lines in reading order)."""
    page = _Page(lines)
    for name, spec in template.fields.items():
        page.last_line = None
        found = _EXTRACTORS[spec.kind](spec, page)
        page.found[name] = found
        page.ends[name] = found.line if page.last_line is None else page.last_line
    return page.found


class _Page:
    """The lines of one page plus what several fields share (the MRZ, parsed once)."""

    def __init__(self, lines: list[OcrLine]) -> None:
        self.lines = lines
        self.found: dict[str, FieldValue] = {}
        # Last line of each found value; an extractor whose value spans several
        # lines sets ``last_line`` (``FieldValue.line`` is the first one).
        self.ends: dict[str, int | None] = {}
        self.last_line: int | None = None
        self._mrz: dict[str, FieldValue] | None = None

    def first_line(self, spec: FieldSpec) -> int:
        """Where searching starts: below ``spec.after_field``'s value when that was found."""
        end = self.ends.get(spec.after_field or "")
        return end + 1 if end is not None else 0

    def mrz(self) -> dict[str, FieldValue]:
        if self._mrz is None:
            self._mrz = read_mrz(self.lines) or {}
        return self._mrz


# ---------------------------------------------------------------------------
# Keywords and page geometry
# ---------------------------------------------------------------------------


# Characters OCR swaps for a keyword's letters ("Tota/", "G$T", "T0TAL"): a label read
# with one of these still counts as the label.
_OCR_LOOKALIKES = {
    "O": "O0Q",
    "0": "0O",
    "I": "I1l|!",
    "L": "L1I|/",
    "1": "1IL",
    "S": "S5$",
    "5": "5S",
    "B": "B8",
    "8": "8B",
}


def _tolerant_char(char: str) -> str:
    alternatives = _OCR_LOOKALIKES.get(char.upper())
    return f"[{re.escape(alternatives)}]" if alternatives else re.escape(char)


@lru_cache(maxsize=2048)
def _keyword_regex(keyword: str) -> re.Pattern[str]:
    """A keyword as a whole-word, case-insensitive, OCR-tolerant regex.

    Spaces inside the keyword may be absent or repeated in the text.
    """
    words = ["".join(_tolerant_char(char) for char in word) for word in keyword.split()]
    body = r"\s*".join(words)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])", re.IGNORECASE)


def _has_any(text: str, keywords: list[str]) -> bool:
    return any(_keyword_regex(keyword).search(text) for keyword in keywords)


def _label_end(text: str, keywords: list[str]) -> int | None:
    """Where the label ends: the end of the right-most keyword match, or None."""
    ends = [m.end() for keyword in keywords for m in _keyword_regex(keyword).finditer(text)]
    return max(ends) if ends else None


def _same_row(a: OcrLine, b: OcrLine) -> bool:
    overlap = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    return overlap > 0.5 * max(1, min(a.height, b.height))


def _row_to_the_right(lines: list[OcrLine], index: int) -> list[int]:
    """Other lines on the same visual row that start right of this line's middle."""
    anchor = lines[index]
    if anchor.box is None:  # text without positions (a VLM's): one line is one row
        return []
    middle = (anchor.box[0] + anchor.box[2]) / 2
    found = [
        j
        for j, other in enumerate(lines)
        if j != index and other.box[0] >= middle and _same_row(anchor, other)
    ]
    return sorted(found, key=lambda j: lines[j].box[0])


def _line_below(lines: list[OcrLine], index: int) -> int | None:
    """The nearest line just under this one that overlaps it horizontally."""
    anchor = lines[index]
    if anchor.box is None:  # text without positions: the next line is the one below
        return index + 1 if index + 1 < len(lines) else None
    reach = anchor.box[3] + 1.5 * max(anchor.height, 1)
    best, best_gap = None, None
    for j, other in enumerate(lines):
        below = anchor.center_y < other.box[1] <= reach
        overlaps = other.box[0] < anchor.box[2] and other.box[2] > anchor.box[0]
        if j == index or not (below and overlaps):
            continue
        gap = other.box[1] - anchor.box[3]
        if best_gap is None or gap < best_gap:
            best, best_gap = j, gap
    return best


@dataclass(frozen=True)
class _Labelled:
    """The text after a label on its row, and the lines it came from."""

    text: str
    confidence: float


def _after_label(lines: list[OcrLine], index: int, label_end: int) -> _Labelled:
    """Text after the label on the label's line plus the rest of its visual row."""
    parts = [lines[index].text[label_end:]]
    confidences = [lines[index].confidence]
    for j in _row_to_the_right(lines, index):
        parts.append(lines[j].text)
        confidences.append(lines[j].confidence)
    text = " ".join(part.strip() for part in parts if part.strip())
    return _Labelled(text=text, confidence=min(confidences))


def _labelled_lines(spec: FieldSpec, lines: list[OcrLine]) -> list[tuple[int, int]]:
    """(line index, label end) of lines holding a keyword and no excluded keyword."""
    found = []
    for i, line in enumerate(lines):
        end = _label_end(line.text, spec.keywords)
        if end is not None and not _has_any(line.text, spec.exclude_keywords):
            found.append((i, end))
    return found


def _ordered(items: list, pick: str) -> list:
    return list(reversed(items)) if pick == "last" else items


# ---------------------------------------------------------------------------
# Amounts
# ---------------------------------------------------------------------------

# Two decimals, optional thousands grouping; not part of a longer number or a date.
_AMOUNT = re.compile(r"(?<![\d.,])-?\d{1,3}(?:[,.]?\d{3})*[.,]\d{2}(?!\d)(?![.,]\d)")


def _amounts(text: str) -> list[str]:
    return _AMOUNT.findall(text)


def _canonical_amount(token: str) -> str:
    """ "1,234.50" / "1.234,50" -> "1234.50": the separator before the cents is the decimal."""
    sign = "-" if token.startswith("-") else ""
    digits = re.sub(r"\D", "", token)
    return f"{sign}{int(digits[:-2] or '0')}.{digits[-2:]}"


def _is_bare_amount(text: str) -> bool:
    """A line that is just an amount, maybe with a currency ("RM 12.50", "5.00 RM", "9.90 T")."""
    found = _amounts(text)
    if len(found) != 1:
        return False
    rest = text.replace(found[0], " ", 1)
    return not re.search(r"\d", rest) and len(re.findall(r"[A-Za-z]", rest)) <= 3


@dataclass(frozen=True)
class _Piece:
    """A stretch of a line: label text, then the amount that ends it (None at the tail)."""

    label: str
    amount: str | None


def _pieces(text: str) -> list[_Piece]:
    """Split a line after each amount: "Saving 0.00 Total 41.50" -> two labelled amounts."""
    pieces, start = [], 0
    for match in _AMOUNT.finditer(text):
        pieces.append(_Piece(text[start : match.start()], match.group()))
        start = match.end()
    pieces.append(_Piece(text[start:], None))
    return pieces


def _is_table_row(following: _Piece) -> bool:
    """An unlabelled amount right after a labelled one: a table row ("Total 75.00 4.50")."""
    return following.amount is not None and not re.search(r"[A-Za-z]", following.label)


def _piece_wanted(spec: FieldSpec, pieces: list[_Piece], k: int) -> bool:
    piece = pieces[k]
    if not _has_any(piece.label, spec.keywords) or _has_any(piece.label, spec.exclude_keywords):
        return False
    if k + 1 == len(pieces):
        return True
    following = pieces[k + 1]
    if _is_table_row(following):
        return False
    # "TOTAL 80.91 (EXCLUDING GST)": a qualifier after the amount still excludes it.
    tail_qualifier = following.amount is None and not _has_any(following.label, spec.keywords)
    return not (tail_qualifier and _has_any(following.label, spec.exclude_keywords))


def _amount_from_row(lines: list[OcrLine], index: int) -> FieldValue | None:
    """A label ending its line: the amount is further right on the row, or just below."""
    after = _after_label(lines, index, len(lines[index].text))
    found = _amounts(after.text)
    if len(found) == 1:
        value = _canonical_amount(found[0])
        return FieldValue(value=value, confidence=after.confidence * _SURE_SAME_ROW, line=index)
    if found:  # several amounts on one labelled row is a table row (e.g. a tax summary)
        return None
    below = _line_below(lines, index)
    if below is None or not _is_bare_amount(lines[below].text):
        return None
    confidence = min(lines[index].confidence, lines[below].confidence) * _SURE_BELOW
    value = _canonical_amount(_amounts(lines[below].text)[0])
    return FieldValue(value=value, confidence=confidence, line=below)


def _amount_candidates(spec: FieldSpec, lines: list[OcrLine], index: int) -> list[FieldValue]:
    pieces = _pieces(lines[index].text)
    found = []
    for k, piece in enumerate(pieces):
        if not _piece_wanted(spec, pieces, k):
            continue
        if piece.amount is not None:
            confidence = lines[index].confidence * _SURE_SAME_ROW
            found.append(
                FieldValue(value=_canonical_amount(piece.amount), confidence=confidence, line=index)
            )
        else:
            from_row = _amount_from_row(lines, index)
            found.extend([from_row] if from_row else [])
    return found


def _extract_amount(spec: FieldSpec, page: _Page) -> FieldValue:
    """The first (or last) labelled amount; a zero ("SAVINGS 0.00" misread) only as a fallback."""
    candidates = [
        candidate
        for index in range(len(page.lines))
        for candidate in _amount_candidates(spec, page.lines, index)
    ]
    ordered = _ordered(candidates, spec.pick)
    non_zero = [candidate for candidate in ordered if float(candidate.value or 0) != 0]
    return (non_zero or ordered or [NOT_FOUND])[0]


# ---------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------

_MONTH = r"(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC)[A-Z]*\.?"
# A 19xx/20xx or two-digit year; OCR often glues the time on ("05-03-201819:02:50").
_YEAR = r"((?:19|20)\d{2}|\d{2})(?:(?!\d)|(?=\d{1,2}:\d{2}))"
_DATE_PATTERNS = [
    # 25/12/2018, 12-28-2017, 17.01.18
    re.compile(rf"(?<![\dA-Za-z])(\d{{1,2}})([/.-])(\d{{1,2}})\2{_YEAR}"),
    # 2017-12-28
    re.compile(r"(?<![\dA-Za-z])(\d{4})([/.-])(\d{1,2})\2(\d{1,2})(?!\d)"),
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


def _extract_date(spec: FieldSpec, page: _Page) -> FieldValue:
    lines = page.lines
    for index, label_end in _ordered(_labelled_lines(spec, lines), spec.pick):
        after = _after_label(lines, index, label_end)
        found = find_date(after.text)
        if found:
            return FieldValue(value=found, confidence=after.confidence * _SURE_SAME_ROW, line=index)
        below = _line_below(lines, index)
        found = find_date(lines[below].text) if below is not None else None
        if found:
            confidence = min(lines[index].confidence, lines[below].confidence) * _SURE_BELOW
            return FieldValue(value=found, confidence=confidence, line=below)
    for index in _ordered(list(range(len(lines))), spec.pick):
        if _has_any(lines[index].text, spec.exclude_keywords):
            continue
        found = find_date(lines[index].text)
        if found:
            confidence = lines[index].confidence * _SURE_UNLABELLED
            return FieldValue(value=found, confidence=confidence, line=index)
    return NOT_FOUND


# ---------------------------------------------------------------------------
# Keyword value and regex
# ---------------------------------------------------------------------------

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


def _extract_keyword_value(spec: FieldSpec, page: _Page) -> FieldValue:
    lines = page.lines
    for index, label_end in _ordered(_labelled_lines(spec, lines), spec.pick):
        after = _after_label(lines, index, label_end)
        value = _match_pattern(spec, _clean_value(after.text))
        if value:
            return FieldValue(value=value, confidence=after.confidence * _SURE_SAME_ROW, line=index)
        below = _line_below(lines, index)
        if below is None or _has_any(lines[below].text, spec.exclude_keywords):
            continue
        value = _match_pattern(spec, _clean_value(lines[below].text))
        if value:
            confidence = min(lines[index].confidence, lines[below].confidence) * _SURE_BELOW
            return FieldValue(value=value, confidence=confidence, line=below)
    return NOT_FOUND


def _extract_regex(spec: FieldSpec, page: _Page) -> FieldValue:
    for index in _ordered(list(range(len(page.lines))), spec.pick):
        line = page.lines[index]
        if spec.keywords and not _has_any(line.text, spec.keywords):
            continue
        if _has_any(line.text, spec.exclude_keywords):
            continue
        value = _match_pattern(spec, line.text)
        if value:
            return FieldValue(value=value, confidence=line.confidence * _SURE_SAME_ROW, line=index)
    return NOT_FOUND


# ---------------------------------------------------------------------------
# Company
# ---------------------------------------------------------------------------

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


def _is_remark(text: str) -> bool:
    """A line wholly in parentheses ("(SUBANG JASA)", "(GST ID ...)") is a side note."""
    stripped = text.strip()
    return stripped.startswith("(") and stripped.endswith(")")


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
    return _has_any(text, keywords) or _has_glued_marker(text, keywords)


def _starts_with_marker(text: str, keywords: list[str]) -> bool:
    return any(m.start() == 0 for k in keywords for m in _keyword_regex(k).finditer(text.strip()))


def _ends_with_marker(text: str, keywords: list[str]) -> bool:
    stripped = text.strip(" .,")
    return any(
        m.end() == len(stripped) for k in keywords for m in _keyword_regex(k).finditer(stripped)
    )


def _unclosed_paren(text: str) -> bool:
    return text.count("(") > text.count(")")


def _usable_name_line(text: str, spec: FieldSpec) -> bool:
    cleaned = _company_text(text)
    return _looks_like_name(text) and not _has_any(cleaned, spec.exclude_keywords)


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
        if not _usable_name_line(following, spec) or _is_remark(following):
            break
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


def _extract_company(spec: FieldSpec, page: _Page) -> FieldValue:
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


# ---------------------------------------------------------------------------
# Address
# ---------------------------------------------------------------------------

# A 5-digit postcode (MY, US, DE, FR, ...) or a Singapore one; not a lot/unit number.
_POSTCODE = re.compile(r"(?<![\w-])(\d{5})(?![\d-])|SINGAPORE\s*(\d{6})(?!\d)", re.I)
_NOT_POSTCODE_BEFORE = re.compile(r"(?:LOT|NO|PT|PTD|UNIT|BLK|BLOCK)\.?\s*$", re.I)


def _has_postcode(text: str) -> bool:
    return any(
        not _NOT_POSTCODE_BEFORE.search(text[: match.start()]) for match in _POSTCODE.finditer(text)
    )


def _address_continues(text: str, spec: FieldSpec, seen_postcode: bool) -> bool:
    """After the postcode only a region line may follow ("SELANGOR DARUL EHSAN")."""
    if _has_any(text, spec.exclude_keywords) or not re.search(r"[A-Za-z]", text):
        return False
    if _is_remark(text):  # "(SELAYANG MALL)", "(GST ID ...)"
        return False
    if seen_postcode:
        return _has_any(text, spec.keywords) and not re.search(r"\d", text)
    return True


def _address_start(spec: FieldSpec, page: _Page) -> int | None:
    """The first line with an address marker, or a postcode next to a place name."""
    top = page.first_line(spec)
    for i in range(top, min(top + spec.search_lines, len(page.lines))):
        text = page.lines[i].text
        if _has_any(text, spec.exclude_keywords) or _is_remark(text):
            continue
        if _has_any(text, spec.keywords):
            return i
        if _has_postcode(text) and len(re.findall(r"[A-Za-z]", text)) >= 3:
            return i
    return None


def _extract_address(spec: FieldSpec, page: _Page, max_lines: int = 6) -> FieldValue:
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


# ---------------------------------------------------------------------------
# Machine-readable zone (ICAO 9303)
# ---------------------------------------------------------------------------

_MRZ_WEIGHTS = (7, 3, 1)
# Letters OCR reads in place of digits; applied only where ICAO puts a digit.
_DIGIT_LOOKALIKES = str.maketrans(
    {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8", "G": "6"}
)


def mrz_check_digit(data: str) -> int:
    """ICAO 9303 check digit: weights 7-3-1, digits as is, A-Z = 10..35, '<' = 0."""
    total = 0
    for position, char in enumerate(data):
        if char.isdigit():
            value = int(char)
        elif "A" <= char <= "Z":
            value = ord(char) - ord("A") + 10
        else:
            value = 0
        total += value * _MRZ_WEIGHTS[position % 3]
    return total % 10


@dataclass(frozen=True)
class _Span:
    line: int
    start: int
    end: int


@dataclass(frozen=True)
class _MrzLayout:
    """Where each field sits in one MRZ format (ICAO 9303 parts 4 and 5)."""

    line_count: int
    line_length: int
    first_chars: str
    document_number: _Span
    document_check: _Span
    birth_date: _Span
    birth_check: _Span
    sex: _Span
    expiry_date: _Span
    expiry_check: _Span
    nationality: _Span
    issuing_country: _Span
    names: _Span
    composite: tuple[_Span, ...]
    composite_check: _Span
    # Optional data with its own check digit (TD3 only); '<' there means "none".
    optional: _Span | None = None
    optional_check: _Span | None = None

    def numeric_spans(self) -> list[_Span]:
        spans = [
            self.document_check,
            self.birth_date,
            self.birth_check,
            self.expiry_date,
            self.expiry_check,
            self.composite_check,
        ]
        return spans + ([self.optional_check] if self.optional_check else [])


_TD3 = _MrzLayout(
    line_count=2,
    line_length=44,
    first_chars="PV",
    document_number=_Span(1, 0, 9),
    document_check=_Span(1, 9, 10),
    nationality=_Span(1, 10, 13),
    birth_date=_Span(1, 13, 19),
    birth_check=_Span(1, 19, 20),
    sex=_Span(1, 20, 21),
    expiry_date=_Span(1, 21, 27),
    expiry_check=_Span(1, 27, 28),
    optional=_Span(1, 28, 42),
    optional_check=_Span(1, 42, 43),
    composite=(_Span(1, 0, 10), _Span(1, 13, 20), _Span(1, 21, 43)),
    composite_check=_Span(1, 43, 44),
    issuing_country=_Span(0, 2, 5),
    names=_Span(0, 5, 44),
)
_TD1 = _MrzLayout(
    line_count=3,
    line_length=30,
    first_chars="IAC",
    document_number=_Span(0, 5, 14),
    document_check=_Span(0, 14, 15),
    birth_date=_Span(1, 0, 6),
    birth_check=_Span(1, 6, 7),
    sex=_Span(1, 7, 8),
    expiry_date=_Span(1, 8, 14),
    expiry_check=_Span(1, 14, 15),
    nationality=_Span(1, 15, 18),
    composite=(_Span(0, 5, 30), _Span(1, 0, 7), _Span(1, 8, 15), _Span(1, 18, 29)),
    composite_check=_Span(1, 29, 30),
    issuing_country=_Span(0, 2, 5),
    names=_Span(2, 0, 30),
)


def _mrz_text(text: str) -> str:
    """OCR text as MRZ characters: upper case, no spaces, '«' read as the '<' filler."""
    return re.sub(r"\s+", "", text.upper().replace("«", "<"))


def _is_mrz_like(text: str, length: int) -> bool:
    return abs(len(text) - length) <= 2 and re.fullmatch(r"[A-Z0-9<]+", text) is not None


def _fit(text: str, length: int) -> str:
    return text[:length].ljust(length, "<")


def _find_mrz(lines: list[OcrLine]) -> tuple[_MrzLayout, list[int], list[str]] | None:
    """The first run of lines shaped like a TD3 or TD1 zone, with lookalike digits fixed."""
    texts = [_mrz_text(line.text) for line in lines]
    for layout in (_TD3, _TD1):
        for first in range(len(texts) - layout.line_count + 1):
            run = list(range(first, first + layout.line_count))
            if texts[first][:1] not in layout.first_chars:
                continue
            if all(_is_mrz_like(texts[i], layout.line_length) for i in run):
                fitted = [_fit(texts[i], layout.line_length) for i in run]
                return layout, run, _fix_numeric_positions(layout, fitted)
    return None


def _fix_numeric_positions(layout: _MrzLayout, rows: list[str]) -> list[str]:
    chars = [list(row) for row in rows]
    for span in layout.numeric_spans():
        for position in range(span.start, span.end):
            chars[span.line][position] = chars[span.line][position].translate(_DIGIT_LOOKALIKES)
    return ["".join(row) for row in chars]


def _cut(rows: list[str], span: _Span) -> str:
    return rows[span.line][span.start : span.end]


def _check_ok(rows: list[str], data: str, check: _Span) -> bool:
    digit = _cut(rows, check)
    return digit.isdigit() and int(digit) == mrz_check_digit(data)


def _mrz_date(yymmdd: str, kind: Literal["birth", "expiry"], today: date) -> str | None:
    """ISO date; the century puts birth dates in the past and expiry dates near today."""
    if not yymmdd.isdigit():
        return None
    yy, month, day = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    century = 2000 if kind == "expiry" or 2000 + yy <= today.year else 1900
    if kind == "expiry" and 2000 + yy > today.year + 50:
        century = 1900
    try:
        return date(century + yy, month, day).isoformat()
    except ValueError:
        return None


def read_mrz(lines: list[OcrLine], today: date | None = None) -> dict[str, FieldValue] | None:
    """Every MRZ field (see ``MrzFieldName``) if the lines hold a TD3 or TD1 zone, else None.

    Fields with a check digit that fails get low confidence and a note saying so;
    the value is still reported as read.
    """
    found = _find_mrz(lines)
    if found is None:
        return None
    layout, run, rows = found
    base = min(lines[i].confidence for i in run)
    composite_ok = _check_ok(
        rows, "".join(_cut(rows, span) for span in layout.composite), layout.composite_check
    )
    reader = _MrzReader(layout, rows, run, base, composite_ok, today or date.today())
    return reader.fields()


@dataclass
class _MrzReader:
    layout: _MrzLayout
    rows: list[str]
    run: list[int]
    base: float
    composite_ok: bool
    today: date

    def _value(self, value: str | None, span: _Span, sure: float, note: str | None) -> FieldValue:
        if not value:
            return FieldValue(line=self.run[span.line], note=note or "not readable")
        confidence = self.base * sure
        return FieldValue(value=value, confidence=confidence, line=self.run[span.line], note=note)

    def _checked(self, value: str | None, span: _Span, check: _Span) -> FieldValue:
        if not _check_ok(self.rows, _cut(self.rows, span), check):
            return self._value(value, span, _SURE_MRZ_BAD_CHECK, CHECK_DIGIT_MISMATCH)
        if not self.composite_ok:
            return self._value(
                value, span, _SURE_MRZ_BAD_COMPOSITE, "composite check digit mismatch"
            )
        return self._value(value, span, _SURE_MRZ_CHECKED, None)

    def _plain(self, span: _Span) -> FieldValue:
        text = _cut(self.rows, span).replace("<", " ").strip()
        return self._value(" ".join(text.split()), span, _SURE_MRZ_UNCHECKED, None)

    def _date(self, span: _Span, check: _Span, kind: Literal["birth", "expiry"]) -> FieldValue:
        value = _mrz_date(_cut(self.rows, span), kind, self.today)
        if value is None:
            return self._value(None, span, 0.0, "not a valid date")
        return self._checked(value, span, check)

    def _names(self) -> tuple[FieldValue, FieldValue]:
        span = self.layout.names
        surname, _, given = _cut(self.rows, span).partition("<<")

        def clean(part: str) -> str:
            return " ".join(part.replace("<", " ").split())

        return (
            self._value(clean(surname), span, _SURE_MRZ_UNCHECKED, None),
            self._value(clean(given), span, _SURE_MRZ_UNCHECKED, None),
        )

    def _sex(self) -> FieldValue:
        printed = _cut(self.rows, self.layout.sex)
        if printed in ("M", "F", "X"):
            return self._value(printed, self.layout.sex, _SURE_MRZ_UNCHECKED, None)
        note = "sex not specified" if printed == "<" else "not readable"
        return self._value(None, self.layout.sex, 0.0, note)

    def fields(self) -> dict[str, FieldValue]:
        layout = self.layout
        number = _cut(self.rows, layout.document_number).replace("<", "")
        surname, given_names = self._names()
        return {
            "document_number": self._checked(number, layout.document_number, layout.document_check),
            "surname": surname,
            "given_names": given_names,
            "nationality": self._plain(layout.nationality),
            "birth_date": self._date(layout.birth_date, layout.birth_check, "birth"),
            "sex": self._sex(),
            "expiry_date": self._date(layout.expiry_date, layout.expiry_check, "expiry"),
            "issuing_country": self._plain(layout.issuing_country),
        }


def _extract_mrz(spec: FieldSpec, page: _Page) -> FieldValue:
    return page.mrz().get(spec.mrz_field or "", NOT_FOUND)


_EXTRACTORS: dict[str, Callable[[FieldSpec, _Page], FieldValue]] = {
    "company": _extract_company,
    "address": _extract_address,
    "date": _extract_date,
    "amount": _extract_amount,
    "keyword_value": _extract_keyword_value,
    "regex": _extract_regex,
    "mrz": _extract_mrz,
}
