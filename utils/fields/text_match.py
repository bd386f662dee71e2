"""Keywords as OCR-tolerant regexes, and tests on one line's text alone."""

from __future__ import annotations

import re
from functools import lru_cache

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
def keyword_regex(keyword: str) -> re.Pattern[str]:
    """A keyword as a whole-word, case-insensitive, OCR-tolerant regex.

    Spaces inside the keyword may be absent or repeated in the text.
    """
    words = ["".join(_tolerant_char(char) for char in word) for word in keyword.split()]
    body = r"\s*".join(words)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])", re.IGNORECASE)


def has_any(text: str, keywords: list[str]) -> bool:
    return any(keyword_regex(keyword).search(text) for keyword in keywords)


def label_end(text: str, keywords: list[str]) -> int | None:
    """Where the label ends: the end of the right-most keyword match, or None."""
    ends = [m.end() for keyword in keywords for m in keyword_regex(keyword).finditer(text)]
    return max(ends) if ends else None


def is_remark(text: str) -> bool:
    """A line wholly in parentheses ("(SUBANG JASA)", "(GST ID ...)") is a side note."""
    stripped = text.strip()
    return stripped.startswith("(") and stripped.endswith(")")


# "GST REF NO : 001694261248", "COMPANY NO :256628-W", "TEL: 03-3271 9872": a label, a
# colon, then only a number or code with at least five digits.
_LABELLED_NUMBER = re.compile(
    r"^[^\d:]{2,40}:\s*[A-Z]{0,3}(?:\d[\s./-]*){5,}[A-Z]?\s*\)?\s*$", re.I
)


def is_labelled_number(text: str) -> bool:
    """A registration, tax or phone number after its label: never part of an address."""
    return bool(_LABELLED_NUMBER.match(text))
