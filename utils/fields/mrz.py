"""Machine-readable zones (ICAO 9303, TD3 passports and TD1 ID cards) and the ``mrz`` kind."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from models.ocr.base import OcrLine
from models.templates import NOT_FOUND, FieldSpec, FieldValue
from utils.fields.page import PageLines

# How sure a field is, by what its check digits said; multiplied by the lowest
# OCR confidence of the zone's lines.
_SURE_MRZ_CHECKED = 0.95
_SURE_MRZ_UNCHECKED = 0.85
_SURE_MRZ_BAD_CHECK = 0.2
_SURE_MRZ_BAD_COMPOSITE = 0.5

CHECK_DIGIT_MISMATCH = "check digit mismatch"

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


def extract_mrz(spec: FieldSpec, page: PageLines) -> FieldValue:
    """One MRZ field; the zone is read once per page and shared by every MRZ field."""
    if page.mrz is None:
        page.mrz = read_mrz(page.lines) or {}
    return page.mrz.get(spec.mrz_field or "", NOT_FOUND)
