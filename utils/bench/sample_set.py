"""The built-in labelled sample set: synthetic receipts and invoices drawn with PIL.

Every document is declared below as rows of text cells plus its ground-truth
fields. Rendering uses only Pillow's bundled font (``ImageFont.load_default``)
and a seeded ``random.Random``, so the same code and the same Pillow build give
byte-identical PNGs on every machine, hence a stable dataset content hash.

``write_sample_set`` saves each document in the *pairs* layout: ``ID.png``, ``ID.txt``
(the printed lines in reading order, the cells of a row joined by one space) and
``ID.json`` (the fields exactly as printed). A hidden stamp file records which
generator and Pillow wrote the folder and the sha256 of every file, so
``sample_set_is_current`` can tell when the folder must be written again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from models.ocr.base import OcrLine
from utils.errors import StorageError

STAMP_NAME = ".sample-set-stamp.json"
"""Hidden (so dataset loading ignores it); lists the generator, Pillow and file hashes."""

SEED = 20240607
MARGIN = 28
LINE_SPACING = 1.55
"""Row pitch as a multiple of the font size: room between lines, as on real receipts."""

Align = Literal["left", "right", "center"]


# ---------------------------------------------------------------------------
# Document declarations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """Text drawn on a row: ``x`` is a fraction of the printable width where it is anchored."""

    text: str
    x: float = 0.0
    align: Align = "left"


@dataclass(frozen=True)
class Row:
    """One printed row; ``rule`` draws a separator line instead of text."""

    cells: tuple[Cell, ...] = ()
    size: int = 0  # 0: the document's body size
    rule: bool = False
    gap: float = 0.0  # extra space above, in rows


@dataclass(frozen=True)
class Look:
    """How the page is printed and degraded."""

    width: int = 600
    body_size: int = 19
    ink: int = 20
    paper: int = 255
    rotate_degrees: float = 0.0
    noise: float = 0.0  # share of pixels flipped to salt or pepper
    blur: float = 0.0  # Gaussian radius in pixels


@dataclass(frozen=True)
class SampleDocument:
    item_id: str
    template: Literal["receipt", "invoice"]
    rows: tuple[Row, ...]
    fields: dict[str, str]
    look: Look = field(default_factory=Look)


def _left(text: str, size: int = 0, gap: float = 0.0) -> Row:
    return Row((Cell(text),), size=size, gap=gap)


def _center(text: str, size: int = 0, gap: float = 0.0) -> Row:
    return Row((Cell(text, 0.5, "center"),), size=size, gap=gap)


def _pair(label: str, value: str, gap: float = 0.0) -> Row:
    """A label on the left and a right-aligned value (amounts, times)."""
    return Row((Cell(label), Cell(value, 1.0, "right")), gap=gap)


def _columns(*cells: tuple[str, float, Align], gap: float = 0.0) -> Row:
    return Row(tuple(Cell(text, x, align) for text, x, align in cells), gap=gap)


RULE = Row(rule=True)


def _receipt(
    item_id: str,
    header: list[str],
    meta: list[Row],
    items: list[tuple[str, str]],
    totals: list[tuple[str, str]],
    footer: str,
    fields: dict[str, str],
    look: Look | None = None,
) -> SampleDocument:
    """A till receipt: centred header, meta rows, item lines, totals, a thank-you line."""
    look = look or Look()
    rows = [_center(header[0], size=look.body_size + 3)]
    rows += [_center(text) for text in header[1:]]
    rows += [RULE, *meta, RULE]
    rows += [_pair(name, amount) for name, amount in items]
    rows += [RULE, *(_pair(label, amount) for label, amount in totals), RULE]
    rows.append(_center(footer, gap=0.5))
    return SampleDocument(item_id, "receipt", tuple(rows), fields, look)


_INVOICE_COLUMNS: tuple[tuple[float, Align], ...] = (
    (0.0, "left"),
    (0.62, "right"),
    (0.8, "right"),
    (1.0, "right"),
)


def _invoice(
    item_id: str,
    seller: list[str],
    head: list[Row],
    lines: list[tuple[str, str, str, str]],
    totals: list[tuple[str, str]],
    fields: dict[str, str],
    look: Look | None = None,
) -> SampleDocument:
    """A business invoice: seller block, invoice/buyer block, item table, totals, terms."""
    look = look or Look(width=860, body_size=18)
    rows = [_left(seller[0], size=look.body_size + 5)]
    rows += [_left(text) for text in seller[1:]]
    rows += head
    header = ("DESCRIPTION", "QTY", "UNIT PRICE", "AMOUNT")
    rows.append(RULE)
    for values in (header, *lines):
        cells = [
            (text, x, align) for text, (x, align) in zip(values, _INVOICE_COLUMNS, strict=True)
        ]
        rows.append(_columns(*cells))
    rows.append(RULE)
    rows += [_columns((label, 0.8, "right"), (amount, 1.0, "right")) for label, amount in totals]
    rows.append(_left("PAYMENT TERMS: 30 DAYS. THANK YOU FOR YOUR BUSINESS.", gap=1.0))
    return SampleDocument(item_id, "invoice", tuple(rows), fields, look)


def _receipts() -> list[SampleDocument]:
    return [
        _receipt(
            "receipt-01",
            [
                "SUNRISE BAKERY SDN BHD",
                "(1023456-K)",
                "NO 12, JALAN SS 15/4,",
                "47500 SUBANG JAYA,",
                "SELANGOR.",
                "TEL: 03-5633 1020",
            ],
            [_left("RECEIPT NO: CS00012841"), _pair("DATE: 12/03/2024", "TIME: 09:41")],
            [
                ("2 BUTTER CROISSANT", "7.80"),
                ("1 CHICKEN PIE", "5.50"),
                ("1 KAYA BUN", "2.20"),
                ("2 ICED COFFEE", "9.00"),
            ],
            [
                ("SUBTOTAL", "24.50"),
                ("SST 6%", "1.47"),
                ("ROUNDING", "-0.02"),
                ("TOTAL", "25.95"),
                ("CASH", "50.00"),
                ("CHANGE", "24.05"),
            ],
            "THANK YOU, PLEASE COME AGAIN",
            {
                "company": "SUNRISE BAKERY SDN BHD",
                "date": "12/03/2024",
                "address": "NO 12, JALAN SS 15/4, 47500 SUBANG JAYA, SELANGOR.",
                "total": "25.95",
            },
        ),
        _receipt(
            "receipt-02",
            [
                "RESTORAN SERI MELAKA",
                "(JM0581734-U)",
                "LOT 8, JALAN BUNGA RAYA,",
                "75100 MELAKA.",
                "TEL: 06-282 4411",
            ],
            [_left("BILL NO: 000473"), _pair("DATE: 05-01-2024", "20:15"), _left("TABLE: 7")],
            [
                ("1 NASI LEMAK AYAM", "12.90"),
                ("1 MEE GORENG MAMAK", "9.50"),
                ("2 TEH TARIK", "5.60"),
                ("1 ROTI CANAI", "1.80"),
            ],
            [
                ("SUB TOTAL", "29.80"),
                ("SERVICE CHARGE 10%", "2.98"),
                ("GRAND TOTAL", "32.78"),
                ("CASH", "40.00"),
                ("CHANGE", "7.22"),
            ],
            "TERIMA KASIH, SILA DATANG LAGI",
            {
                "company": "RESTORAN SERI MELAKA",
                "date": "05-01-2024",
                "address": "LOT 8, JALAN BUNGA RAYA, 75100 MELAKA.",
                "total": "32.78",
            },
            Look(width=560, rotate_degrees=1.5),
        ),
        _receipt(
            "receipt-03",
            [
                "KL HARDWARE TRADING",
                "(CO. NO: 002215874-W)",
                "NO 45, JALAN IPOH,",
                "51200 KUALA LUMPUR.",
                "TEL: 03-4042 7788",
            ],
            [
                _left("INVOICE NO: KH-118230"),
                _pair("DATE: 23/02/2024", "11:02 AM"),
                _left("CASHIER: AMIR"),
            ],
            [
                ("1 HAMMER 16OZ", "18.90"),
                ("2 PVC PIPE 1/2IN", "13.00"),
                ("1 WOOD SCREW BOX", "6.50"),
                ("3 SANDPAPER P120", "4.50"),
            ],
            [("TOTAL", "42.90"), ("CASH", "50.00"), ("CHANGE", "7.10")],
            "GOODS SOLD ARE NOT RETURNABLE",
            {
                "company": "KL HARDWARE TRADING",
                "date": "23/02/2024",
                "address": "NO 45, JALAN IPOH, 51200 KUALA LUMPUR.",
                "total": "42.90",
            },
            Look(width=580, noise=0.012),
        ),
        _receipt(
            "receipt-04",
            [
                "GREEN LEAF PHARMACY",
                "(SA0098812-D)",
                "12, JALAN TUN ABDUL RAZAK,",
                "80000 JOHOR BAHRU,",
                "JOHOR.",
                "TEL: 07-223 9090",
            ],
            [_left("RECEIPT: 2024/0311/087"), _pair("DATE: 11 MAR 2024", "16:48")],
            [
                ("1 PANADOL ACTIFAST 20S", "11.90"),
                ("1 VITAMIN C 500MG", "24.50"),
                ("2 FACE MASK 10S", "10.00"),
            ],
            [("TOTAL AMOUNT", "46.40"), ("VISA", "46.40")],
            "GET WELL SOON",
            {
                "company": "GREEN LEAF PHARMACY",
                "date": "11 MAR 2024",
                "address": "12, JALAN TUN ABDUL RAZAK, 80000 JOHOR BAHRU, JOHOR.",
                "total": "46.40",
            },
        ),
        _receipt(
            "receipt-05",
            [
                "MAJU MART ENTERPRISE",
                "(002776351-P)",
                "NO 3, TAMAN SRI GOMBAK,",
                "68100 BATU CAVES,",
                "SELANGOR.",
                "TEL: 03-6185 3321",
            ],
            [_left("DOC NO: MM-55012"), _pair("DATE: 29/02/2024", "18:22")],
            [
                ("1 BERAS SUPER 5KG", "17.90"),
                ("2 MILO 1KG", "39.80"),
                ("1 GARDENIA BREAD", "3.90"),
                ("6 EGG GRADE A", "3.60"),
                ("1 COOKING OIL 2KG", "12.50"),
            ],
            [
                ("SUBTOTAL", "77.70"),
                ("DISCOUNT", "-2.70"),
                ("NETT TOTAL", "75.00"),
                ("CASH", "100.00"),
                ("CHANGE", "25.00"),
            ],
            "THANK YOU FOR SHOPPING WITH US",
            {
                "company": "MAJU MART ENTERPRISE",
                "date": "29/02/2024",
                "address": "NO 3, TAMAN SRI GOMBAK, 68100 BATU CAVES, SELANGOR.",
                "total": "75.00",
            },
            Look(width=600, rotate_degrees=-2.5, noise=0.006, blur=0.6),
        ),
        _receipt(
            "receipt-06",
            [
                "KEDAI RUNCIT AH SENG",
                "(NS0042317-T)",
                "NO 7, JALAN DATO BANDAR TUNGGAL,",
                "70000 SEREMBAN,",
                "NEGERI SEMBILAN.",
                "TEL: 06-762 1188",
            ],
            [_left("RECEIPT NO: 108822"), _pair("DATE: 02/04/2024", "07:55")],
            [("1 SUGAR 1KG", "2.85"), ("2 SARDINE CAN", "9.00"), ("1 CONDENSED MILK", "3.70")],
            [("TOTAL", "15.55"), ("CASH", "20.00"), ("CHANGE", "4.45")],
            "THANK YOU",
            {
                "company": "KEDAI RUNCIT AH SENG",
                "date": "02/04/2024",
                "address": "NO 7, JALAN DATO BANDAR TUNGGAL, 70000 SEREMBAN, NEGERI SEMBILAN.",
                "total": "15.55",
            },
            Look(width=620, blur=0.9),
        ),
        _receipt(
            "receipt-07",
            [
                "PIZZA CORNER CAFE",
                "(PG0332190-A)",
                "NO 88, LEBUH PANTAI,",
                "10300 GEORGETOWN,",
                "PULAU PINANG.",
                "TEL: 04-261 5050",
            ],
            [_left("ORDER NO: 0315"), _pair("DATE: 15/03/2024", "13:30")],
            [
                ("1 PEPPERONI PIZZA L", "32.00"),
                ("1 GARLIC BREAD", "8.50"),
                ("2 LEMON ICED TEA", "11.00"),
            ],
            [("SUBTOTAL", "51.50"), ("SST 6%", "3.09"), ("TOTAL", "54.60"), ("CARD", "54.60")],
            "FOLLOW US FOR WEEKLY DEALS",
            {
                "company": "PIZZA CORNER CAFE",
                "date": "15/03/2024",
                "address": "NO 88, LEBUH PANTAI, 10300 GEORGETOWN, PULAU PINANG.",
                "total": "54.60",
            },
            Look(width=600, rotate_degrees=1.0),
        ),
    ]


def _invoices() -> list[SampleDocument]:
    return [
        _invoice(
            "invoice-01",
            [
                "NORTHWIND TRADING SDN BHD",
                "LOT 21, JALAN PERUSAHAAN 2,",
                "43300 SERI KEMBANGAN, SELANGOR",
                "TEL: 03-8945 2210",
            ],
            [
                _center("TAX INVOICE", size=24, gap=0.5),
                _left("INVOICE NO: INV-2024-0042", gap=0.5),
                _left("DATE: 05/02/2024"),
                _left("BILL TO: GREENLEAF CAFE SDN BHD"),
                _left("DUE DATE: 06/03/2024"),
            ],
            [
                ("A4 PAPER 80GSM BOX", "3", "45.00", "135.00"),
                ("TONER CARTRIDGE 85A", "2", "210.00", "420.00"),
                ("FILING CABINET 4 DRAWER", "1", "395.00", "395.00"),
            ],
            [("SUBTOTAL", "950.00"), ("SST 6%", "57.00"), ("TOTAL", "1,007.00")],
            {
                "number": "INV-2024-0042",
                "date": "05/02/2024",
                "seller": "NORTHWIND TRADING SDN BHD",
                "buyer": "GREENLEAF CAFE SDN BHD",
                "subtotal": "950.00",
                "tax": "57.00",
                "total": "1,007.00",
            },
        ),
        _invoice(
            "invoice-02",
            ["BLUE OCEAN SUPPLIES LTD", "14 HARBOUR ROAD,", "WAN CHAI 99077", "TEL: 2511 7300"],
            [
                _center("INVOICE", size=24, gap=0.5),
                _left("INVOICE NUMBER: BO/7731", gap=0.5),
                _left("INVOICE DATE: 18/01/2024"),
                _left("BILL TO:"),
                _left("HARBOUR VIEW HOTEL LIMITED"),
                _left("88 GLOUCESTER ROAD"),
            ],
            [
                ("BATH TOWEL WHITE", "40", "6.50", "260.00"),
                ("HAND SOAP 500ML", "24", "3.25", "78.00"),
                ("LAUNDRY BAG", "60", "1.20", "72.00"),
            ],
            [("SUBTOTAL", "410.00"), ("TAX 5%", "20.50"), ("TOTAL DUE", "430.50")],
            {
                "number": "BO/7731",
                "date": "18/01/2024",
                "seller": "BLUE OCEAN SUPPLIES LTD",
                "buyer": "HARBOUR VIEW HOTEL LIMITED",
                "subtotal": "410.00",
                "tax": "20.50",
                "total": "430.50",
            },
            Look(width=860, body_size=18, rotate_degrees=-1.2),
        ),
        _invoice(
            "invoice-03",
            [
                "ORCHID PRINTING ENTERPRISE",
                "NO 9, JALAN KLANG LAMA,",
                "58000 KUALA LUMPUR",
                "TEL: 03-7981 6600",
            ],
            [
                _center("TAX INVOICE", size=24, gap=0.5),
                _left("INV NO: OP-88310", gap=0.5),
                _left("DATE: 27/03/2024"),
                _left("CUSTOMER: SRI AMAN TUITION CENTRE"),
            ],
            [
                ("BUSINESS CARDS 300GSM", "500", "0.18", "90.00"),
                ("A5 FLYERS FULL COLOUR", "2000", "0.09", "180.00"),
                ("ROLL UP BANNER", "2", "85.00", "170.00"),
            ],
            [("SUBTOTAL", "440.00"), ("SST 8%", "35.20"), ("TOTAL", "475.20")],
            {
                "number": "OP-88310",
                "date": "27/03/2024",
                "seller": "ORCHID PRINTING ENTERPRISE",
                "buyer": "SRI AMAN TUITION CENTRE",
                "subtotal": "440.00",
                "tax": "35.20",
                "total": "475.20",
            },
            Look(width=820, body_size=18, blur=0.8),
        ),
        _invoice(
            "invoice-04",
            [
                "ATLAS MACHINERY CORPORATION",
                "220 INDUSTRIAL AVENUE,",
                "SPRINGFIELD 62704",
                "TEL: 217-555-0143",
            ],
            [
                _center("INVOICE", size=24, gap=0.5),
                _left("INVOICE NO: AM-2024-118", gap=0.5),
                _left("DATE: 03/04/2024"),
                _left("SOLD TO: RIVERSIDE FARMS INC"),
            ],
            [
                ("HYDRAULIC PUMP HP-40", "1", "1,250.00", "1,250.00"),
                ("FILTER KIT FK-2", "4", "37.50", "150.00"),
                ("SERVICE LABOUR HOURS", "3", "80.00", "240.00"),
            ],
            [("SUBTOTAL", "1,640.00"), ("SALES TAX", "102.50"), ("AMOUNT DUE", "1,742.50")],
            {
                "number": "AM-2024-118",
                "date": "03/04/2024",
                "seller": "ATLAS MACHINERY CORPORATION",
                "buyer": "RIVERSIDE FARMS INC",
                "subtotal": "1,640.00",
                "tax": "102.50",
                "total": "1,742.50",
            },
            Look(width=860, body_size=18, ink=105, paper=215),
        ),
        _invoice(
            "invoice-05",
            [
                "MERIDIAN OFFICE SOLUTIONS PTE LTD",
                "3 SCIENCE PARK DRIVE, #02-15",
                "SINGAPORE 118223",
                "TEL: 6778 2040",
            ],
            [
                _center("TAX INVOICE", size=24, gap=0.5),
                _left("INVOICE #: MOS24-0907", gap=0.5),
                _left("DATE: 09/04/2024"),
                _left("BILL TO: CORAL BAY DENTAL PTE LTD"),
            ],
            [
                ("ERGONOMIC CHAIR", "2", "289.00", "578.00"),
                ("DESK LAMP LED", "2", "45.00", "90.00"),
            ],
            [("SUBTOTAL", "668.00"), ("GST 9%", "60.12"), ("TOTAL", "728.12")],
            {
                "number": "MOS24-0907",
                "date": "09/04/2024",
                "seller": "MERIDIAN OFFICE SOLUTIONS PTE LTD",
                "buyer": "CORAL BAY DENTAL PTE LTD",
                "subtotal": "668.00",
                "tax": "60.12",
                "total": "728.12",
            },
            Look(width=860, body_size=18, rotate_degrees=2.0, noise=0.008),
        ),
    ]


@lru_cache(maxsize=1)
def sample_documents() -> tuple[SampleDocument, ...]:
    """Every document of the built-in set, receipts then invoices."""
    return tuple(_receipts() + _invoices())


def sample_templates() -> dict[str, str]:
    """Item id -> the template ("receipt" / "invoice") its fields belong to."""
    return {doc.item_id: doc.template for doc in sample_documents()}


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedSample:
    """One drawn document: the image, its text rows with boxes (before any rotation)."""

    document: SampleDocument
    image: Image.Image
    lines: list[OcrLine]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # The font bundled inside Pillow: same glyphs everywhere, no system fonts needed.
    return ImageFont.load_default(size=size)


def _row_pitch(row: Row, look: Look) -> int:
    return round((row.size or look.body_size) * LINE_SPACING)


def _page_height(doc: SampleDocument) -> int:
    body = sum(_row_pitch(row, doc.look) + row.gap * _row_pitch(row, doc.look) for row in doc.rows)
    return round(2 * MARGIN + body)


def _cell_anchor(cell: Cell) -> str:
    return {"left": "la", "right": "ra", "center": "ma"}[cell.align]


def _draw_row(draw: ImageDraw.ImageDraw, row: Row, top: int, look: Look) -> OcrLine | None:
    """Draw one row at ``top``; returns the row as a ground-truth line (None for a rule)."""
    pitch = _row_pitch(row, look)
    printable = look.width - 2 * MARGIN
    if row.rule:
        middle = top + pitch // 2
        draw.line([(MARGIN, middle), (look.width - MARGIN, middle)], fill=look.ink, width=1)
        return None
    font = _font(row.size or look.body_size)
    drawn = []
    for cell in row.cells:
        position = (MARGIN + cell.x * printable, top)
        anchor = _cell_anchor(cell)
        draw.text(position, cell.text, fill=look.ink, font=font, anchor=anchor)
        drawn.append((draw.textbbox(position, cell.text, font=font, anchor=anchor), cell.text))
    boxes = [box for box, _ in drawn]
    # Reading order within the row: cells left to right by where their ink starts.
    text = " ".join(cell_text for _, cell_text in sorted(drawn, key=lambda pair: pair[0][0]))
    box = (
        round(min(b[0] for b in boxes)),
        round(min(b[1] for b in boxes)),
        round(max(b[2] for b in boxes)),
        round(max(b[3] for b in boxes)),
    )
    return OcrLine(text=text, box=box, confidence=1.0)


def _degrade(image: Image.Image, look: Look, rng: random.Random) -> Image.Image:
    """Blur, then salt-and-pepper noise, then rotation: the order a scan would add them."""
    if look.blur:
        image = image.filter(ImageFilter.GaussianBlur(look.blur))
    if look.noise:
        image = _salt_and_pepper(image, look, rng)
    if look.rotate_degrees:
        image = image.rotate(
            look.rotate_degrees,
            resample=Image.Resampling.BICUBIC,
            expand=True,
            fillcolor=look.paper,
        )
    return image


def _salt_and_pepper(image: Image.Image, look: Look, rng: random.Random) -> Image.Image:
    """Flip ``look.noise`` of the pixels to ink or paper; random bytes from the seeded rng."""
    cutoff = round(look.noise * 256 / 2)
    noise = Image.frombytes("L", image.size, rng.randbytes(image.width * image.height))
    pepper = noise.point(lambda v: 255 if v < cutoff else 0)
    salt = noise.point(lambda v: 255 if v >= 256 - cutoff else 0)
    image = image.copy()
    image.paste(look.ink, mask=pepper)
    image.paste(look.paper, mask=salt)
    return image


def render_sample(doc: SampleDocument, seed: int = SEED) -> RenderedSample:
    """Draw one document; the noise depends only on ``seed`` and the item id."""
    look = doc.look
    image = Image.new("L", (look.width, _page_height(doc)), look.paper)
    draw = ImageDraw.Draw(image)
    lines: list[OcrLine] = []
    top = float(MARGIN)
    for row in doc.rows:
        top += row.gap * _row_pitch(row, look)
        line = _draw_row(draw, row, round(top), look)
        lines.extend([line] if line else [])
        top += _row_pitch(row, look)
    rng = random.Random(f"{seed}:{doc.item_id}")
    return RenderedSample(doc, _degrade(image, look, rng), lines)


def png_bytes(image: Image.Image) -> bytes:
    """PNG without metadata chunks (no timestamps), so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Writing the set
# ---------------------------------------------------------------------------


def sample_files() -> dict[str, bytes]:
    """File name -> bytes of the whole set (``ID.png``, ``ID.txt``, ``ID.json`` per item)."""
    files: dict[str, bytes] = {}
    for doc in sample_documents():
        rendered = render_sample(doc)
        files[f"{doc.item_id}.png"] = png_bytes(rendered.image)
        files[f"{doc.item_id}.txt"] = (rendered.text + "\n").encode("utf-8")
        files[f"{doc.item_id}.json"] = (json.dumps(doc.fields, indent=2) + "\n").encode("utf-8")
    return files


@lru_cache(maxsize=1)
def _files_to_write() -> tuple[tuple[str, bytes], ...]:
    """``sample_files`` rendered once per process (about a second of drawing)."""
    return tuple(sample_files().items())


def generator_fingerprint() -> str:
    """Changes whenever this module's source or the Pillow version changes."""
    source = Path(__file__).read_bytes()
    return hashlib.sha256(source + PIL.__version__.encode()).hexdigest()[:16]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_stamp(folder: Path) -> dict | None:
    try:
        stamp = json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _file_matches(path: Path, digest: object) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and _sha256(path.read_bytes()) == digest
    except OSError:
        return False


def sample_set_is_current(folder: Path) -> bool:
    """Whether ``folder`` holds exactly what this generator writes, untouched."""
    stamp = _read_stamp(folder)
    if stamp is None or stamp.get("generator") != generator_fingerprint():
        return False
    files = stamp.get("files")
    if not isinstance(files, dict) or len(files) != 3 * len(sample_documents()):
        return False
    return all(_file_matches(folder / name, digest) for name, digest in files.items())


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file + rename: a reader (or a second writer) never sees half a file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete files an older generator listed in its stamp that this one no longer writes."""
    old = (_read_stamp(folder) or {}).get("files")
    for name in old if isinstance(old, dict) else {}:
        path = folder / str(name)
        # Only plain names the stamp itself listed: never a path outside the folder.
        if name not in keep and Path(str(name)).name == name and path.is_file():
            path.unlink()


def write_sample_set(folder: Path) -> int:
    """Write the built-in set (pairs layout) into ``folder``; returns the number of items."""
    files = dict(_files_to_write())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder, set(files))
        for name, data in files.items():
            _write_atomically(folder / name, data)
        stamp = {
            "generator": generator_fingerprint(),
            "pillow": PIL.__version__,
            "files": {name: _sha256(data) for name, data in files.items()},
        }
        _write_atomically(folder / STAMP_NAME, (json.dumps(stamp, indent=2) + "\n").encode())
    except OSError as exc:
        raise StorageError(
            f"could not write the sample set into {folder}: {exc}",
            hint="Choose a folder you can write to.",
        ) from exc
    return len(sample_documents())
