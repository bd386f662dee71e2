"""Chat images: each attached image's bytes stored once, by content hash.

Layout under ``folder`` (the chat store's ``images/``)::

    <sha256>.<ext>      the original bytes, named by their hash and a fixed extension

An uploaded file's name is display text only, sanitised; the extension comes from the
bytes. Decoded images are kept in memory for a while: every turn sends the whole
conversation, and decoding every photo again each time would be slow.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from utils.chat.conversation import ImageExt, StoredImage
from utils.chat.locks import remove_storage_lock_file
from utils.documents.document import load_document
from utils.documents.limits import DocumentLimits
from utils.errors import BadInput, StorageError
from utils.storage import atomic_write_bytes

logger = logging.getLogger(__name__)

# Magic bytes -> extension. load_document has already accepted the bytes as an image,
# so one of these matches; the extension comes from the content, never the file name.
_EXT_BY_MAGIC: tuple[tuple[bytes, ImageExt], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
_IMAGE_FILE_RE = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp|bmp|gif|tiff)$")

#: Decoded images kept in memory, by bytes of RGB pixels: a prompt is built every turn
#: and would otherwise decode every photo of the conversation again each time.
DECODED_CACHE_BYTES = 128 * 1024 * 1024


class ChatImages:
    """The images of all conversations under ``folder``; safe to share between sessions."""

    def __init__(
        self, folder: Path, limits: DocumentLimits, cache_bytes: int = DECODED_CACHE_BYTES
    ) -> None:
        self.folder = Path(folder)
        self.limits = limits
        self._decoded = _DecodedImageCache(cache_bytes)

    def add(self, data: bytes, filename: str) -> StoredImage:
        """Validate an uploaded image and store its bytes once, by hash.

        Refuses PDFs and multi-page TIFFs (those belong on the OCR page) and anything
        ``load_document`` refuses: wrong type, too big, too many pixels, undecodable.
        """
        document = load_document(data, filename, self.limits)
        if document.kind != "image":
            raise BadInput(
                f"{document.name} is a PDF; the chat takes images only.",
                hint="Attach images, or use the OCR page for PDFs.",
            )
        if document.page_count != 1:
            raise BadInput(
                f"{document.name} has {document.page_count} pages; the chat takes single images.",
                hint="Attach the pages as separate images, or use the OCR page for documents.",
            )
        page = next(document.pages())  # decodes it all: a damaged file fails here, not later
        width, height = page.original_size
        stored = StoredImage(
            sha256=document.sha256,
            ext=_image_extension(data),
            width=width,
            height=height,
            name=document.name,
        )
        self._write_once(stored, data)
        self._decoded.put(stored.file_name, page.image)
        return stored

    def load(self, image: StoredImage) -> Image.Image:
        """The stored image as upright RGB, within the pixel budget of ``limits``."""
        cached = self._decoded.get(image.file_name)
        if cached is not None:
            return cached
        path = self.folder / image.file_name
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(
                f"The image {image.name} of this conversation is missing ({path}).",
                hint="Its file was removed; delete or edit the turn that attached it.",
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"Cannot read the image {image.name} ({path}): {exc.strerror or exc}",
                hint="Check the data folder's permissions.",
            ) from exc
        decoded = next(load_document(data, image.name, self.limits).pages()).image
        self._decoded.put(image.file_name, decoded)
        return decoded.copy()

    def original_bytes(self, image: StoredImage) -> bytes:
        """The bytes as uploaded (for an export)."""
        path = self.folder / image.file_name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StorageError(
                f"Cannot read the image {image.name} ({path}): {exc.strerror or exc}",
                hint="Its file is missing or unreadable; the conversation cannot be exported.",
            ) from exc

    def sweep(self, referenced: frozenset[str], grace_s: float) -> int:
        """Delete image files not in ``referenced`` and older than ``grace_s``; return how many.

        The grace period covers an image another tab attached but has not yet saved in
        the conversation that will refer to it.
        """
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - grace_s
        removed = 0
        for entry in os.scandir(self.folder):
            if not _IMAGE_FILE_RE.fullmatch(entry.name) or entry.name in referenced:
                continue
            try:
                if entry.stat().st_mtime > cutoff:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:  # a sweep in another session got there first
                continue
            remove_storage_lock_file(Path(entry.path))
            self._decoded.forget(entry.name)
            removed += 1
        if removed:
            logger.info("removed %d chat image(s) no conversation refers to", removed)
        return removed

    def _write_once(self, image: StoredImage, data: bytes) -> None:
        path = self.folder / image.file_name
        try:
            # Already stored: refresh its age so a concurrent sweep's grace period covers it.
            os.utime(path)
            return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(
                f"Cannot update {path}: {exc.strerror or exc}",
                hint="Check the data folder's permissions.",
            ) from exc
        atomic_write_bytes(path, data)


def _image_extension(data: bytes) -> ImageExt:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _EXT_BY_MAGIC:
        if data.startswith(magic):
            return ext
    # load_document accepts only these signatures; reaching here is a bug, not bad input.
    raise AssertionError("image bytes with no known signature passed load_document")


class _DecodedImageCache:
    """Recently decoded images, least recently used dropped first; hands out copies."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Image.Image | None:
        with self._lock:
            image = self._images.get(key)
            if image is None:
                return None
            self._images.move_to_end(key)
        # A copy: callers (backends) may resize or draw on what they get.
        return image.copy()

    def put(self, key: str, image: Image.Image) -> None:
        size = _pixel_bytes(image)
        if size > self._max_bytes:
            return
        with self._lock:
            self._drop(key)
            self._images[key] = image
            self._bytes += size
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._images)))

    def forget(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        image = self._images.pop(key, None)
        if image is not None:
            self._bytes -= _pixel_bytes(image)


def _pixel_bytes(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())
