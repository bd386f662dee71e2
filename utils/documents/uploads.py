"""What an upload is called and what it is: display-safe names, type by magic bytes,
and files read from disk without holding more than the size limit in memory."""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import Literal

from utils.documents.limits import DocumentLimits, check_file_size, stream_too_large
from utils.errors import BadInput

DocumentKind = Literal["pdf", "image"]

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

_FILENAME_MAX_CHARS = 120
_EXTENSION_MAX_CHARS = 16
_FALLBACK_FILENAME = "upload"
# Bidi controls can make "gpj.exe" display as "exe.jpg"; they never belong in a name.
_BIDI_MARKS = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs"})  # control characters, lone surrogates


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


def read_upload_file(path: Path, limits: DocumentLimits) -> bytes:
    """A file's bytes, refused by size before they are read.

    A regular file is refused by its ``stat`` size; anything else (a pipe, a device such
    as ``/dev/zero``) has no size to ask for, so at most one byte past the limit is read.
    Raises ``OSError`` when the file cannot be opened or read, ``BadInput`` when it is
    empty or over ``max_file_mb``.
    """
    name = sanitize_filename(path.name)
    with path.open("rb") as handle:
        info = os.fstat(handle.fileno())
        regular = stat.S_ISREG(info.st_mode)
        if regular and info.st_size > limits.max_file_bytes:
            check_file_size(info.st_size, name, limits)
        # Bounded even for a regular file: it may grow after the stat, and some (those
        # under /proc) report a size of 0 whatever they hold.
        data = handle.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes and not regular:
        raise stream_too_large(name, limits)
    check_file_size(len(data), name, limits)
    return data
