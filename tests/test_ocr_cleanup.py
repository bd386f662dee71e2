"""Clean-up of raw engine fragments (utils.ocr.cleanup)."""

from __future__ import annotations

import pytest

from models.ocr.base import OcrLine
from utils.ocr.cleanup import clean_fragments


def cleaned(text: str, confidence: float = 0.95) -> str | None:
    kept = clean_fragments([OcrLine(text=text, box=(0, 0, 100, 20), confidence=confidence)])
    return kept[0].text if kept else None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("81100 J0H0R BAHRU", "81100 JOHOR BAHRU"),
        ("DATE : 02 0CT 2018", "DATE : 02 OCT 2018"),
        ("CL0SED ON M0NDAY", "CLOSED ON MONDAY"),
        ("S00N FATT MALL", "SOON FATT MALL"),
        ("SINGAP0RE 048616", "SINGAPORE 048616"),
        # zeros beside a digit or a zero, or ending a word, are digits
        ("RM10.00 A00 B0 X10Y", "RM10.00 A00 B0 X10Y"),
        ("INV 00K12 AB0", "INV 00K12 AB0"),
        ("E8318 CS00031663", "E8318 CS00031663"),
        # lower case is left to the recogniser
        ("c0ffee", "c0ffee"),
    ],
)
def test_zeros_inside_upper_case_words_are_the_letter_o(raw: str, expected: str) -> None:
    assert cleaned(raw) == expected


def test_full_width_forms_become_ascii_unless_the_text_is_cjk() -> None:
    assert cleaned("TOTAL\uff1a \uff08RM\uff09") == "TOTAL: (RM)"
    assert cleaned("\u5408\u8a08\uff1a100") == "\u5408\u8a08\uff1a100"


@pytest.mark.parametrize(
    ("text", "confidence"), [("IIIII", 0.99), ("-", 0.5), ("TOTAL", 0.2), ("   ", 0.99)]
)
def test_noise_is_dropped(text: str, confidence: float) -> None:
    assert cleaned(text, confidence) is None


def test_a_confident_symbol_and_plain_words_are_kept() -> None:
    assert cleaned("*", 0.9) == "*"
    assert cleaned("  THANK   YOU ", 0.6) == "THANK YOU"
