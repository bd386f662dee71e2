"""Clean-up of raw engine fragments before reading order.

Engines report some things that are not text: specks and ruling lines read as
"-" or ".", barcode stripes read as "IIIII". Dropping those (and only those)
raises precision without touching what was really printed.

PP-OCR's recogniser is trained mostly on Chinese, so on Latin text it now and
then writes a full-width form ("TOTAL：", "（RM）"); printed Latin text never uses
those, so fragments without any CJK character get the ASCII form back.

In monospaced receipt fonts the letter O and the digit 0 look alike, and the
recogniser reads "J0H0R", "0CT", "S00N". In an upper-case word whose every run
of zeros sits before a letter, and after one (or starts the word), the zeros are
letters; zeros that end a word or touch a digit ("A00", "RM10.00") are kept.
"""

from __future__ import annotations

import re

from models.ocr.base import OcrLine

_ALNUM = re.compile(r"[0-9A-Za-z\u00C0-\u024F\u0400-\u04FF]")
_STRIPES = re.compile(r"^[|Il1!]{4,}$")
# Han, kana, Hangul and CJK punctuation: text where full-width forms belong.
_CJK = re.compile(r"[\u3000-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF]")
# U+FF01..U+FF5E are full-width copies of ASCII 0x21..0x7E, 0xFEE0 apart.
_FULL_WIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}

# An upper-case word of letters and zeros only ("J0H0R"); digits elsewhere keep it out.
_LETTERS_AND_ZEROS = re.compile(r"(?<![\w])[A-Z0]{3,}(?![\w])")

# Fragments below this confidence are dropped when they carry no letter or digit.
MIN_CONFIDENCE_SYMBOLS = 0.8
# Any fragment below this confidence is dropped: the engine itself doubts it.
MIN_CONFIDENCE_ANY = 0.3


def clean_fragments(fragments: list[OcrLine]) -> list[OcrLine]:
    """Fragments worth keeping, with surrounding whitespace trimmed."""
    kept = []
    for fragment in fragments:
        text = _letter_o_for_zero(" ".join(_latin_forms(fragment.text).split()))
        if _is_noise(text, fragment.confidence):
            continue
        kept.append(
            fragment if text == fragment.text else fragment.model_copy(update={"text": text})
        )
    return kept


def _latin_forms(text: str) -> str:
    """Full-width ASCII look-alikes as ASCII, unless the fragment is CJK text."""
    return text if _CJK.search(text) else text.translate(_FULL_WIDTH_TO_ASCII)


def _letter_o_for_zero(text: str) -> str:
    """Zeros read in place of the letter O inside upper-case words (see the module doc)."""
    return _LETTERS_AND_ZEROS.sub(lambda match: _word_with_letter_o(match.group()), text)


def _word_with_letter_o(word: str) -> str:
    if "0" not in word or sum(char.isalpha() for char in word) < 2:
        return word
    for run in re.finditer(r"0+", word):
        after = word[run.end() : run.end() + 1]
        if not (after.isalpha() and (run.start() == 0 or word[run.start() - 1].isalpha())):
            return word
    return word.replace("0", "O")


def _is_noise(text: str, confidence: float) -> bool:
    if not text or confidence < MIN_CONFIDENCE_ANY:
        return True
    if _STRIPES.match(text.replace(" ", "")):
        return True
    return not _ALNUM.search(text) and confidence < MIN_CONFIDENCE_SYMBOLS
