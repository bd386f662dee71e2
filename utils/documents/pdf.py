"""PDF files -> pages, rendered one at a time through PDFium.

PDFium is not thread-safe, and Streamlit serves each browser session from its own
thread: every call into it goes through ``_PDFIUM_LOCK``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pypdfium2 as pdfium
from PIL import Image

from utils.documents.colour import to_rgb
from utils.documents.limits import DocumentLimits, budget_scale
from utils.documents.page import Page, failure_reason, page_label
from utils.errors import BadInput

# Re-entrant because a generator may be finalised (closing its PDF) while the same
# thread already holds the lock.
_PDFIUM_LOCK = threading.RLock()


def count_pdf_pages(data: bytes, name: str) -> int:
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


def pdf_pages(data: bytes, name: str, page_count: int, limits: DocumentLimits) -> Iterator[Page]:
    """Render the pages one at a time, each only when it is asked for."""
    with _PDFIUM_LOCK:
        pdf = _open_pdf(data, name)
    try:
        for index in range(page_count):
            yield _render_pdf_page(pdf, index, page_label(name, index, page_count), limits)
    finally:
        with _PDFIUM_LOCK:
            pdf.close()


def _open_pdf(data: bytes, name: str) -> pdfium.PdfDocument:
    """Open a PDF already checked by ``count_pdf_pages`` (caller holds ``_PDFIUM_LOCK``)."""
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
        f"{name} could not be opened as a PDF: {failure_reason(exc)}.",
        hint="The file may be damaged; export or print it to PDF again.",
    )


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
                f"{where} could not be rendered: {failure_reason(exc)}.",
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
    scale = budget_scale(full, limits)
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
