"""Documents in: uploaded bytes -> a validated ``Document`` whose pages decode lazily.

Everything a user hands us (browser upload, CLI path, dataset folder) comes through
``load_document``. It checks what can be checked from the bytes and headers alone —
size, type, page count, pixel count — so bad input is refused before any real work,
and then ``Document.pages()`` decodes or renders one page at a time, so a long PDF
never sits in memory all at once.

Only ``BadInput`` leaves this package for bad input: decoders (Pillow, PDFium) raise a
wide range of exception types on malformed bytes, and each is translated into a message
that names the file (and page) and says what to do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from utils.documents.images import count_image_pages, image_pages
from utils.documents.limits import DocumentLimits, check_file_size, check_page_count
from utils.documents.page import Page
from utils.documents.pdf import count_pdf_pages, pdf_pages
from utils.documents.uploads import DocumentKind, detect_kind, sanitize_filename


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
            yield from pdf_pages(self._data, self.name, self.page_count, self._limits)
        else:
            yield from image_pages(self._data, self.name, self.page_count, self._limits)


def load_document(data: bytes, filename: str, limits: DocumentLimits) -> Document:
    """Validate an upload up front and return a ``Document`` whose pages decode lazily."""
    name = sanitize_filename(filename)
    check_file_size(len(data), name, limits)
    kind = detect_kind(data, name)
    if kind == "pdf":
        page_count = count_pdf_pages(data, name)
    else:
        page_count = count_image_pages(data, name, limits)
    check_page_count(page_count, name, limits)
    document = Document(
        name=name, kind=kind, page_count=page_count, sha256=hashlib.sha256(data).hexdigest()
    )
    document._data = data
    document._limits = limits
    return document
