"""Image files (PNG, JPEG, WebP, BMP, GIF, TIFF) -> pages, one frame at a time.

Pillow reads the header when a file is opened and the pixels only on ``load()``, so
every frame's size is checked against the limits before anything is decoded. Pillow
raises many exception types on malformed bytes; each becomes a ``BadInput`` that names
the file (and page) and says what to do.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from utils.documents.colour import to_rgb
from utils.documents.limits import (
    DocumentLimits,
    budget_scale,
    check_page_count,
    check_pixel_count,
    scaled_size,
)
from utils.documents.page import Page, failure_reason, page_label
from utils.errors import BadInput

# Formats Pillow may use to decode uploads. Restricting the list keeps Pillow from
# trying plugins we never meant to expose (EPS, for one, shells out to Ghostscript).
# (A JPEG with extra multi-picture frames comes back from the JPEG opener as "MPO".)
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
# EXIF orientations 2-8 flip or turn the stored pixels; 5-8 also swap width and height.
_TURNING_ORIENTATIONS = frozenset(range(2, 9))
_ORIENTATIONS_SWAPPING_SIDES = frozenset({5, 6, 7, 8})


def count_image_pages(data: bytes, name: str, limits: DocumentLimits) -> int:
    """Count the pages of an image and check every frame's pixel count from headers."""
    with _open_image(data, name, limits) as image:
        try:
            frames = _frame_count(image)
            check_page_count(frames, name, limits)
            for index in range(frames):
                image.seek(index)
                check_pixel_count(image.size, page_label(name, index, frames), limits)
        except BadInput:
            raise
        except Exception as exc:  # a damaged TIFF directory fails while seeking
            raise BadInput(
                f"{name} could not be read as an image: {failure_reason(exc)}.",
                hint="The file may be damaged; export or save it again.",
            ) from exc
    return frames


def image_pages(data: bytes, name: str, page_count: int, limits: DocumentLimits) -> Iterator[Page]:
    """Decode the frames one at a time, each only when it is asked for."""
    with _open_image(data, name, limits) as image:
        for index in range(page_count):
            yield _decode_frame(image, index, page_label(name, index, page_count), limits)


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
    except UnidentifiedImageError as exc:
        # Its magic bytes looked like an image, but no decoder accepted the header.
        raise BadInput(
            f"{name} could not be read as an image: its header is damaged or not a "
            "supported image variant.",
            hint="The file may be damaged or in an unsupported variant; re-save it as PNG.",
        ) from exc
    except Exception as exc:  # Pillow raises many types on bad headers
        raise BadInput(
            f"{name} could not be read as an image: {failure_reason(exc)}.",
            hint="The file may be damaged or in an unsupported variant; re-save it as PNG.",
        ) from exc


def _frame_count(image: Image.Image) -> int:
    # Only TIFF frames are pages; the extra frames of GIF, WebP, PNG (APNG) or MPO
    # are animation or previews, so those files count as one page (the first frame).
    return getattr(image, "n_frames", 1) if image.format == "TIFF" else 1


def _decode_frame(image: Image.Image, index: int, where: str, limits: DocumentLimits) -> Page:
    try:
        image.seek(index)
        check_pixel_count(image.size, where, limits)
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        original_size = _upright_size(image.size, orientation)
        scale = budget_scale(original_size, limits)
        target_size = scaled_size(original_size, scale)
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
            f"{where} could not be decoded: {failure_reason(exc)}.",
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
        image.draft(image.mode, scaled_size(image.size, scale))
