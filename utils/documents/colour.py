"""Colour normalisation: any Pillow mode -> 8-bit RGB, as OCR engines and models expect."""

from __future__ import annotations

import numpy as np
from PIL import Image

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
