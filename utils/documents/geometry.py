"""Page geometry for the OCR pipeline: lossless quarter turns, and small-skew
straightening from the pixels (projection profiles of the ink)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from utils.documents.colour import to_rgb

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


def skew_from_pixels(image: Image.Image, max_angle: float = 10.0) -> float:
    """Estimate the tilt of text lines in degrees, counter-clockwise positive.

    Projection profile: the ink rows of a straight page form sharp peaks (lines) and
    gaps; the angle whose row histogram has the largest sum of squares is the skew.
    Searched coarsely over ±max_angle, then finely around the best coarse angle.
    (``utils.ocr.skew.skew_from_boxes`` measures it from OCR boxes instead.)
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
    angle = skew_from_pixels(image, max_angle)
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
