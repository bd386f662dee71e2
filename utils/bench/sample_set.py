"""The built-in labelled sample set: synthetic receipts and invoices drawn with PIL.

The documents are described in ``sample_documents.json`` beside this module
(header / seller lines, rows, item lines, totals, fields and an optional
``look``), validated on load by the models below, which also lay them out as
rows of text cells. Rendering uses only Pillow's bundled font
(``ImageFont.load_default``) and a seeded ``random.Random``, so the same code,
data file and Pillow build give byte-identical PNGs on every machine, hence a
stable dataset content hash.

``write_sample_set`` saves each document in the *pairs* layout: ``ID.png``, ``ID.txt``
(the printed lines in reading order, the cells of a row joined by one space) and
``ID.json`` (the fields exactly as printed). A hidden stamp file records which
generator (this module and its data file) and Pillow wrote the folder and the
sha256 of every file, so ``sample_set_is_current`` can tell when to write it again.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.ocr.base import OcrLine
from utils.errors import ConfigError, StorageError
from utils.storage import atomic_write_bytes

DOCUMENTS_PATH = Path(__file__).with_name("sample_documents.json")
STAMP_NAME = ".sample-set-stamp.json"
"""Hidden (so dataset loading ignores it); lists the generator, Pillow and file hashes."""

ITEM_ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
"""Item ids become file names: plain lower-case names only."""
SEED = 20240607
MARGIN = 28
LINE_SPACING = 1.55
"""Row pitch as a multiple of the font size: room between lines, as on real receipts."""

Align = Literal["left", "right", "center"]


# ---------------------------------------------------------------------------
# Document declarations (the data file) and their layout
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


RULE = Row(rule=True)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Look(_Spec):
    """How the page is printed and degraded."""

    width: int = Field(600, ge=200)
    body_size: int = Field(19, ge=6)
    ink: int = Field(20, ge=0, le=255)
    paper: int = Field(255, ge=0, le=255)
    rotate_degrees: float = 0.0
    noise: float = Field(0.0, ge=0.0, le=1.0)  # share of pixels flipped to salt or pepper
    blur: float = Field(0.0, ge=0.0)  # Gaussian radius in pixels


@dataclass(frozen=True)
class SampleDocument:
    item_id: str
    template: Literal["receipt", "invoice"]
    rows: tuple[Row, ...]
    fields: dict[str, str]
    look: Look


class RowSpec(_Spec):
    """A text row of the data file: exactly one of ``left``, ``center`` or ``pair``."""

    left: str | None = None
    center: str | None = None
    pair: tuple[str, str] | None = Field(None, description="label left, value right-aligned")
    size: int = Field(0, ge=0, description="font size; 0: the document's body size")
    gap: float = Field(0.0, ge=0.0, description="extra space above, in rows")

    @model_validator(mode="after")
    def _one_kind(self) -> RowSpec:
        if sum(kind is not None for kind in (self.left, self.center, self.pair)) != 1:
            raise ValueError("a row needs exactly one of left, center, pair")
        return self

    def row(self) -> Row:
        if self.left is not None:
            return _left(self.left, self.size, self.gap)
        if self.center is not None:
            return _center(self.center, self.size, self.gap)
        assert self.pair is not None  # guaranteed by _one_kind
        return _pair(*self.pair, size=self.size, gap=self.gap)


def _left(text: str, size: int = 0, gap: float = 0.0) -> Row:
    return Row((Cell(text),), size=size, gap=gap)


def _center(text: str, size: int = 0, gap: float = 0.0) -> Row:
    return Row((Cell(text, 0.5, "center"),), size=size, gap=gap)


def _pair(label: str, value: str, size: int = 0, gap: float = 0.0) -> Row:
    """A label on the left and a right-aligned value (amounts, times)."""
    return Row((Cell(label), Cell(value, 1.0, "right")), size=size, gap=gap)


class ReceiptSpec(_Spec):
    """A till receipt: centred header, meta rows, item lines, totals, a thank-you line."""

    template: Literal["receipt"]
    item_id: str = Field(pattern=ITEM_ID_PATTERN)
    header: list[str] = Field(min_length=1, description="the first line is the shop, larger")
    meta: list[RowSpec]
    items: list[tuple[str, str]]
    totals: list[tuple[str, str]]
    footer: str
    fields: dict[str, str]
    look: Look = Look()

    def document(self) -> SampleDocument:
        look = self.look
        rows = [_center(self.header[0], size=look.body_size + 3)]
        rows += [_center(text) for text in self.header[1:]]
        rows += [RULE, *(spec.row() for spec in self.meta), RULE]
        rows += [_pair(name, amount) for name, amount in self.items]
        rows += [RULE, *(_pair(label, amount) for label, amount in self.totals), RULE]
        rows.append(_center(self.footer, gap=0.5))
        return SampleDocument(self.item_id, "receipt", tuple(rows), self.fields, look)


_INVOICE_HEADER = ("DESCRIPTION", "QTY", "UNIT PRICE", "AMOUNT")
_INVOICE_COLUMNS: tuple[tuple[float, Align], ...] = (
    (0.0, "left"),
    (0.62, "right"),
    (0.8, "right"),
    (1.0, "right"),
)
_INVOICE_TERMS = "PAYMENT TERMS: 30 DAYS. THANK YOU FOR YOUR BUSINESS."


class InvoiceSpec(_Spec):
    """A business invoice: seller block, invoice/buyer block, item table, totals, terms."""

    template: Literal["invoice"]
    item_id: str = Field(pattern=ITEM_ID_PATTERN)
    seller: list[str] = Field(min_length=1, description="the first line is the seller, larger")
    head: list[RowSpec]
    lines: list[tuple[str, str, str, str]] = Field(description="description, qty, price, amount")
    totals: list[tuple[str, str]]
    fields: dict[str, str]
    look: Look = Look()

    def document(self) -> SampleDocument:
        look = self.look
        rows = [_left(self.seller[0], size=look.body_size + 5)]
        rows += [_left(text) for text in self.seller[1:]]
        rows += [spec.row() for spec in self.head]
        rows.append(RULE)
        for values in (_INVOICE_HEADER, *self.lines):
            cells = zip(values, _INVOICE_COLUMNS, strict=True)
            rows.append(Row(tuple(Cell(text, x, align) for text, (x, align) in cells)))
        rows.append(RULE)
        rows += [
            Row((Cell(label, 0.8, "right"), Cell(amount, 1.0, "right")))
            for label, amount in self.totals
        ]
        rows.append(_left(_INVOICE_TERMS, gap=1.0))
        return SampleDocument(self.item_id, "invoice", tuple(rows), self.fields, look)


class SampleSetFile(_Spec):
    """The whole data file: documents in the order they are listed (receipts, then invoices)."""

    documents: list[Annotated[ReceiptSpec | InvoiceSpec, Field(discriminator="template")]]

    @model_validator(mode="after")
    def _unique_ids(self) -> SampleSetFile:
        ids = [spec.item_id for spec in self.documents]
        if len(ids) != len(set(ids)):
            raise ValueError("item_id values must be unique")
        return self


def _read_data_file() -> SampleSetFile:
    try:
        return SampleSetFile.model_validate_json(DOCUMENTS_PATH.read_bytes())
    except (OSError, ValidationError) as exc:
        raise ConfigError(
            f"the built-in sample set's data file {DOCUMENTS_PATH} cannot be used: {exc}",
            hint="It ships with the code: restore it from version control.",
        ) from exc


@lru_cache(maxsize=1)
def sample_documents() -> tuple[SampleDocument, ...]:
    """Every document of the built-in set, in data-file order (receipts, then invoices)."""
    return tuple(spec.document() for spec in _read_data_file().documents)


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
    """Changes whenever this module's source, its data file or the Pillow version changes."""
    digest = hashlib.sha256()
    for part in (
        Path(__file__).read_bytes(),
        DOCUMENTS_PATH.read_bytes(),
        PIL.__version__.encode(),
    ):
        # Each part's length first, so moving bytes from one part to the next changes the hash.
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


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


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete files an older generator listed in its stamp that this one no longer writes."""
    old = (_read_stamp(folder) or {}).get("files")
    for name in old if isinstance(old, dict) else {}:
        path = folder / str(name)
        # Only plain names the stamp itself listed: never a path outside the folder.
        if name not in keep and Path(str(name)).name == name and path.is_file():
            path.unlink()


def write_sample_set(folder: Path) -> int:
    """Write the built-in set (pairs layout) into ``folder``; returns the number of items.

    Each file is replaced atomically, so a reader (or a second writer) never sees
    half a file; the stamp goes last, so a folder is current only once all is written.
    """
    files = dict(_files_to_write())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder, set(files))
    except OSError as exc:
        raise StorageError(
            f"could not write the sample set into {folder}: {exc}",
            hint="Choose a folder you can write to.",
        ) from exc
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    stamp = {
        "generator": generator_fingerprint(),
        "pillow": PIL.__version__,
        "files": {name: _sha256(data) for name, data in files.items()},
    }
    atomic_write_bytes(folder / STAMP_NAME, (json.dumps(stamp, indent=2) + "\n").encode())
    return len(sample_documents())
