"""Documents in: uploaded bytes -> validated, normalised page images.

Everything a user hands us (browser upload, CLI path, dataset folder) comes through
``load_document``. It checks what can be checked from the bytes and headers alone —
size, type, page count, pixel count — so bad input is refused before any real work,
and then ``Document.pages()`` decodes or renders one page at a time, so a long PDF
never sits in memory all at once.

Only ``BadInput`` leaves this module for bad input: decoders (Pillow, PDFium) raise a
wide range of exception types on malformed bytes, and each is translated into a message
that names the file (and page) and says what to do.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import threading
import unicodedata
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pypdfium2 as pdfium
from PIL import ExifTags, Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from utils.errors import BadInput

DocumentKind = Literal["pdf", "image"]

_MB = 1024 * 1024
# Formats Pillow may use to decode uploads. Restricting the list keeps Pillow from
# trying plugins we never meant to expose (EPS, for one, shells out to Ghostscript).
# (A JPEG with extra multi-picture frames comes back from the JPEG opener as "MPO".)
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
_PDF_MAGIC = b"%PDF-"
# The PDF spec lets the header start anywhere in the first 1024 bytes; PDFium agrees.
_PDF_HEADER_WINDOW = 1024
_IMAGE_MAGICS = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
# EXIF orientations 2-8 flip or turn the stored pixels; 5-8 also swap width and height.
_TURNING_ORIENTATIONS = frozenset(range(2, 9))
_ORIENTATIONS_SWAPPING_SIDES = frozenset({5, 6, 7, 8})
# PDFium is not thread-safe, and Streamlit serves each browser session from its own
# thread: every call into it goes through this lock. Re-entrant because a generator
# may be finalised (closing its PDF) while the same thread already holds the lock.
_PDFIUM_LOCK = threading.RLock()

_FILENAME_MAX_CHARS = 120
_EXTENSION_MAX_CHARS = 16
_FALLBACK_FILENAME = "upload"
# Bidi controls can make "gpj.exe" display as "exe.jpg"; they never belong in a name.
_BIDI_MARKS = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs"})  # control characters, lone surrogates


class DocumentLimits(BaseModel):
    """Limits on what an upload may be; built by the app from its typed config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_mb: float = Field(50, gt=0, description="Largest accepted file, in MB (MiB).")
    max_megapixels: float = Field(60, gt=0, description="Most pixels one image page may have.")
    max_pages: int = Field(200, ge=1, description="Most pages (PDF pages or TIFF frames).")
    pdf_dpi: int = Field(200, ge=36, le=1200, description="Resolution PDF pages are rendered at.")
    max_side: int = Field(
        2500, ge=0, description="Longest side of a processed page in pixels; 0 = no limit."
    )


class Page(BaseModel):
    """One page, ready for OCR or a model: an upright RGB image within the pixel budget.

    ``original_size`` is the upright page before the pixel budget (for a PDF: the page at
    ``pdf_dpi``). ``scale`` is processed pixels per original pixel, so a box found on
    ``image`` maps back to the original by dividing its coordinates by ``scale``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    index: int = Field(ge=0)
    image: Image.Image
    original_size: tuple[int, int]
    scale: float = Field(gt=0)
    embedded_text: str | None = None


class Document(BaseModel):
    """A validated upload. Pages are produced lazily by ``pages()``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: DocumentKind
    page_count: int = Field(ge=1)
    sha256: str
    _data: bytes = PrivateAttr(default=b"")
    _limits: DocumentLimits = PrivateAttr(default_factory=DocumentLimits)

    def pages(self) -> Iterator[Page]:
        """Yield the pages in order, decoding each only when it is asked for."""
        if self.kind == "pdf":
            yield from _pdf_pages(self._data, self.name, self.page_count, self._limits)
        else:
            yield from _image_pages(self._data, self.name, self.page_count, self._limits)


# --- names and types -------------------------------------------------------------------


def sanitize_filename(name: str) -> str:
    """Return a display-safe file name: no path parts, control or bidi characters."""
    text = unicodedata.normalize("NFC", name)
    text = re.split(r"[/\\]", text)[-1]
    text = re.sub(r"\s+", " ", text)
    text = "".join(
        ch
        for ch in text
        if ch not in _BIDI_MARKS and unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )
    # Leading dots would make a hidden file (and "." / ".." are directories); Windows
    # refuses trailing dots and spaces. Neither carries meaning in a display name.
    text = re.sub(r"\s+", " ", text).strip(" .")
    return _shorten_keeping_extension(text) or _FALLBACK_FILENAME


def _shorten_keeping_extension(text: str) -> str:
    if len(text) <= _FILENAME_MAX_CHARS:
        return text
    dot = text.rfind(".")
    extension = text[dot:] if dot > 0 and len(text) - dot <= _EXTENSION_MAX_CHARS else ""
    stem = text[: len(text) - len(extension)]
    return stem[: _FILENAME_MAX_CHARS - len(extension)].rstrip(" .") + extension


def detect_kind(data: bytes, name: str = _FALLBACK_FILENAME) -> DocumentKind:
    """Tell a PDF from an image by its magic bytes (never by the file name)."""
    # Image signatures sit at offset 0, so test them first: a JPEG or PNG whose metadata
    # happens to contain "%PDF-" in its first KB is still an image.
    if data.startswith(_IMAGE_MAGICS) or _is_webp(data):
        return "image"
    if _PDF_MAGIC in data[:_PDF_HEADER_WINDOW]:
        return "pdf"
    raise BadInput(
        f"{name} is not an image or a PDF (its content is not a format we recognise).",
        hint="Upload a PNG, JPEG, WebP, BMP, GIF, TIFF or PDF file.",
    )


def _is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


# --- loading ---------------------------------------------------------------------------


def load_document(data: bytes, filename: str, limits: DocumentLimits) -> Document:
    """Validate an upload up front and return a ``Document`` whose pages decode lazily."""
    name = sanitize_filename(filename)
    _check_file_size(data, name, limits)
    kind = detect_kind(data, name)
    if kind == "pdf":
        page_count = _count_pdf_pages(data, name)
    else:
        page_count = _inspect_image(data, name, limits)
    _check_page_count(page_count, name, limits)
    document = Document(
        name=name, kind=kind, page_count=page_count, sha256=hashlib.sha256(data).hexdigest()
    )
    document._data = data
    document._limits = limits
    return document


def _check_file_size(data: bytes, name: str, limits: DocumentLimits) -> None:
    if not data:
        raise BadInput(f"{name} is empty (0 bytes).", hint="Check the file and upload it again.")
    if len(data) > limits.max_file_mb * _MB:
        raise BadInput(
            f"{name} is {len(data) / _MB:.1f} MB, over the limit of {limits.max_file_mb:g} MB.",
            hint="Upload a smaller file, split the document, or raise max_file_mb in the config.",
        )


def _check_page_count(page_count: int, name: str, limits: DocumentLimits) -> None:
    if page_count < 1:
        raise BadInput(f"{name} has no pages.", hint="Upload a document with at least one page.")
    if page_count > limits.max_pages:
        raise BadInput(
            f"{name} has {page_count} pages, more than the limit of {limits.max_pages}.",
            hint="Split the document into smaller parts, or raise max_pages in the config.",
        )


def _check_pixel_count(size: tuple[int, int], where: str, limits: DocumentLimits) -> None:
    """Refuse a frame by its header size, before a single pixel is decoded."""
    width, height = size
    if width <= 0 or height <= 0:
        raise BadInput(
            f"{where} claims an impossible size of {width}×{height} pixels.",
            hint="The file is damaged; export or save it again.",
        )
    if width * height > limits.max_megapixels * 1_000_000:
        raise BadInput(
            f"{where} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), "
            f"over the limit of {limits.max_megapixels:g} megapixels.",
            hint="Downscale the image, or raise max_megapixels in the config.",
        )


def _budget_scale(size: tuple[float, float], limits: DocumentLimits) -> float:
    """The factor (at most 1) that fits a page into max_side and max_megapixels."""
    width, height = size
    scale = 1.0
    megapixel_cap = limits.max_megapixels * 1_000_000
    if width * height > megapixel_cap:
        scale = math.sqrt(megapixel_cap / (width * height))
    if limits.max_side and max(width, height) * scale > limits.max_side:
        scale = limits.max_side / max(width, height)
    return scale


def _scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


# --- images ----------------------------------------------------------------------------


def _open_image(data: bytes, name: str, limits: DocumentLimits) -> Image.Image:
    """Open an image lazily: Pillow reads the header here, pixels only on ``load()``."""
    try:
        return Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (left at its default for the rest of the process) fired
        # before ours could: the header claims even more pixels than Pillow accepts.
        raise BadInput(
            f"{name} has far more pixels than the limit of {limits.max_megapixels:g} "
            "megapixels (it looks like a decompression bomb).",
            hint="Downscale the image before uploading it.",
        ) from exc
    except Exception as exc:  # Pillow raises many types on bad headers
        raise BadInput(
            f"{name} could not be read as an image: {_reason(exc)}.",
            hint="The file may be damaged or in an unsupported variant; re-save it as PNG.",
        ) from exc


def _frame_count(image: Image.Image) -> int:
    # Only TIFF frames are pages; the extra frames of GIF, WebP, PNG (APNG) or MPO
    # are animation or previews, so those files count as one page (the first frame).
    return getattr(image, "n_frames", 1) if image.format == "TIFF" else 1


def _inspect_image(data: bytes, name: str, limits: DocumentLimits) -> int:
    """Count the pages of an image and check every frame's pixel count from headers."""
    with _open_image(data, name, limits) as image:
        try:
            frames = _frame_count(image)
            _check_page_count(frames, name, limits)
            for index in range(frames):
                image.seek(index)
                _check_pixel_count(image.size, _page_label(name, index, frames), limits)
        except BadInput:
            raise
        except Exception as exc:  # a damaged TIFF directory fails while seeking
            raise BadInput(
                f"{name} could not be read as an image: {_reason(exc)}.",
                hint="The file may be damaged; export or save it again.",
            ) from exc
    return frames


def _image_pages(data: bytes, name: str, page_count: int, limits: DocumentLimits) -> Iterator[Page]:
    with _open_image(data, name, limits) as image:
        for index in range(page_count):
            yield _decode_frame(image, index, _page_label(name, index, page_count), limits)


def _page_label(name: str, index: int, page_count: int) -> str:
    return f"{name} page {index + 1}" if page_count > 1 else name


def _decode_frame(image: Image.Image, index: int, where: str, limits: DocumentLimits) -> Page:
    try:
        image.seek(index)
        _check_pixel_count(image.size, where, limits)
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        original_size = _upright_size(image.size, orientation)
        scale = _budget_scale(original_size, limits)
        target_size = _scaled_size(original_size, scale)
        _decode_smaller_if_possible(image, scale)
        image.load()
        # exif_transpose copies even when there is nothing to do; skip it then.
        upright = ImageOps.exif_transpose(image) if orientation in _TURNING_ORIENTATIONS else image
        rgb = to_rgb(upright)
        if rgb.size != target_size:
            rgb = rgb.resize(target_size, Image.Resampling.LANCZOS)
        elif rgb is image:
            rgb = rgb.copy()  # detach: seeking the next TIFF frame reuses the file's image
    except BadInput:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, ...
        raise BadInput(
            f"{where} could not be decoded: {_reason(exc)}.",
            hint="The file is truncated or damaged; export or save it again.",
        ) from exc
    return Page(index=index, image=rgb, original_size=original_size, scale=scale)


def _upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The frame's size once its EXIF orientation is applied."""
    width, height = size
    return (height, width) if orientation in _ORIENTATIONS_SWAPPING_SIDES else (width, height)


def _decode_smaller_if_possible(image: Image.Image, scale: float) -> None:
    """Let the JPEG decoder scale down by 2, 4 or 8 while decoding.

    A phone photo decoded at half size takes a quarter of the time and memory. Pillow
    picks a factor that keeps the result at least as large as asked, so the LANCZOS
    resize afterwards still produces exactly the budgeted size. The scale is the same
    in either orientation, so this is safe before the EXIF rotation is applied.
    """
    if image.format in ("JPEG", "MPO") and scale <= 0.5:
        image.draft(image.mode, _scaled_size(image.size, scale))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return text or type(exc).__name__


# --- colour normalisation --------------------------------------------------------------

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_HIGH_DEPTH_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return _composite_on_white(image)
    if image.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    return image.convert("RGB")


def _composite_on_white(image: Image.Image) -> Image.Image:
    # Transparent pixels usually hold black; dropping alpha would turn a transparent
    # background (a logo, a scanned signature) into a black page.
    if image.mode == "La":
        image = image.convert("LA")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's own conversion clips 16-bit values at 255, turning most of a 16-bit scan
    # white; map the value range onto 0-255 instead.
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        gray = (values >> 8).astype(np.uint8)
    else:
        gray = _stretch_to_bytes(values.astype(np.float32))
    return Image.fromarray(gray, mode="L").convert("RGB")


def _stretch_to_bytes(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 1.0 and values.dtype.kind == "f" and high > 0:
        values = values * 255  # float images usually hold 0..1
    elif low >= 0 and high > 255 and high <= 65535:
        values = values / 257  # 16-bit data stored in a 32-bit mode
    elif low < 0 or high > 255:
        values = (values - low) * (255 / max(high - low, 1e-9))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# --- PDF -------------------------------------------------------------------------------


def _open_pdf(data: bytes, name: str) -> pdfium.PdfDocument:
    """Open a PDF already checked by ``_count_pdf_pages`` (caller holds ``_PDFIUM_LOCK``)."""
    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as exc:
        raise _unopenable_pdf(name, exc) from exc
    try:
        # Without a form environment, form fields that have no stored appearance
        # (filled-in forms saved by some tools) render empty.
        pdf.init_forms()
    except Exception as exc:
        pdf.close()
        raise _unopenable_pdf(name, exc) from exc
    return pdf


def _unopenable_pdf(name: str, exc: Exception) -> BadInput:
    return BadInput(
        f"{name} could not be opened as a PDF: {_reason(exc)}.",
        hint="The file may be damaged; export or print it to PDF again.",
    )


def _count_pdf_pages(data: bytes, name: str) -> int:
    """Open the PDF once to check it and count its pages.

    This uses PDFium's C API directly: the Python wrapper reports a PDF with an empty
    page tree as a failed load, with whatever error code an earlier file left behind
    (PDFium only sets its last error when loading fails), so an empty PDF opened after
    an encrypted one would be called "password protected".
    """
    with _PDFIUM_LOCK:
        handle = pdfium.raw.FPDF_LoadMemDocument64(data, len(data), None)
        if not handle:
            raise _pdf_load_error(pdfium.raw.FPDF_GetLastError(), name)
        try:
            return pdfium.raw.FPDF_GetPageCount(handle)
        finally:
            pdfium.raw.FPDF_CloseDocument(handle)


def _pdf_load_error(code: int, name: str) -> BadInput:
    if code == pdfium.raw.FPDF_ERR_PASSWORD:
        return BadInput(
            f"{name} is password protected.",
            hint="Remove the password (e.g. print or export it to a new PDF) and upload again.",
        )
    if code == pdfium.raw.FPDF_ERR_SECURITY:
        return BadInput(
            f"{name} is encrypted with a security scheme that cannot be opened here.",
            hint="Remove the protection (print or export it to a new PDF) and upload again.",
        )
    return BadInput(
        f"{name} is not a readable PDF: it is damaged or incomplete.",
        hint="Download it again, or export or print it to PDF again.",
    )


def _pdf_pages(data: bytes, name: str, page_count: int, limits: DocumentLimits) -> Iterator[Page]:
    with _PDFIUM_LOCK:
        pdf = _open_pdf(data, name)
    try:
        for index in range(page_count):
            yield _render_pdf_page(pdf, index, _page_label(name, index, page_count), limits)
    finally:
        with _PDFIUM_LOCK:
            pdf.close()


def _render_pdf_page(
    pdf: pdfium.PdfDocument, index: int, where: str, limits: DocumentLimits
) -> Page:
    with _PDFIUM_LOCK:
        try:
            page = pdf[index]
            try:
                return _render_open_page(page, index, where, limits)
            finally:
                page.close()
        except BadInput:
            raise
        except Exception as exc:  # PdfiumError, or a bitmap Pillow cannot wrap
            raise BadInput(
                f"{where} could not be rendered: {_reason(exc)}.",
                hint="The PDF may be damaged; export or print it to PDF again.",
            ) from exc


def _render_open_page(page: pdfium.PdfPage, index: int, where: str, limits: DocumentLimits) -> Page:
    """Render at pdf_dpi, or lower where that would break the pixel budget."""
    width_pt, height_pt = page.get_size()  # already turned by the page's /Rotate
    if not (width_pt > 0 and height_pt > 0):
        raise BadInput(
            f"{where} has an impossible size ({width_pt}×{height_pt} points).",
            hint="The PDF may be damaged; export or print it to PDF again.",
        )
    dpi_scale = limits.pdf_dpi / 72  # PDF sizes are in points, 72 to the inch
    full = (width_pt * dpi_scale, height_pt * dpi_scale)
    scale = _budget_scale(full, limits)
    bitmap = page.render(scale=dpi_scale * scale)
    try:
        image = _detached_rgb(bitmap.to_pil())
    finally:
        bitmap.close()
    original_size = (max(1, round(full[0])), max(1, round(full[1])))
    return Page(
        index=index,
        image=image,
        original_size=original_size,
        scale=scale,
        embedded_text=_embedded_text(page),
    )


def _detached_rgb(image: Image.Image) -> Image.Image:
    # The bitmap's memory is freed on close, and Pillow may share it: take a copy.
    rgb = to_rgb(image)
    return rgb.copy() if rgb is image else rgb


def _embedded_text(page: pdfium.PdfPage) -> str | None:
    """The page's text layer, or None when it has none (a scan)."""
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
    finally:
        textpage.close()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.strip() else None


# --- geometry helpers for the OCR pipeline ---------------------------------------------

_DESKEW_WORKING_SIDE = 1000  # px; enough to resolve ~0.1° over a page width
_DESKEW_MAX_POINTS = 200_000  # ink pixels used for the profile; keeps time bounded
_DESKEW_COARSE_STEP = 0.5
_DESKEW_FINE_STEP = 0.05
_DESKEW_MIN_CORRECTION = 0.1  # degrees; below this, rotating only blurs


def rotate_quarter(image: Image.Image, k: int) -> Image.Image:
    """Rotate by ``k`` quarter turns counter-clockwise (like ``numpy.rot90``), losslessly."""
    turns = k % 4
    if turns == 0:
        return image
    transposes = {
        1: Image.Transpose.ROTATE_90,
        2: Image.Transpose.ROTATE_180,
        3: Image.Transpose.ROTATE_270,
    }
    return image.transpose(transposes[turns])


def estimate_skew(image: Image.Image, max_angle: float = 10.0) -> float:
    """Estimate the tilt of text lines in degrees, counter-clockwise positive.

    Projection profile: the ink rows of a straight page form sharp peaks (lines) and
    gaps; the angle whose row histogram has the largest sum of squares is the skew.
    Searched coarsely over ±max_angle, then finely around the best coarse angle.
    """
    xs, ys = _ink_points(image)
    if xs.size == 0:
        return 0.0
    coarse = np.arange(-max_angle, max_angle + 1e-9, _DESKEW_COARSE_STEP)
    best = _sharpest_angle(xs, ys, coarse)
    fine = np.arange(
        best - _DESKEW_COARSE_STEP, best + _DESKEW_COARSE_STEP + 1e-9, _DESKEW_FINE_STEP
    )
    return round(float(_sharpest_angle(xs, ys, fine)), 2)


def deskew(image: Image.Image, max_angle: float = 10.0) -> tuple[Image.Image, float]:
    """Straighten small text skew; return the image and the tilt corrected (0.0 if none).

    The result is rotated by ``-angle`` with ``expand=True`` on a white background, so
    it can be slightly larger than the input. Greyscale stays greyscale (a third of the
    work); other modes come back as RGB.
    """
    angle = estimate_skew(image, max_angle)
    if abs(angle) < _DESKEW_MIN_CORRECTION:
        return image, 0.0
    working = image if image.mode in ("L", "RGB") else to_rgb(image)
    white = 255 if working.mode == "L" else (255, 255, 255)
    # Bilinear: half the time of bicubic on a full page, and no visible loss for OCR at
    # these small angles.
    straightened = working.rotate(
        -angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=white
    )
    return straightened, angle


def _ink_points(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of ink pixels on a small binarised copy of the page."""
    gray = image.convert("L")
    factor = max(1, math.ceil(max(gray.size) / _DESKEW_WORKING_SIDE))
    if factor > 1:
        gray = gray.reduce(factor)
    pixels = np.asarray(gray)
    ink = pixels < _otsu_threshold(pixels)
    if ink.mean() > 0.5:  # light text on a dark background: the ink is the minority
        ink = ~ink
    ys, xs = np.nonzero(ink)
    stride = max(1, xs.size // _DESKEW_MAX_POINTS)
    return xs[::stride].astype(np.float32), ys[::stride].astype(np.float32)


def _otsu_threshold(pixels: np.ndarray) -> int:
    """The grey level that best splits the histogram into two classes (Otsu, 1979)."""
    histogram = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256)
    weight_dark = np.cumsum(histogram)
    weight_light = weight_dark[-1] - weight_dark
    sum_dark = np.cumsum(histogram * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_dark = sum_dark / weight_dark
        mean_light = (sum_dark[-1] - sum_dark) / weight_light
        between = weight_dark * weight_light * (mean_dark - mean_light) ** 2
    between = np.nan_to_num(between)
    if not between.any():
        return 0  # a single grey level: no ink at all
    # Pixels at or below the best level are dark; "< threshold" selects them.
    return int(np.argmax(between)) + 1


def _sharpest_angle(xs: np.ndarray, ys: np.ndarray, angles: np.ndarray) -> float:
    scores = [_profile_sharpness(xs, ys, angle) for angle in angles]
    return float(angles[int(np.argmax(scores))])


def _profile_sharpness(xs: np.ndarray, ys: np.ndarray, angle: float) -> float:
    # Image rows grow downwards, so a line tilted counter-clockwise by `angle` rises to
    # the right: y + x*tan(angle) is constant along it.
    rows = np.rint(ys + xs * math.tan(math.radians(angle))).astype(np.int64)
    counts = np.bincount(rows - rows.min())
    return float(np.dot(counts, counts))
