"""Word spaces put back from the ink gaps of a rendered line crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from models.ocr.spacing import blank_columns, respace

FONT_SIZE = 28
MARGIN = 6
# PIL's bundled font is proportional, its space narrow; receipt fonts are mostly
# monospaced, where a space is a whole empty character cell. Three spaces make
# such a cell-wide gap.
GAP = "   "


def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=FONT_SIZE)


def render_line(printed: str) -> tuple[np.ndarray, list[float]]:
    """A grey line crop of ``printed`` and the x centre of each non-space character."""
    font = _font()
    width = int(font.getlength(printed)) + 2 * MARGIN
    image = Image.new("L", (width, FONT_SIZE + 2 * MARGIN), 235)
    ImageDraw.Draw(image).text((MARGIN, MARGIN), printed, fill=20, font=font)
    centres = []
    for index, char in enumerate(printed):
        if char.isspace():
            continue
        left = MARGIN + font.getlength(printed[:index])
        centres.append(left + font.getlength(char) / 2)
    return np.asarray(image), centres


@pytest.mark.parametrize(
    ("printed", "read"),
    [
        (f"TAX{GAP}INVOICE", "TAXINVOICE"),
        (f"SANYU{GAP}STATIONERY{GAP}SHOP", "SANYUSTATIONERYSHOP"),
        (f"TEL:{GAP}03-40210276", "TEL:03-40210276"),
        (f"AMOUNT{GAP}(RM)", "AMOUNT(RM)"),
    ],
)
def test_missing_space_is_put_back_where_the_crop_shows_a_gap(printed, read):
    gray, centres = render_line(printed)
    assert respace(read, centres, gray) == " ".join(printed.split())


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        # One space of this proportional font leaves ~0.6 pitches blank: below the
        # general threshold, a space after a label's colon.
        ("TEL: 03-40210276", "TEL: 03-40210276"),
        ("TOTAL: 12.50", "TOTAL: 12.50"),
        ("12: 36", "12:36"),  # between two digits the colon is a time's
    ],
)
def test_a_narrower_gap_after_a_colon_is_a_space(printed, expected):
    gray, centres = render_line(printed)
    assert respace(printed.replace(" ", ""), centres, gray) == expected


@pytest.mark.parametrize("printed", ["DATE:25/12/2018", "12.50", "INVOICE", "RM1,234.00"])
def test_text_without_visual_gaps_is_unchanged(printed):
    gray, centres = render_line(printed)
    assert respace(printed, centres, gray) == printed


def test_spaces_the_recogniser_read_are_kept():
    gray, centres = render_line(f"TOTAL{GAP}12.50")
    assert respace("TOTAL 12.50", centres, gray) == "TOTAL 12.50"


def test_inconsistent_positions_leave_the_text_alone():
    gray, centres = render_line(f"TAX{GAP}INVOICE")
    assert respace("TAXINVOICE", centres[:-1], gray) == "TAXINVOICE"


def test_a_blank_crop_has_no_ink_evidence():
    assert blank_columns(np.full((30, 100), 200, dtype=np.uint8)) is None
    assert respace("AB", [10.0, 50.0], np.full((30, 100), 200, dtype=np.uint8)) == "AB"


def test_ink_from_a_neighbouring_line_does_not_fill_a_gap():
    gray, centres = render_line(f"TAX{GAP}INVOICE")
    crop = gray.copy()
    crop[:2, :] = 20  # a sliver of the line above, cut by a generous detector box
    assert respace("TAXINVOICE", centres, crop) == "TAX INVOICE"


def test_ctc_time_steps_are_mapped_onto_the_crop():
    """The engine passes CTC time steps; each step spans crop width / step count pixels."""
    from types import SimpleNamespace

    from models.ocr.rapid import respaced_text

    gray, centres = render_line(f"TAX{GAP}INVOICE")
    steps = gray.shape[1] / 4  # four pixels per time step, as in a 48-px-high crop
    columns = [round(x / 4 - 0.5) for x in centres]
    info = SimpleNamespace(word_cols=[columns[:3], columns[3:]], line_txt_len=steps)
    crop = np.repeat(gray[:, :, None], 3, axis=2)  # the engine's crops are BGR
    assert respaced_text("TAXINVOICE", info, crop) == "TAX INVOICE"


def test_without_ctc_positions_the_text_is_kept():
    from types import SimpleNamespace

    from models.ocr.rapid import respaced_text

    gray, _ = render_line(f"TAX{GAP}INVOICE")
    empty = SimpleNamespace(word_cols=[], line_txt_len=0)
    assert respaced_text("TAXINVOICE", empty, gray) == "TAXINVOICE"
