"""Document templates (``models.templates``) -> structured fields.

``extract_fields`` runs a template over OCR lines in reading order. The rules
only ever copy text that is on the page: a field nothing matches comes back as
``value=None`` with confidence 0. Labels and values are paired by position on
the page (same visual row, to the right; else the line just below), so the
rules work both on merged reading-order lines and on loose engine fragments.
Each field kind has its own module; this one only picks the rule per kind.
"""

from __future__ import annotations

from collections.abc import Callable

from models.ocr.base import OcrLine
from models.templates import FieldSpec, FieldValue, TemplateSpec
from utils.fields.address import extract_address
from utils.fields.amounts import extract_amount
from utils.fields.company import extract_company
from utils.fields.dates import extract_date
from utils.fields.keyword_value import extract_keyword_value, extract_regex
from utils.fields.mrz import extract_mrz
from utils.fields.page import PageLines

_EXTRACTORS: dict[str, Callable[[FieldSpec, PageLines], FieldValue]] = {
    "company": extract_company,
    "address": extract_address,
    "date": extract_date,
    "amount": extract_amount,
    "keyword_value": extract_keyword_value,
    "regex": extract_regex,
    "mrz": extract_mrz,
}


def extract_fields(
    template: TemplateSpec, lines: list[OcrLine], blocks: list[list[OcrLine]] | None = None
) -> dict[str, FieldValue]:
    """Every field of ``template`` found in ``lines`` (OCR lines in reading order);
    ``blocks``, when the page has positions, holds each line's blocks (see PageLines)."""
    page = PageLines(lines, blocks)
    for name, spec in template.fields.items():
        page.last_line = None
        found = _EXTRACTORS[spec.kind](spec, page)
        page.found[name] = found
        page.ends[name] = found.line if page.last_line is None else page.last_line
    return page.found
