"""Limits on what an upload may be, and the checks that enforce them.

Every check here works from sizes alone (file length, page count, a frame's header
size), so bad input is refused before a single pixel is decoded.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from utils.errors import BadInput

MB = 1024 * 1024
_TOO_LARGE_HINT = "Upload a smaller file, split the document, or raise max_file_mb in the config."


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

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MB)

    @property
    def uploader_mb(self) -> int:
        """The limit for Streamlit's uploaders, which take whole MB (at least 1): without
        it they announce their own 200 MB default. Rounded up, so the loader's exact
        check, not the widget, refuses a file between the two with a clear message."""
        return max(1, math.ceil(self.max_file_mb))


def check_file_size(size: int, name: str, limits: DocumentLimits) -> None:
    """Refuse an empty file or one over ``max_file_mb`` (``size`` in bytes)."""
    if size <= 0:
        raise BadInput(f"{name} is empty (0 bytes).", hint="Check the file and upload it again.")
    if size > limits.max_file_bytes:
        raise BadInput(
            f"{name} is {size / MB:.1f} MB, over the limit of {limits.max_file_mb:g} MB.",
            hint=_TOO_LARGE_HINT,
        )


def stream_too_large(name: str, limits: DocumentLimits) -> BadInput:
    """The refusal of a stream (a pipe, a device) that went on past ``max_file_mb``."""
    return BadInput(
        f"{name} is over the limit of {limits.max_file_mb:g} MB "
        "(it is not a regular file; reading stopped at the limit).",
        hint=_TOO_LARGE_HINT,
    )


def check_page_count(page_count: int, name: str, limits: DocumentLimits) -> None:
    if page_count < 1:
        raise BadInput(f"{name} has no pages.", hint="Upload a document with at least one page.")
    if page_count > limits.max_pages:
        raise BadInput(
            f"{name} has {page_count} pages, more than the limit of {limits.max_pages}.",
            hint="Split the document into smaller parts, or raise max_pages in the config.",
        )


def check_pixel_count(size: tuple[int, int], where: str, limits: DocumentLimits) -> None:
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


def budget_scale(size: tuple[float, float], limits: DocumentLimits) -> float:
    """The factor (at most 1) that fits a page into max_side and max_megapixels."""
    width, height = size
    scale = 1.0
    megapixel_cap = limits.max_megapixels * 1_000_000
    if width * height > megapixel_cap:
        scale = math.sqrt(megapixel_cap / (width * height))
    if limits.max_side and max(width, height) * scale > limits.max_side:
        scale = limits.max_side / max(width, height)
    return scale


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
