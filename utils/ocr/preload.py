"""Load the profile's default OCR engine before anyone asks for it.

Loading RapidOCR (three ONNX sessions) and its first inference take about a second
and a half on a laptop CPU; done in the background when the app first runs, the first
upload finds the engine ready. Only engines that load in seconds on a CPU are
preloaded (RapidOCR, Tesseract); a VLM engine loads on first use as before. A page
that asks for the engine while it is loading waits for that same load (the engine
registry creates each engine once, under a lock).
"""

from __future__ import annotations

import logging
import threading

from PIL import Image, ImageDraw

from models.config import AppConfig
from models.registry import create_ocr_engine
from utils.errors import AppError

logger = logging.getLogger(__name__)

PRELOADED_BACKENDS = {"rapidocr", "tesseract"}


def preload_default_engine(config: AppConfig) -> threading.Thread | None:
    """Start loading ``ocr.engine`` on a daemon thread; None when it is not preloaded."""
    entry = config.models.get(config.ocr.engine)
    if entry is None or entry.backend not in PRELOADED_BACKENDS or not entry.enabled:
        return None
    thread = threading.Thread(
        target=_load_and_warm, args=(config,), name="ocr-engine-preload", daemon=True
    )
    thread.start()
    return thread


def _load_and_warm(config: AppConfig) -> None:
    try:
        engine = create_ocr_engine(config.ocr.engine, config)
        engine.ocr(_warm_up_image())  # the first inference sets up the runtime's kernels
    except AppError as exc:  # not installed here: the OCR page says so when it is used
        logger.info("OCR engine %s not preloaded: %s", config.ocr.engine, exc.message)
    except Exception:  # noqa: BLE001 - a failed preload only means a slower first page
        logger.exception("preloading OCR engine %s failed", config.ocr.engine)
    else:
        logger.info("OCR engine %s preloaded", config.ocr.engine)


def _warm_up_image() -> Image.Image:
    image = Image.new("RGB", (320, 96), "white")
    ImageDraw.Draw(image).text((12, 36), "TOTAL 12.50", fill="black")
    return image
