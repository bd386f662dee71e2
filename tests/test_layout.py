"""Tests for reading order, skew from boxes and Markdown (utils.ocr.reading_order, .skew,
.markdown) on constructed page layouts (no images, no engines)."""

from __future__ import annotations

import random

import pytest

from models.ocr.base import OcrLine
from utils.ocr.markdown import table_rows, to_markdown
from utils.ocr.reading_order import line_blocks, reading_order, visual_lines
from utils.ocr.skew import skew_from_boxes

CHAR_WIDTH = 10
LINE_HEIGHT = 20


def frag(
    text: str,
    left: float,
    top: float,
    *,
    width: float | None = None,
    height: int = LINE_HEIGHT,
    confidence: float = 0.9,
    slope: float = 0.0,
) -> OcrLine:
    """A fragment box; ``slope`` moves it down by slope × its centre x, like a skewed scan."""
    width = len(text) * CHAR_WIDTH if width is None else width
    shifted_top = top + slope * (left + width / 2)
    return OcrLine(
        text=text,
        box=(round(left), round(shifted_top), round(left + width), round(shifted_top) + height),
        confidence=confidence,
    )


def right_aligned(text: str, right: float, top: float, *, slope: float = 0.0) -> OcrLine:
    return frag(text, right - len(text) * CHAR_WIDTH, top, slope=slope)


def texts(lines: list[OcrLine]) -> list[str]:
    return [line.text for line in lines]


def shuffled(fragments: list[OcrLine], seed: int) -> list[OcrLine]:
    copy = list(fragments)
    random.Random(seed).shuffle(copy)
    return copy


# --- layouts -------------------------------------------------------------------

RECEIPT_ROWS = [
    ("BREAD", "4.50"),
    ("MILK 1L", "6.20"),
    ("EGGS 10S", "12.50"),
    ("SUBTOTAL", "23.20"),
    ("TAX", "1.39"),
    ("TOTAL", "24.59"),
]


def receipt(slope: float) -> list[OcrLine]:
    """A narrow receipt: centred header, label at left and amount at right on each row."""
    fragments = [frag("KEDAI RUNCIT ABC", 60, 10, slope=slope)]
    for row, (label, amount) in enumerate(RECEIPT_ROWS):
        top = 50 + 30 * row
        fragments.append(frag(label, 20, top, slope=slope))
        fragments.append(right_aligned(amount, 380, top, slope=slope))
    fragments.append(frag("THANK YOU", 140, 50 + 30 * len(RECEIPT_ROWS) + 20, slope=slope))
    return fragments


RECEIPT_TEXT = ["KEDAI RUNCIT ABC"] + [f"{a} {b}" for a, b in RECEIPT_ROWS] + ["THANK YOU"]


def wide_skewed_invoice(slope: float) -> list[OcrLine]:
    """1,200 px wide. Item rows chain label, qty, price and amount at short distances,
    which shows the skew; the summary rows have only a label at the left edge and an
    amount at the right edge, which at slope 0.02 sits 22 px (more than a text height)
    lower than its label: only deskewing puts the two on one line."""
    fragments = [frag("DESCRIPTION", 20, 20, slope=slope)]
    fragments += [frag("QTY", 500, 20, slope=slope), frag("PRICE", 800, 20, slope=slope)]
    fragments.append(right_aligned("AMOUNT", 1180, 20, slope=slope))
    items = [("PAPER A4", "2", "9.00", "18.00"), ("TONER", "1", "120.00", "120.00")]
    items += [("STAPLES", "5", "1.20", "6.00"), ("FOLDER", "3", "2.50", "7.50")]
    for row, (name, qty, price, amount) in enumerate(items, start=1):
        top = 20 + 30 * row
        fragments.append(frag(name, 20, top, slope=slope))
        fragments.append(frag(qty, 500, top, slope=slope))
        fragments.append(frag(price, 800, top, slope=slope))
        fragments.append(right_aligned(amount, 1180, top, slope=slope))
    summary = [("SUBTOTAL", "151.50"), ("TAX", "9.09"), ("TOTAL", "160.59")]
    for row, (label, amount) in enumerate(summary, start=len(items) + 1):
        fragments.append(frag(label, 20, 20 + 30 * row, slope=slope))
        fragments.append(right_aligned(amount, 1180, 20 + 30 * row, slope=slope))
    return fragments


LEFT_COLUMN = [
    "Optical character recognition",
    "turns images of printed text",
    "into machine readable strings",
    "that search engines can index",
    "and people can copy and edit",
]
RIGHT_COLUMN = [
    "Reading order matters because",
    "a page with two columns must",
    "be read down the left column",
    "before the right one starts so",
    "sentences stay in one piece",
]


def two_column_page(right_offset: float = 0.0) -> list[OcrLine]:
    """Full-width title, two columns of prose (380 px, gutter 50 px), full-width footer."""
    fragments = [frag("A SHORT ARTICLE ABOUT DOCUMENT LAYOUT", 50, 20, width=810, height=30)]
    for row, (left_text, right_text) in enumerate(zip(LEFT_COLUMN, RIGHT_COLUMN, strict=True)):
        top = 90 + 30 * row
        width = 380 if row < len(LEFT_COLUMN) - 1 else 300  # last line of a paragraph
        fragments.append(frag(left_text, 50, top, width=width))
        fragments.append(frag(right_text, 480, top + right_offset, width=width))
    fragments.append(frag("Page footer spanning the whole width", 50, 280, width=810))
    return fragments


# --- reading order: receipts ---------------------------------------------------


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.02, -0.015])
def test_receipt_rows_merge_label_and_amount(slope: float) -> None:
    assert texts(reading_order(receipt(slope))) == RECEIPT_TEXT


def test_wide_skewed_page_is_deskewed_before_grouping() -> None:
    fragments = wide_skewed_invoice(0.02)
    assert skew_from_boxes(fragments) == pytest.approx(0.02, abs=0.003)
    assert texts(reading_order(fragments)) == [
        "DESCRIPTION QTY PRICE AMOUNT",
        "PAPER A4 2 9.00 18.00",
        "TONER 1 120.00 120.00",
        "STAPLES 5 1.20 6.00",
        "FOLDER 3 2.50 7.50",
        "SUBTOTAL 151.50",
        "TAX 9.09",
        "TOTAL 160.59",
    ]


def test_unskewed_page_estimates_zero_skew() -> None:
    assert skew_from_boxes(wide_skewed_invoice(0.0)) == pytest.approx(0.0, abs=1e-9)


def test_receipt_key_value_header_is_not_read_as_two_columns() -> None:
    rows = [("DOC NO:", "CS00031663", "DATE:", "25/12/2018")]
    rows += [("CASHIER:", "USER", "TIME:", "12:31:00"), ("TABLE:", "T02", "PAX:", "2")]
    rows += [("WAITER:", "ANJO", "REF:", "0042")]
    fragments = []
    for row, cells in enumerate(rows):
        for cell, left in zip(cells, (20, 120, 280, 340), strict=True):
            fragments.append(frag(cell, left, 20 + 25 * row))
    assert texts(reading_order(fragments)) == [" ".join(cells) for cells in rows]


def test_receipt_label_value_pairs_on_both_sides_stay_rows() -> None:
    # Letters on both sides, full columns, narrow gutter: only the cell gaps inside
    # each side show that these are rows of a form, not two columns of prose.
    rows = [("CASHIER", "MARY ANN", "WAITER", "JOHN LEE")]
    rows += [("COUNTER", "FRONT AA", "SECTION", "SMOKING")]
    rows += [("MEMBER", "GOLD TIER", "POINTS", "TWELVE")]
    rows += [("PAYMENT", "CARD VISA", "STATUS", "APPROVED")]
    fragments = []
    for row, cells in enumerate(rows):
        for cell, left in zip(cells, (20, 120, 260, 340), strict=True):
            fragments.append(frag(cell, left, 20 + 25 * row))
    assert texts(reading_order(fragments)) == [" ".join(cells) for cells in rows]


def test_barcode_and_price_rows_stay_rows() -> None:
    # One fragment per side, full columns, narrow gutter: only the lack of letters
    # shows that these are receipt rows, not two columns of text.
    rows = [("9555845400009", "2.50 X 3 = 7.50"), ("9555124301089", "6.00 X 3 = 18.00")]
    rows += [("0000000515474", "7.99 X 2 = 15.98"), ("9556001234567", "1.00 X 1 = 1.00")]
    fragments = []
    for row, (code, price) in enumerate(rows):
        fragments.append(frag(code, 20, 20 + 25 * row, width=130))
        fragments.append(frag(price, 190, 20 + 25 * row, width=160))
    assert texts(reading_order(fragments)) == [f"{code} {price}" for code, price in rows]


def test_form_with_ragged_labels_and_values_stays_rows() -> None:
    # Words on both sides, narrow gutter, but labels and values of very different
    # lengths do not fill their columns the way lines of running text do.
    rows = [("NAME", "ALI"), ("ADDRESS OF THE CUSTOMER", "JALAN BUKIT BINTANG")]
    rows += [("CITY", "KL"), ("STATE", "SELANGOR"), ("PHONE", "NONE")]
    fragments = []
    for row, (label, value) in enumerate(rows):
        fragments.append(frag(label, 20, 20 + 25 * row))
        fragments.append(frag(value, 280, 20 + 25 * row))
    assert texts(reading_order(fragments)) == [f"{label} {value}" for label, value in rows]


def test_wide_gap_between_label_and_value_blocks_is_not_a_gutter() -> None:
    # Both sides are full blocks of words, but a gap wider than half a block is the
    # space between a label and its value on a form, not a column gutter.
    rows = [
        ("CUSTOMER NAME", "ALICE TAN"),
        ("DELIVERY ZONE", "NORTHERN"),
        ("ACCOUNT TYPE", "PREMIUM"),
    ]
    rows += [("BILLING CYCLE", "MONTHLY")]
    fragments = []
    for row, (label, value) in enumerate(rows):
        fragments.append(frag(label, 20, 20 + 25 * row, width=130))
        fragments.append(frag(value, 400, 20 + 25 * row, width=90))
    assert texts(reading_order(fragments)) == [f"{label} {value}" for label, value in rows]


def test_two_line_river_in_prose_is_not_a_gutter() -> None:
    # Word boxes of two justified lines whose widest spaces happen to line up.
    line_one = [("Reading", 20), ("order", 100), ("matters", 175), ("for", 275), ("search", 315)]
    line_two = [("because", 20), ("engines", 100), ("index", 180), ("whole", 275), ("pages", 335)]
    fragments = [frag(word, left, 0) for word, left in line_one]
    fragments += [frag(word, left, 25) for word, left in line_two]
    assert texts(reading_order(fragments)) == [
        "Reading order matters for search",
        "because engines index whole pages",
    ]


def test_inflated_box_of_a_tilted_line_does_not_swallow_the_next_line() -> None:
    # The axis-aligned box of a long tilted line is twice the text height; the short
    # line below overlaps it by 75 % vertically but also horizontally: stacked.
    fragments = [
        OcrLine(text="A LONG LINE SCANNED AT AN ANGLE", box=(20, 0, 620, 40), confidence=0.9),
        OcrLine(text="NEXT", box=(30, 25, 130, 45), confidence=0.9),
    ]
    assert texts(reading_order(fragments)) == ["A LONG LINE SCANNED AT AN ANGLE", "NEXT"]


def test_tightly_spaced_lines_stay_separate() -> None:
    # Line pitch 17 px for 20 px boxes: 3 px of overlap is not "the same line".
    fragments = [frag("FIRST LINE", 20, 0), frag("SECOND LINE", 22, 17), frag("THIRD", 20, 34)]
    assert texts(reading_order(fragments)) == ["FIRST LINE", "SECOND LINE", "THIRD"]


def test_merged_line_box_and_length_weighted_confidence() -> None:
    fragments = [
        OcrLine(text="CDEF", box=(100, 12, 140, 30), confidence=0.4),
        OcrLine(text=" AB ", box=(10, 10, 30, 31), confidence=1.0),
    ]
    (line,) = reading_order(fragments)
    assert line.text == "AB CDEF"
    assert line.box == (10, 10, 140, 31)
    assert line.confidence == pytest.approx((2 * 1.0 + 4 * 0.4) / 6)


def test_visual_lines_keep_original_fragments_left_to_right() -> None:
    lines = visual_lines(receipt(0.01))
    assert [f.text for f in lines[1].fragments] == ["BREAD", "4.50"]
    assert lines[1].fragments[0].box == receipt(0.01)[1].box


# --- reading order: columns ----------------------------------------------------


@pytest.mark.parametrize("right_offset", [0.0, 12.0])
def test_two_column_page_reads_left_column_then_right(right_offset: float) -> None:
    expected = ["A SHORT ARTICLE ABOUT DOCUMENT LAYOUT", *LEFT_COLUMN, *RIGHT_COLUMN]
    expected.append("Page footer spanning the whole width")
    assert texts(reading_order(two_column_page(right_offset))) == expected


def test_two_column_markdown_starts_a_paragraph_per_column() -> None:
    markdown = to_markdown(two_column_page())
    assert "\n".join(LEFT_COLUMN) + "\n\n" + "\n".join(RIGHT_COLUMN) in markdown


# --- input order and empty input ---------------------------------------------


@pytest.mark.parametrize(
    "fragments",
    [receipt(0.015), wide_skewed_invoice(0.02), two_column_page(12.0)],
    ids=["receipt", "wide-invoice", "two-columns"],
)
def test_shuffled_input_gives_identical_output(fragments: list[OcrLine]) -> None:
    expected_lines, expected_markdown = reading_order(fragments), to_markdown(fragments)
    for seed in range(5):
        assert reading_order(shuffled(fragments, seed)) == expected_lines
        assert to_markdown(shuffled(fragments, seed)) == expected_markdown


def test_empty_and_blank_input() -> None:
    blank = [OcrLine(text="  ", box=(0, 0, 10, 10), confidence=0.5)]
    assert reading_order([]) == []
    assert reading_order(blank) == []
    assert to_markdown([]) == ""
    assert table_rows(blank) == []


# --- Markdown -------------------------------------------------------------------

TABLE = [
    ["Item", "Qty", "Price"],
    ["Apple", "2", "1.50"],
    ["Banana | ripe", "12", "0.25"],
    ["Cherry", "100", "10.00"],
]


def table_fragments(top: float = 100) -> list[OcrLine]:
    """3 columns × 4 rows: text left-aligned, numbers right-aligned."""
    fragments = []
    for row, (item, qty, price) in enumerate(TABLE):
        y = top + 30 * row
        fragments.append(frag(item, 20, y))
        fragments.append(right_aligned(qty, 260, y))
        fragments.append(right_aligned(price, 400, y))
    return fragments


def test_aligned_rows_become_a_markdown_table() -> None:
    fragments = [frag("Price list", 20, 40), *table_fragments()]
    assert to_markdown(fragments) == "\n".join(
        [
            "Price list",
            "",
            "| Item | Qty | Price |",
            "| --- | --- | --- |",
            "| Apple | 2 | 1.50 |",
            "| Banana \\| ripe | 12 | 0.25 |",
            "| Cherry | 100 | 10.00 |",
        ]
    )


def test_table_rows_returns_raw_cells() -> None:
    assert table_rows(table_fragments()) == [TABLE]


def test_paragraphs_are_separated_at_large_gaps() -> None:
    fragments = [frag("first paragraph line one", 20, 0), frag("line two", 20, 25)]
    fragments += [frag("line three", 20, 50)]
    fragments += [frag("second paragraph", 20, 120), frag("its last line", 20, 145)]
    assert to_markdown(fragments) == (
        "first paragraph line one\nline two\nline three\n\nsecond paragraph\nits last line"
    )


def test_word_level_fragments_of_prose_are_not_a_table() -> None:
    # Tesseract gives one box per word: aligned first words, but only word spaces between.
    words_one = ["The", "quick", "brown"]
    words_two = ["The", "lazy", "dog"]
    fragments = []
    for row, words in enumerate((words_one, words_two)):
        left = 20
        for word in words:
            fragments.append(frag(word, left, 25 * row))
            left += len(word) * CHAR_WIDTH + 6
    assert table_rows(fragments) == []
    assert to_markdown(fragments) == "The quick brown\nThe lazy dog"


def test_misaligned_rows_are_not_a_table() -> None:
    fragments = [frag("Name", 20, 0), frag("Alice", 200, 0)]
    fragments += [frag("Address", 20, 25), frag("12 Long Street", 320, 25)]
    assert table_rows(fragments) == []


def test_text_without_positions_keeps_its_order() -> None:
    """A VLM's lines have no boxes: reading order keeps them, Markdown joins them."""
    lines = [OcrLine(text=t, box=None, confidence=1.0) for t in ["B first", "", "A second"]]
    assert [line.text for line in reading_order(lines)] == ["B first", "A second"]
    assert to_markdown(lines) == "B first\nA second"
    assert table_rows(lines) == []


def test_line_blocks_split_a_row_at_wide_gaps_only() -> None:
    """An address and the invoice number printed beside it are two blocks of one line;
    a label and its value a word space apart stay one."""
    fragments = [
        frag("12, JALAN INDAH", 40, 100),
        frag("INV NO: 881", 600, 101),
        frag("TOTAL", 40, 140),
        frag("10.00", 40 + 5 * CHAR_WIDTH + 8, 140),
    ]
    blocks = line_blocks(fragments)
    assert [line.text for line in reading_order(fragments)] == [
        "12, JALAN INDAH INV NO: 881",
        "TOTAL 10.00",
    ]
    assert [[b.text for b in line] for line in blocks] == [
        ["12, JALAN INDAH", "INV NO: 881"],
        ["TOTAL 10.00"],
    ]
    assert blocks[0][1].box == fragments[1].box


def test_line_blocks_of_text_without_positions_are_empty() -> None:
    lines = [
        OcrLine(text="A", box=None, confidence=1.0),
        OcrLine(text=" ", box=None, confidence=1.0),
    ]
    assert line_blocks(lines) == [[]]
