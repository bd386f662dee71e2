"""Rendered receipts with known fields, in several layouts and fonts.

A ``ReceiptSpec`` says what is printed (company, address lines, date, items, the
total and its label, distractor amounts, side lines such as TEL or GST no.);
``render_receipt`` draws it in one of ``LAYOUTS`` with one of ``FONTS``, and
``ReceiptSpec.fields`` is what a labeller following the SROIE conventions would
write down (``utils.bench.metrics.field_correct`` scores against it): the company
as printed without its registration number, the address lines joined by spaces,
the date as printed (without a time), the total as the number.

``varied_specs`` draws specs unlike the development set's: Malaysian and
Singaporean company names, address shapes of two to four lines, five date
formats, a dozen total labels among SUBTOTAL / CASH / CHANGE / ROUNDING lines.
Everything is deterministic for a seed; a font file missing on the machine falls
back to Pillow's built-in font, so the tests run on a fresh machine too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.config import AppConfig
from models.ocr.base import OcrLine
from testkit.render import encode
from utils.ocr.pipeline import DocumentResult, OcrSettings, ocr_file

# ---------------------------------------------------------------------------
# Fonts
# ---------------------------------------------------------------------------

FONTS: dict[str, tuple[str, str]] = {
    "dejavu-sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "dejavu-sans-mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
    "dejavu-serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "liberation-sans": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    "liberation-serif": ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
    "liberation-mono": ("LiberationMono-Regular.ttf", "LiberationMono-Bold.ttf"),
    "liberation-sans-narrow": ("LiberationSansNarrow-Regular.ttf", "LiberationSansNarrow-Bold.ttf"),
}
"""Font name -> (regular, bold) file names, as Debian's fonts-dejavu-core and
fonts-liberation install them."""

BUILTIN_FONT = "pillow-default"
"""Pillow's own font (``ImageFont.load_default``): there on every machine."""

FONT_NAMES = (*FONTS, BUILTIN_FONT)

FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path.home() / ".fonts",
)


@lru_cache(maxsize=64)
def font_path(file_name: str) -> Path | None:
    """Where a font file is on this machine, or None."""
    for folder in FONT_DIRS:
        if folder.is_dir():
            found = next(folder.rglob(file_name), None)
            if found is not None:
                return found
    return None


def font_installed(name: str) -> bool:
    """Whether ``name`` draws in its own face here (not in the built-in fallback)."""
    return name == BUILTIN_FONT or (name in FONTS and font_path(FONTS[name][0]) is not None)


@lru_cache(maxsize=256)
def load_font(name: str, size: int, bold: bool = False) -> ImageFont.ImageFont:
    """The named font at ``size`` px; Pillow's built-in font for ``BUILTIN_FONT`` and
    when the font's file is missing."""
    files = FONTS.get(name)
    if files is not None:
        path = font_path(files[1]) if bold else None
        path = path or font_path(files[0])
        if path is not None:
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


# ---------------------------------------------------------------------------
# What is printed
# ---------------------------------------------------------------------------

Pair = tuple[str, str]
"""A row of label and amount: ("COFFEE", "4.50")."""


@dataclass(frozen=True)
class ReceiptSpec:
    """One receipt's printed content, and the layout and font it is drawn in.

    ``date_line`` prints the date: ``{date}`` marks where; a tab splits the row into
    a left and a right part ("DATE: {date}\\tTIME: 13:45").
    """

    company: str
    address: tuple[str, ...]
    date: str
    items: tuple[Pair, ...]
    total: str
    total_label: str = "TOTAL"
    currency: str = ""
    """Printed before the total's amount ("RM", "$"); the field is the number alone."""
    registration: str = ""
    """Under the company ("(001234567-X)"); not part of the company field."""
    header: tuple[str, ...] = ()
    """Lines after the address: "TEL: 03-2691 1234", "GST REG NO: ..."."""
    title: str = ""
    """"TAX INVOICE", "RECEIPT", ..."""
    date_line: str = "DATE: {date}"
    date_at_end: bool = False
    """Print the date line after the payments, as some tills do."""
    before_items: tuple[str, ...] = ()
    """Cashier, receipt no., table: between the date and the items."""
    subtotals: tuple[Pair, ...] = ()
    """Rows between the items and the total: SUBTOTAL, GST, ROUNDING, TOTAL QTY."""
    payments: tuple[Pair, ...] = ()
    """Rows after the total: CASH, CHANGE, VISA."""
    footer: tuple[str, ...] = ()
    layout: str = "centred"
    font: str = "dejavu-sans"

    @property
    def fields(self) -> dict[str, str]:
        """The receipt template's fields as SROIE labels them."""
        return {
            "company": self.company,
            "date": self.date,
            "address": " ".join(self.address),
            "total": self.total,
        }

    @property
    def total_row(self) -> Pair:
        amount = f"{self.currency} {self.total}".strip() if self.currency else self.total
        return (self.total_label, amount)

    @property
    def printed_date_line(self) -> str:
        return self.date_line.format(date=self.date)


def header_rows(spec: ReceiptSpec) -> list[str]:
    """Company block: name, registration, address, side lines."""
    rows = [spec.company, *([spec.registration] if spec.registration else [])]
    return rows + list(spec.address) + list(spec.header)


def meta_rows(spec: ReceiptSpec) -> list[str]:
    """Title, date (unless printed at the end), cashier / receipt no."""
    rows = [spec.title] if spec.title else []
    rows += [] if spec.date_at_end else [spec.printed_date_line]
    return rows + list(spec.before_items)


def amount_rows(spec: ReceiptSpec) -> list[Pair]:
    return [*spec.subtotals, spec.total_row, *spec.payments]


def tail_rows(spec: ReceiptSpec) -> list[str]:
    return ([spec.printed_date_line] if spec.date_at_end else []) + list(spec.footer)


def printed_rows(spec: ReceiptSpec) -> list[str]:
    """Every printed row in reading order, a label and its amount as one row (as the
    OCR pipeline's reading order merges them); a date line's tab becomes a space."""
    pairs = [*spec.items, *amount_rows(spec)]
    rows = header_rows(spec) + meta_rows(spec) + [f"{a} {b}" for a, b in pairs]
    return [row.replace("\t", " ") for row in rows + tail_rows(spec)]


def truth_lines(spec: ReceiptSpec) -> list[OcrLine]:
    """The printed rows as perfect OCR lines, stacked top to bottom (no rendering):
    extraction on them measures the rules apart from OCR errors."""
    pitch, height = 40, 28
    return [
        OcrLine(
            text=text, box=(20, i * pitch, 20 + 14 * len(text), i * pitch + height), confidence=1.0
        )
        for i, text in enumerate(printed_rows(spec))
    ]


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

LAYOUTS = ("left", "centred", "thermal", "invoice")
"""left: everything flush left, amounts in a column after the labels; centred: the
company block centred, amounts flush right; thermal: a 576 px roll (the 72 mm
printed width of an 80 mm roll at 203 dpi), centred, long lines shrunk or wrapped;
invoice: an A5-wide page, company block top left with the title, date and numbers
in a column beside it, items as a table and the totals in a block on the right."""

_WIDTHS = {"left": 820, "centred": 820, "thermal": 576, "invoice": 1240}
_FONT_SIZES = {"left": 28, "centred": 28, "thermal": 24, "invoice": 26}
_MIN_FONT_SIZE = 20
_MARGIN = 40


@dataclass
class _Canvas:
    """Text drawn on a growing list of rows; the image is made at the end."""

    width: int
    font: str
    size: int
    ink: int
    y: int = _MARGIN
    ops: list[tuple[int, int, str, ImageFont.ImageFont]] = field(default_factory=list)
    rules: list[tuple[int, int, int]] = field(default_factory=list)

    def face(self, size: int | None = None, bold: bool = False) -> ImageFont.ImageFont:
        return load_font(self.font, size or self.size, bold)

    def pitch(self, size: int | None = None) -> int:
        return int((size or self.size) * 1.55)

    def text_width(self, text: str, face: ImageFont.ImageFont) -> float:
        return face.getlength(text)

    def put(self, x: float, text: str, face: ImageFont.ImageFont) -> None:
        self.ops.append((int(x), self.y, text, face))

    def fitted(self, text: str, room: float, size: int, bold: bool = False) -> list[tuple]:
        """(text, face) rows: shrunk down to the minimum size, then wrapped at spaces."""
        for trial in range(size, _MIN_FONT_SIZE - 1, -2):
            face = self.face(trial, bold)
            if self.text_width(text, face) <= room:
                return [(text, face)]
        face = self.face(_MIN_FONT_SIZE, bold)
        rows, current = [], ""
        for word in text.split():
            candidate = f"{current} {word}".strip()
            if current and self.text_width(candidate, face) > room:
                rows.append((current, face))
                current = word
            else:
                current = candidate
        return rows + [(current, face)]

    def line(self, text: str, align: str = "left", size: int | None = None, bold=False) -> None:
        room = self.width - 2 * _MARGIN
        for row, face in self.fitted(text, room, size or self.size, bold):
            width = self.text_width(row, face)
            x = _MARGIN if align == "left" else (self.width - width) / 2
            self.put(x, row, face)
            self.y += self.pitch(face.size if hasattr(face, "size") else None)

    def pair(self, left: str, right: str, right_edge: float, left_x: float = _MARGIN) -> None:
        face = self.face()
        if "\t" in left:  # "DATE: ...\tTIME: ..." already has its two parts
            left, right = left.split("\t", 1)
        self.put(left_x, left, face)
        self.put(right_edge - self.text_width(right, face), right, face)
        self.y += self.pitch()

    def row(self, text: str, align: str, right_edge: float) -> None:
        if "\t" in text:
            self.pair(text, "", right_edge)
        else:
            self.line(text, align)

    def rule(self) -> None:
        self.rules.append((_MARGIN, self.width - _MARGIN, self.y + self.size // 4))
        self.y += self.pitch() // 2

    def image(self, background: int) -> Image.Image:
        height = self.y + _MARGIN
        image = Image.new("L", (self.width, height), background)
        draw = ImageDraw.Draw(image)
        for x, y, text, face in self.ops:
            draw.text((x, y), text, fill=self.ink, font=face)
        for left, right, y in self.rules:
            for x in range(left, right, 14):  # dashed, as a till prints it
                draw.line([(x, y), (min(x + 8, right), y)], fill=self.ink, width=2)
        return image


def _draw_till(spec: ReceiptSpec, canvas: _Canvas, layout: str) -> None:
    """left, centred and thermal: one column, top to bottom."""
    align = "left" if layout == "left" else "center"
    edge = canvas.width - _MARGIN  # amounts flush right, or in a column after the labels
    if layout == "left":
        edge = _MARGIN + 0.72 * (canvas.width - 2 * _MARGIN)
    canvas.line(spec.company, align, size=int(canvas.size * 1.2), bold=True)
    centred = {*header_rows(spec), spec.title}
    for text in header_rows(spec)[1:] + meta_rows(spec):
        canvas.row(text, align if text in centred else "left", edge)
    canvas.rule()
    for label, amount in spec.items:
        canvas.pair(label, amount, edge)
    canvas.rule()
    for label, amount in amount_rows(spec):
        canvas.pair(label, amount, edge)
    canvas.rule()
    for text in tail_rows(spec):
        canvas.row(text, align if text in spec.footer else "left", edge)


def _draw_invoice(spec: ReceiptSpec, canvas: _Canvas) -> None:
    """Company block left, title / date / numbers in a column beside it."""
    top = canvas.y
    canvas.line(spec.company, "left", size=int(canvas.size * 1.5), bold=True)
    for text in header_rows(spec)[1:]:
        canvas.line(text, "left")
    left_bottom, canvas.y = canvas.y, top + canvas.pitch()
    column = canvas.width * 0.6
    for text in meta_rows(spec):
        canvas.put(column, text.replace("\t", "  "), canvas.face())
        canvas.y += canvas.pitch()
    canvas.y = max(canvas.y, left_bottom) + canvas.pitch() // 2
    edge = canvas.width - _MARGIN
    canvas.pair("DESCRIPTION", "AMOUNT", edge)
    canvas.rule()
    for label, amount in spec.items:
        canvas.pair(label, amount, edge)
    canvas.rule()
    for label, amount in amount_rows(spec):
        canvas.pair(label, amount, edge, left_x=canvas.width * 0.55)
    canvas.y += canvas.pitch() // 2
    for text in tail_rows(spec):
        canvas.row(text, "center" if text in spec.footer else "left", edge)


def render_receipt(
    spec: ReceiptSpec,
    font: str | None = None,
    layout: str | None = None,
    seed: int = 0,
    rotate: bool = True,
) -> Image.Image:
    """The receipt drawn in ``layout`` with ``font`` (defaults: the spec's), RGB.

    A light grey paper, dark grey ink, mild pixel noise and a tilt under one degree,
    all drawn from ``seed``.
    """
    layout = layout or spec.layout
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    rng = random.Random(seed)
    background, ink = rng.randint(232, 250), rng.randint(10, 50)
    canvas = _Canvas(_WIDTHS[layout], font or spec.font, _FONT_SIZES[layout], ink)
    if layout == "invoice":
        _draw_invoice(spec, canvas)
    else:
        _draw_till(spec, canvas, layout)
    image = canvas.image(background)
    noise = np.random.default_rng(seed).normal(0.0, 6.0, (image.height, image.width))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "L")
    if rotate:
        angle = rng.uniform(-1.0, 1.0)
        image = image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=background)
    return image.convert("RGB")


# ---------------------------------------------------------------------------
# Reading them back
# ---------------------------------------------------------------------------


def read_receipt(image: Image.Image, config: AppConfig) -> DocumentResult:
    """``image`` through the app's OCR pipeline with the profile's default engine and
    the receipt template, as the OCR page reads an upload (no cache)."""
    settings = OcrSettings(engine=config.ocr.engine, template="receipt")
    return ocr_file(encode(image), "receipt.png", settings, config)


# ---------------------------------------------------------------------------
# Varied specs
# ---------------------------------------------------------------------------

_NAMES = (
    "SIN HUP", "KIM SENG", "LEONG HENG", "TAN BROTHERS", "CHUAN WAH", "MAJU JAYA",
    "SRI MURNI", "BERKAT", "SEGAR", "GOLDEN LEAF", "LUCKY STAR", "EVERGREEN",
    "SUNRISE", "MUTIARA", "PERDANA", "HARMONI", "CAHAYA", "AH HOCK", "YEW CHUAN",
    "TIAN SHENG", "BINTANG", "MAWAR", "KENANGA", "PELANGI", "DELIMA", "HOCK LEE",
    "NEW ERA", "GREEN VALLEY", "SOON FATT", "KWONG ONN",
)  # fmt: skip
_MY_COMPANIES = (
    "{n} TRADING SDN BHD", "{n} ENTERPRISE", "RESTORAN {n}", "{n} (M) SDN. BHD.",
    "{n} HARDWARE SDN BHD", "KEDAI RUNCIT {n}", "{n} STATIONERY & BOOKS", "{n} CAFE",
    "{n} SDN.BHD", "{n} BAKERY S/B", "{n} MINI MARKET", "{n} TRADING",
    "SYARIKAT {n}", "{n} PHARMACY SDN BHD", "{n} SEAFOOD RESTAURANT",
)  # fmt: skip
_SG_COMPANIES = ("{n} PTE LTD", "{n} TRADING PTE. LTD.", "{n} CAFE PTE LTD", "{n} ENTERPRISE")
_STREET_NAMES = (
    "MERANTI", "BESAR", "PASAR", "PERDANA", "DEDAP", "TAMPOI", "KENARI", "BUNGA RAYA",
    "SULTAN ISMAIL", "AMPANG", "KLANG LAMA", "IPOH", "SETIA", "PUTERI", "INDAH",
)  # fmt: skip
_AREAS = (
    "TAMAN {s}", "TMN {s} JAYA", "BANDAR BARU {s}", "KAWASAN PERINDUSTRIAN {s}",
    "SEKSYEN 13", "KAMPUNG {s}", "PUSAT BANDAR {s}",
)  # fmt: skip
_CITIES = (
    ("47100", "PUCHONG", "SELANGOR"), ("81100", "JOHOR BAHRU", "JOHOR"),
    ("50300", "KUALA LUMPUR", "WILAYAH PERSEKUTUAN"),
    ("40170", "SHAH ALAM", "SELANGOR DARUL EHSAN"),
    ("43650", "BANDAR BARU BANGI", "SELANGOR"), ("31400", "IPOH", "PERAK"),
    ("10200", "GEORGE TOWN", "PULAU PINANG"), ("75200", "MELAKA", "MELAKA"),
    ("88000", "KOTA KINABALU", "SABAH"), ("70200", "SEREMBAN", "NEGERI SEMBILAN"),
)  # fmt: skip
_SG_STREETS = (
    "RAFFLES PLACE", "ANG MO KIO AVE 3", "TAMPINES CENTRAL 1", "ORCHARD ROAD",
    "JURONG WEST STREET 42", "TOA PAYOH LORONG 1", "CECIL STREET",
)  # fmt: skip
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DATE_LINES = (
    "DATE: {date}", "DATE : {date}", "DATE {date}", "TARIKH: {date}", "{date} 13:45:10",
    "DATE: {date}\tTIME: 18:24", "DATE/TIME: {date} 09:12", "{date}\t20:31",
)  # fmt: skip
_TOTAL_LABELS = (
    "TOTAL", "GRAND TOTAL", "TOTAL AMOUNT", "NETT TOTAL", "AMOUNT DUE", "JUMLAH",
    "TOTAL (RM)", "TOTAL INCL. GST", "TOTAL:", "ROUNDED TOTAL",
)  # fmt: skip
_ITEMS = (
    ("NASI LEMAK", 4.50), ("TEH TARIK", 2.20), ("KOPI O", 1.80), ("ROTI CANAI", 1.50),
    ("MILO AIS", 3.00), ("A4 PAPER 80GSM", 12.90), ("PEN BLUE 0.5MM", 2.50),
    ("CABLE TIE 100PCS", 6.80), ("MINERAL WATER 1.5L", 2.10), ("CHICKEN RICE", 7.50),
    ("LATTE", 5.80), ("CROISSANT", 4.20), ("PAINT BRUSH 2IN", 6.50), ("RICE 5KG", 22.90),
    ("SUGAR 1KG", 2.85), ("MEE GORENG", 6.00), ("ICE LEMON TEA", 3.50), ("SCREW 8MM", 4.00),
)  # fmt: skip
_CASHIERS = ("AMIRAH", "JOHN", "SITI", "ALEX", "MEI LING", "RAJ")


def _company(rng: random.Random, singapore: bool) -> str:
    shape = rng.choice(_SG_COMPANIES if singapore else _MY_COMPANIES)
    return shape.format(n=rng.choice(_NAMES))


def _my_address(rng: random.Random) -> tuple[str, ...]:
    number = rng.choice(
        [f"NO. {rng.randint(1, 99)}", f"NO {rng.randint(1, 99)}-{rng.randint(1, 3)}",
         f"LOT {rng.randint(100, 9999)}", f"{rng.randint(1, 99)}A", f"{rng.randint(1, 199)}"]
    )  # fmt: skip
    street_name = rng.choice(_STREET_NAMES)
    street = rng.choice(
        [f"JALAN {street_name} {rng.randint(1, 9)}", f"JLN {street_name} {rng.randint(1, 9)}/2",
         f"LORONG {street_name} {rng.randint(1, 5)}", f"JALAN {street_name}"]
    )  # fmt: skip
    area = rng.choice(_AREAS).format(s=rng.choice(_STREET_NAMES))
    postcode, city, state = rng.choice(_CITIES)
    shape = rng.randrange(6)
    if shape == 0:
        return (f"{number}, {street}", f"{postcode} {city}, {state}")
    if shape == 1:
        return (f"{number}, {street},", area, f"{postcode} {city}")
    if shape == 2:
        return (f"{number}, {street}", f"{postcode} {city}", state)
    if shape == 3:
        return (f"{number},", street, area, f"{postcode} {city}, {state}")
    if shape == 4:
        return (f"{number} {street}", area, f"{postcode} {city}", state)
    return (f"{number}, {street}", f"{area} {postcode}", city, state)  # the city below the postcode


def _sg_address(rng: random.Random) -> tuple[str, ...]:
    unit = f"#{rng.randint(1, 15):02d}-{rng.randint(1, 120):02d}"
    street = rng.choice(_SG_STREETS)
    postcode = f"SINGAPORE {rng.randint(10000, 829999):06d}"
    if rng.random() < 0.5:
        return (f"{rng.randint(1, 300)} {street} {unit}", postcode)
    return (f"BLK {rng.randint(100, 999)} {street}", f"{unit} {rng.choice(_NAMES)} MALL", postcode)


def _date(rng: random.Random) -> str:
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2016, 2019)
    return rng.choice(
        [f"{day:02d}/{month:02d}/{year}", f"{day:02d}-{month:02d}-{year}",
         f"{year}-{month:02d}-{day:02d}", f"{day:02d} {_MONTHS[month - 1]} {year}",
         f"{day:02d}.{month:02d}.{year % 100:02d}"]
    )  # fmt: skip


def _money(value: float) -> str:
    return f"{value:.2f}"


def _amounts(rng: random.Random, singapore: bool) -> tuple[tuple[Pair, ...], list[Pair], float]:
    """Items, the rows between them and the total, and the total."""
    chosen = rng.sample(_ITEMS, rng.randint(2, 5))
    items = tuple((name, _money(price)) for name, price in chosen)
    subtotal = round(sum(price for _, price in chosen), 2)
    rows: list[Pair] = []
    if rng.random() < 0.6:
        rows.append((rng.choice(["SUBTOTAL", "SUB TOTAL", "TOTAL EXCL. GST"]), _money(subtotal)))
    rate = 0.07 if singapore else 0.06
    tax = round(subtotal * rate, 2) if rng.random() < 0.5 else 0.0
    if tax:
        rows.append((f"GST {round(rate * 100)}%", _money(tax)))
    gross = round(subtotal + tax, 2)
    total = gross if singapore else round(round(gross * 20) / 20, 2)  # MY: to 5 sen
    if not singapore and rng.random() < 0.6:
        rows.append(("ROUNDING", _money(total - gross + 0.0) if total != gross else "0.00"))
    if rng.random() < 0.4:
        rows.insert(0, ("TOTAL QTY:", str(len(items))))
    return items, rows, total


def _payments(rng: random.Random, total: float) -> tuple[Pair, ...]:
    if rng.random() < 0.3:
        return ((rng.choice(["VISA", "MASTER", "DEBIT CARD"]), _money(total)),)
    paid = float(max(10, (int(total) // 10 + 1) * 10))
    cash, change = ("TUNAI", "BAKI") if rng.random() < 0.2 else ("CASH", "CHANGE")
    return ((cash, _money(paid)), (change, _money(paid - total)))


def _side_lines(rng: random.Random, singapore: bool) -> tuple[str, ...]:
    phone = f"TEL: 0{rng.randint(3, 9)}-{rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
    tax_id = (
        f"GST REG NO: M{rng.randint(1, 9)}-{rng.randint(1000000, 9999999)}-{rng.randint(0, 9)}"
        if singapore
        else rng.choice(
            [f"GST ID: {rng.randint(10**11, 10**12 - 1):012d}",
             f"(GST REG. NO : {rng.randint(10**11, 10**12 - 1):012d})",
             f"SST ID: W10-{rng.randint(1000, 9999)}-{rng.randint(10**7, 10**8 - 1)}"]
        )
    )  # fmt: skip
    lines = [phone, tax_id] if rng.random() < 0.7 else [tax_id]
    return tuple(lines if rng.random() < 0.8 else lines[::-1])


def varied_spec(rng: random.Random, layout: str, font: str) -> ReceiptSpec:
    """One receipt drawn from ``rng``."""
    singapore = rng.random() < 0.2
    items, subtotals, total = _amounts(rng, singapore)
    date_line = rng.choice(_DATE_LINES)
    return ReceiptSpec(
        company=_company(rng, singapore),
        address=_sg_address(rng) if singapore else _my_address(rng),
        date=_date(rng),
        items=items,
        total=_money(total),
        total_label=rng.choice(_TOTAL_LABELS[:5] if singapore else _TOTAL_LABELS),
        currency=rng.choice(["", "", "$" if singapore else "RM"]),
        registration=(
            f"({rng.randint(10**5, 10**9)}-{rng.choice('AHKMPTUVWX')})"
            if not singapore and rng.random() < 0.5
            else ""
        ),
        header=_side_lines(rng, singapore),
        title=rng.choice(["", "TAX INVOICE", "SIMPLIFIED TAX INVOICE", "RECEIPT", "CASH BILL"]),
        date_line=date_line,
        date_at_end=rng.random() < 0.2,
        before_items=tuple(
            rng.sample(
                [f"CASHIER: {rng.choice(_CASHIERS)}", f"RECEIPT NO: CS{rng.randint(10**7, 10**8)}",
                 f"TABLE {rng.randint(1, 30)}", f"INV NO: {rng.randint(1000, 999999)}"],
                rng.randint(0, 2),
            )
        ),  # fmt: skip
        subtotals=tuple(subtotals),
        payments=_payments(rng, total),
        footer=tuple(rng.sample(["THANK YOU", "PLEASE COME AGAIN", "TERIMA KASIH",
                                 "GOODS SOLD ARE NOT RETURNABLE"], rng.randint(0, 2))),
        layout=layout,
        font=font,
    )  # fmt: skip


def varied_specs(seed: int = 0, n: int = 40) -> list[ReceiptSpec]:
    """``n`` receipts drawn from ``seed``; layouts and fonts taken in turn, so every
    layout meets every font over ``len(LAYOUTS) * len(FONT_NAMES)`` receipts."""
    rng = random.Random(seed)
    fonts = FONT_NAMES
    return [
        varied_spec(rng, LAYOUTS[i % len(LAYOUTS)], fonts[(i // len(LAYOUTS) + i) % len(fonts)])
        for i in range(n)
    ]
