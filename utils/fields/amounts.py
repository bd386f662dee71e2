"""The ``amount`` kind: a labelled money amount ("TOTAL 41.50"), as "1234.50"."""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.ocr.base import OcrLine
from models.templates import NOT_FOUND, FieldSpec, FieldValue
from utils.fields.labels import SURE_BELOW, SURE_SAME_ROW, after_label, line_below, ordered
from utils.fields.page import PageLines
from utils.fields.text_match import has_any

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
    if not has_any(piece.label, spec.keywords) or has_any(piece.label, spec.exclude_keywords):
        return False
    if k + 1 == len(pieces):
        return True
    following = pieces[k + 1]
    if _is_table_row(following):
        return False
    # "TOTAL 80.91 (EXCLUDING GST)": a qualifier after the amount still excludes it.
    tail_qualifier = following.amount is None and not has_any(following.label, spec.keywords)
    return not (tail_qualifier and has_any(following.label, spec.exclude_keywords))


def _amount_from_row(lines: list[OcrLine], index: int) -> FieldValue | None:
    """A label ending its line: the amount is further right on the row, or just below."""
    after = after_label(lines, index, len(lines[index].text))
    found = _amounts(after.text)
    if len(found) == 1:
        value = _canonical_amount(found[0])
        return FieldValue(value=value, confidence=after.confidence * SURE_SAME_ROW, line=index)
    if found:  # several amounts on one labelled row is a table row (e.g. a tax summary)
        return None
    below = line_below(lines, index)
    if below is None or not _is_bare_amount(lines[below].text):
        return None
    confidence = min(lines[index].confidence, lines[below].confidence) * SURE_BELOW
    value = _canonical_amount(_amounts(lines[below].text)[0])
    return FieldValue(value=value, confidence=confidence, line=below)


def _amount_candidates(spec: FieldSpec, lines: list[OcrLine], index: int) -> list[FieldValue]:
    pieces = _pieces(lines[index].text)
    found = []
    for k, piece in enumerate(pieces):
        if not _piece_wanted(spec, pieces, k):
            continue
        if piece.amount is not None:
            confidence = lines[index].confidence * SURE_SAME_ROW
            found.append(
                FieldValue(value=_canonical_amount(piece.amount), confidence=confidence, line=index)
            )
        else:
            from_row = _amount_from_row(lines, index)
            found.extend([from_row] if from_row else [])
    return found


def extract_amount(spec: FieldSpec, page: PageLines) -> FieldValue:
    """The first (or last) labelled amount; a zero ("SAVINGS 0.00" misread) only as a fallback."""
    candidates = [
        candidate
        for index in range(len(page.lines))
        for candidate in _amount_candidates(spec, page.lines, index)
    ]
    ordered_candidates = ordered(candidates, spec.pick)
    non_zero = [candidate for candidate in ordered_candidates if float(candidate.value or 0) != 0]
    return (non_zero or ordered_candidates or [NOT_FOUND])[0]
