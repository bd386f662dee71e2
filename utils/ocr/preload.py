"""Load the profile's default OCR engine before anyone asks for it.

Loading RapidOCR (three ONNX sessions) and its first inference take about a second
and a half on a laptop CPU; done in the background when the app first runs, the first
upload finds the engine ready. ``serve.py`` starts this with the server process;
app.py starts it again on its first run (under plain ``streamlit run``, the first
chance there is), which finds the engine loaded and warmed and does nothing more.
Only engines that load in seconds on a CPU are preloaded (RapidOCR, Tesseract); a
VLM engine loads on first use as before. A page that asks for the engine while it is
loading waits for that same load (the engine registry creates each engine once,
under a lock).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

from PIL import Image, ImageDraw

from models.config import AppConfig
from models.ocr.base import OcrEngine
from models.registry import create_ocr_engine
from utils.errors import AppError

logger = logging.getLogger(__name__)

PRELOADED_BACKENDS = {"rapidocr", "tesseract"}

_warmed: weakref.WeakSet = weakref.WeakSet()  # engines whose first inference has run
_warm_lock = threading.Lock()


def preload_default_engine(
    config: AppConfig, on_done: Callable[[bool], None] | None = None
) -> threading.Thread | None:
    """Start loading ``ocr.engine`` on a daemon thread; None when it is not preloaded.

    ``on_done(loaded)`` is called on that thread when the load has ended.
    """
    entry = config.models.get(config.ocr.engine)
    if entry is None or entry.backend not in PRELOADED_BACKENDS or not entry.enabled:
        return None
    thread = threading.Thread(
        target=_load_and_warm, args=(config, on_done), name="ocr-engine-preload", daemon=True
    )
    thread.start()
    return thread


def _load_and_warm(config: AppConfig, on_done: Callable[[bool], None] | None) -> None:
    loaded = False
    try:
        _warm(create_ocr_engine(config.ocr.engine, config))
    except AppError as exc:  # not installed here: the OCR page says so when it is used
        logger.info("OCR engine %s not preloaded: %s", config.ocr.engine, exc.message)
    except Exception:  # noqa: BLE001 - a failed preload only means a slower first page
        logger.exception("preloading OCR engine %s failed", config.ocr.engine)
    else:
        loaded = True
        logger.info("OCR engine %s preloaded", config.ocr.engine)
    if on_done is not None:
        on_done(loaded)


def _warm(engine: OcrEngine) -> None:
    """The first inference sets up the runtime's kernels; once per engine is enough."""
    with _warm_lock:
        if engine in _warmed:
            return
        _warmed.add(engine)
    engine.ocr(_warm_up_image())


def _warm_up_image() -> Image.Image:
    image = Image.new("RGB", (320, 96), "white")
    ImageDraw.Draw(image).text((12, 36), "TOTAL 12.50", fill="black")
    return image
