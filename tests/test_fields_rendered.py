"""Receipt fields read through the real OCR from rendered receipts the rules were not
tuned on: other layouts (left, centred, thermal roll, A5 invoice), fonts, label words
and address shapes (testkit/receipts.py). Each receipt is drawn, read once by the
default engine through the OCR pipeline, and each field scored with the benchmark's
``field_correct`` against the SROIE-style labels."""

from __future__ import annotations

from functools import cache

import pytest

from models.config import load_config
from models.templates import builtin_templates
from testkit.receipts import (
    BUILTIN_FONT,
    FONT_NAMES,
    LAYOUTS,
    ReceiptSpec,
    font_installed,
    load_font,
    read_receipt,
    render_receipt,
    truth_lines,
    varied_specs,
)
from utils.bench.metrics import field_correct
from utils.fields.extract import extract_fields

SPECS = {
    "malay shop": ReceiptSpec(
        company="KEDAI RUNCIT SRI MURNI",
        registration="(001234567-X)",
        address=("NO. 8,", "JALAN PASAR 2", "TAMAN MELAWATI", "53100 KUALA LUMPUR"),
        header=("TEL: 03-4108 1234",),
        title="RESIT",
        date="15-06-2019",
        date_line="TARIKH: {date}",
        before_items=("CASHIER: SITI",),
        items=(("RICE 5KG", "22.90"), ("SUGAR 1KG", "2.85"), ("TEH TARIK 2 X 2.20", "4.40")),
        subtotals=(("ROUNDING", "0.00"),),
        total_label="JUMLAH",
        total="30.15",
        payments=(("TUNAI", "50.00"), ("BAKI", "19.85")),
        footer=("TERIMA KASIH",),
    ),
    "singapore cafe": ReceiptSpec(
        company="THE BEAN CAFE PTE LTD",
        address=("201 ANG MO KIO AVE 3 #01-25", "SINGAPORE 569933"),
        header=("GST REG NO: M2-1234567-8", "TEL: 6535 1234"),
        date="07 MAR 2019",
        date_line="DATE: {date}\tTIME: 13:45",
        items=(("LATTE", "5.80"), ("CROISSANT", "4.20")),
        subtotals=(("SUBTOTAL", "10.00"), ("SERVICE CHARGE 10%", "1.00"), ("GST 7%", "0.77")),
        total_label="NETT TOTAL",
        currency="$",
        total="11.77",
        payments=(("VISA", "11.77"),),
        footer=("THANK YOU",),
    ),
    "hardware, amount due": ReceiptSpec(
        company="MEGA HARDWARE SDN BHD",
        registration="(556677-K)",
        address=("LOT 1234, BATU 5", "JALAN KLANG LAMA", "58000 KUALA LUMPUR"),
        header=("GST ID: 000123456789",),
        title="TAX INVOICE",
        date="2019-01-23",
        date_line="DATE : {date}",
        before_items=("INV NO: 88821",),
        items=(("PAINT 1L", "35.00"), ("BRUSH 2IN", "6.50")),
        subtotals=(("TOTAL EXCL. GST", "39.15"), ("GST 6%", "2.35")),
        total_label="AMOUNT DUE",
        total="41.50",
        payments=(("MASTER", "41.50"),),
    ),
    "restoran, date at the end": ReceiptSpec(
        company="RESTORAN SEGAR MAJU",
        address=("NO 3, JLN PERDANA 1/2", "BANDAR BARU BANGI", "43650 SELANGOR"),
        header=("TEL: 03-8925 1122",),
        before_items=("TABLE 12",),
        date="30.04.18",
        date_line="{date} 18:02",
        date_at_end=True,
        items=(("NASI LEMAK", "4.50"), ("MILO AIS", "3.00"), ("ROTI CANAI", "1.50")),
        total_label="TOTAL (RM)",
        total="9.00",
        payments=(("CASH", "10.00"), ("CHANGE", "1.00")),
        footer=("PLEASE COME AGAIN",),
    ),
    "stationery, many distractors": ReceiptSpec(
        company="LIAN SENG STATIONERY & BOOKS",
        registration="(001451637-M)",
        address=("NO. 53, JALAN BESAR,", "45600 BATANG BERJUNTAI", "SELANGOR DARUL EHSAN"),
        header=("TEL : 03-3271 9872", "GST NO. : 000689913856"),
        title="SIMPLIFIED TAX INVOICE",
        date="17/01/2019",
        date_line="DATE : {date}",
        before_items=("RECEIPT NO. : CS1801/26821", "CASHIER: AMIRAH"),
        items=(("A4 PAPER 80GSM", "12.90"), ("PEN BLUE 0.5MM", "2.50"), ("FILE", "8.60")),
        subtotals=(
            ("TOTAL QTY:", "3"),
            ("SUBTOTAL", "24.00"),
            ("GST 6%", "1.44"),
            ("ROUNDING", "0.01"),
        ),
        total_label="GRAND TOTAL",
        currency="RM",
        total="25.45",
        payments=(("CASH", "50.00"), ("CHANGE", "24.55")),
    ),
    "enterprise, address on two lines": ReceiptSpec(
        company="HOCK LEE ENTERPRISE",
        address=("12, JALAN TAMPOI 7/4, KAWASAN PERINDUSTRIAN TAMPOI,", "81200 JOHOR BAHRU, JOHOR"),
        header=("(GST REG. NO : 000416321536)",),
        title="CASH BILL",
        date="24 DEC 2018",
        date_line="DATE/TIME: {date} 18:24",
        items=(("CABLE TIE 100PCS", "6.80"), ("SCREW 8MM", "4.00")),
        subtotals=(("GST 6%", "0.65"), ("ROUNDING", "0.00")),
        total_label="TOTAL INCL. GST",
        total="11.45",
        payments=(("CASH", "20.00"), ("CHANGE", "8.55")),
    ),
    "pharmacy, total amount": ReceiptSpec(
        company="GREEN LEAF PHARMACY (M) SDN. BHD.",
        address=(
            "LOT G-05, GROUND FLOOR", "WISMA MUTIARA", "JALAN SULTAN ISMAIL", "50250 KUALA LUMPUR",
        ),
        header=("SST ID: W10-1808-32000123",),
        title="RECEIPT",
        date="05 NOV 2018",
        date_line="DATE {date}",
        items=(("VITAMIN C 1000MG", "39.90"), ("PLASTER 20S", "5.20")),
        total_label="TOTAL AMOUNT",
        total="45.10",
        payments=(("DEBIT CARD", "45.10"),),
        footer=("GOODS SOLD ARE NOT RETURNABLE",),
    ),
    "bakery in penang": ReceiptSpec(
        company="GOLDEN BAKERY S/B",
        address=("68,", "LORONG KENARI 3", "10200 GEORGE TOWN", "PULAU PINANG"),
        header=("TEL: 04-226 1234", "GST ID: 000987654321"),
        date="09/11/2018",
        date_line="{date}\t20:31",
        items=(("BUTTER BUN", "2.40"), ("EGG TART 4PCS", "6.00"), ("KAYA", "4.50")),
        subtotals=(("SUB TOTAL", "12.90"),),
        total_label="TOTAL:",
        total="12.90",
        payments=(("CASH", "20.00"), ("CHANGE", "7.10")),
        footer=("THANK YOU", "PLEASE COME AGAIN"),
    ),
}  # fmt: skip

# (spec, layout, font): every spec three times, every layout six times, every font two
# to four times (the mono fonts where RapidOCR reads their O as O, not 0).
CASES = [
    ("malay shop", "left", "dejavu-sans"),
    ("malay shop", "thermal", "liberation-serif"),
    ("malay shop", "invoice", "liberation-sans"),
    ("singapore cafe", "centred", "liberation-sans-narrow"),
    ("singapore cafe", "thermal", "liberation-sans"),
    ("singapore cafe", "invoice", "dejavu-serif"),
    ("hardware, amount due", "left", "dejavu-sans-mono"),
    ("hardware, amount due", "centred", BUILTIN_FONT),
    ("hardware, amount due", "invoice", "dejavu-sans"),
    ("restoran, date at the end", "left", "liberation-sans"),
    ("restoran, date at the end", "thermal", "dejavu-sans"),
    ("restoran, date at the end", "centred", "dejavu-serif"),
    ("stationery, many distractors", "centred", "liberation-serif"),
    ("stationery, many distractors", "thermal", "liberation-sans-narrow"),
    ("stationery, many distractors", "invoice", "liberation-mono"),
    ("enterprise, address on two lines", "left", BUILTIN_FONT),
    ("enterprise, address on two lines", "thermal", "dejavu-sans"),
    ("enterprise, address on two lines", "invoice", "liberation-sans-narrow"),
    ("pharmacy, total amount", "centred", "liberation-sans"),
    ("pharmacy, total amount", "thermal", "liberation-mono"),
    ("pharmacy, total amount", "left", "dejavu-serif"),
    ("bakery in penang", "left", "liberation-serif"),
    ("bakery in penang", "centred", "dejavu-sans-mono"),
    ("bakery in penang", "invoice", BUILTIN_FONT),
]

FIELDS = ("company", "date", "address", "total")


def _params() -> list:
    params = []
    for spec_name, layout, font in CASES:
        for field in FIELDS:
            case_id = f"{spec_name}-{layout}-{font}-{field}".replace(" ", "_").replace(",", "")
            params.append(pytest.param(spec_name, layout, font, field, id=case_id))
    return params


@pytest.fixture(scope="module")
def read_fields():
    """Reads each (spec, layout, font) receipt once for all its fields; the engine is
    created on the first read and shared by the module."""
    config = load_config().config

    @cache
    def read(spec_name: str, layout: str, font: str) -> tuple[dict, tuple[str, ...]]:
        image = render_receipt(SPECS[spec_name], font=font, layout=layout)
        result = read_receipt(image, config)
        assert result.ok, result.error
        lines = tuple(line.text for page in result.pages for line in page.lines)
        return {name: found.value for name, found in result.fields.items()}, lines

    return read


@pytest.mark.slow  # 24 receipts through RapidOCR, ~2 s each, read once for their 4 fields
@pytest.mark.parametrize(("spec_name", "layout", "font", "field"), _params())
def test_rendered_receipt_field(read_fields, spec_name, layout, font, field) -> None:
    if not font_installed(font):
        pytest.skip(f"font {font} not installed (scripts/install_system_deps.sh installs it)")
    found, lines = read_fields(spec_name, layout, font)
    expected = SPECS[spec_name].fields[field]
    assert field_correct(field, found[field], expected), (
        f"{field}: expected {expected!r}, got {found[field]!r}; OCR lines: {list(lines)}"
    )


@pytest.mark.parametrize(
    ("spec_name", "field"),
    [
        pytest.param(spec_name, field, id=f"{spec_name}-{field}".replace(" ", "_").replace(",", ""))
        for spec_name in SPECS
        for field in FIELDS
    ],
)
def test_ground_truth_lines_field(spec_name: str, field: str) -> None:
    """The rules alone, on the printed rows as perfect OCR lines (no rendering)."""
    spec = SPECS[spec_name]
    found = extract_fields(builtin_templates()["receipt"], truth_lines(spec))
    assert field_correct(field, found[field].value, spec.fields[field]), found[field]


def test_cases_cover_every_layout_and_font() -> None:
    assert {layout for _, layout, _ in CASES} == set(LAYOUTS)
    assert {font for _, _, font in CASES} == set(FONT_NAMES)
    assert {spec for spec, _, _ in CASES} == set(SPECS)


def test_rendering_is_deterministic_and_readable_sizes() -> None:
    spec = SPECS["malay shop"]
    for layout in LAYOUTS:
        first = render_receipt(spec, layout=layout, seed=3)
        assert first.tobytes() == render_receipt(spec, layout=layout, seed=3).tobytes()
        assert first.mode == "RGB" and first.height > first.width / 2
    assert render_receipt(spec, layout="thermal").width < 600  # a 576 px roll, tilted
    assert render_receipt(spec, layout="invoice").width > 1200
    with pytest.raises(ValueError, match="unknown layout"):
        render_receipt(spec, layout="poster")


def test_a_missing_font_falls_back_to_the_builtin_one() -> None:
    fallback = load_font("no-such-font", 30)
    assert fallback.getlength("TOTAL") == load_font(BUILTIN_FONT, 30).getlength("TOTAL")
    image = render_receipt(SPECS["bakery in penang"], font="no-such-font", layout="centred")
    assert image.width > 0


def test_varied_specs_are_deterministic_and_labelled_as_printed() -> None:
    specs = varied_specs(seed=7, n=16)
    assert specs == varied_specs(seed=7, n=16) and specs != varied_specs(seed=8, n=16)
    assert {spec.layout for spec in specs} == set(LAYOUTS)
    for spec in specs:
        rows = [line.text for line in truth_lines(spec)]
        assert spec.company in rows
        assert all(line in rows for line in spec.address) and 2 <= len(spec.address) <= 4
        assert any(spec.date in row for row in rows)
        assert any(spec.total in row and spec.total_label in row for row in rows)
