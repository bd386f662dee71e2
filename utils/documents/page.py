"""One page of a document, and how messages about pages and failures are worded."""

from __future__ import annotations

import re

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

# Pillow names the buffer it read in some messages ("cannot identify image file
# <_io.BytesIO object at 0x7f...>"); that names our memory, not the user's file.
_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


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


def page_label(name: str, index: int, page_count: int) -> str:
    """How a message names a page: the file alone when it has only one."""
    return f"{name} page {index + 1}" if page_count > 1 else name


def failure_reason(exc: BaseException) -> str:
    """A decoder's exception as a short clause for a message that already names the file."""
    text = _OBJECT_REPR.sub("", str(exc)).strip().rstrip(".")
    return text or type(exc).__name__
