"""Catalog id -> engine: the one place that turns a profile entry into an object.

Backends are imported lazily, so listing the catalog or running RapidOCR never
imports torch or transformers.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from models.config import AppConfig, ModelEntry
from models.ocr_base import OcrEngine
from utils.errors import ModelUnavailable


@dataclass(frozen=True)
class EngineStatus:
    """Whether an OCR engine can run here, and what to do if it cannot."""

    model_id: str
    display_name: str
    available: bool
    detail: str


_TESSERACT_ENGINES: dict[str, OcrEngine] = {}
_LOCK = threading.Lock()


def ocr_model_ids(config: AppConfig) -> list[str]:
    """Catalog entries that can read a page (task ocr or both), default engine first."""
    ids = [key for key, m in config.models.items() if m.task != "chat" and m.enabled]
    return sorted(ids, key=lambda key: key != config.ocr.engine)


def create_ocr_engine(model_id: str, config: AppConfig) -> OcrEngine:
    """The shared engine for a catalog id; raises ``ModelUnavailable`` with the fix."""
    entry = _entry(model_id, config)
    if entry.backend == "rapidocr":
        from models.ocr_rapid import get_rapidocr_engine

        return get_rapidocr_engine(config.ocr.rapidocr)
    if entry.backend == "tesseract":
        return _tesseract_engine(config)
    raise ModelUnavailable(
        f"'{entry.display_name}' cannot be used as an OCR engine in this version",
        hint="choose RapidOCR or Tesseract; VLM engines arrive with the VLM backends",
    )


def ocr_engine_status(model_id: str, config: AppConfig) -> EngineStatus:
    """Availability without loading anything heavy (RapidOCR: files present)."""
    entry = _entry(model_id, config)
    available, detail = _probe(entry, config)
    return EngineStatus(model_id, entry.display_name, available, detail)


def _probe(entry: ModelEntry, config: AppConfig) -> tuple[bool, str]:
    if entry.backend == "rapidocr":
        return _rapidocr_status()
    if entry.backend == "tesseract":
        from models.ocr_tesseract import tesseract_status

        return tesseract_status(config.ocr.tesseract.tesseract_cmd)
    return False, "VLM OCR engines are not available in this version"


def _rapidocr_status() -> tuple[bool, str]:
    """Package and bundled weights present, found without importing rapidocr (slow)."""
    from models.ocr_rapid import CLS_MODEL_FILE, DET_MODEL_FILE, REC_MODEL_FILE

    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        return False, "RapidOCR is not installed — pip install rapidocr==3.10.0 onnxruntime"
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime is not installed — pip install onnxruntime"
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    missing = [
        f for f in (DET_MODEL_FILE, REC_MODEL_FILE, CLS_MODEL_FILE) if not (models / f).is_file()
    ]
    if missing:
        return (
            False,
            f"RapidOCR weights missing ({', '.join(missing)}) — reinstall rapidocr==3.10.0",
        )
    return True, f"RapidOCR with bundled PP-OCRv6 weights in {models}"


def _tesseract_engine(config: AppConfig) -> OcrEngine:
    from models.ocr_tesseract import TesseractEngine

    key = config.ocr.tesseract.model_dump_json()
    with _LOCK:
        if key not in _TESSERACT_ENGINES:
            _TESSERACT_ENGINES[key] = TesseractEngine(config.ocr.tesseract)
        return _TESSERACT_ENGINES[key]


def _entry(model_id: str, config: AppConfig) -> ModelEntry:
    entry = config.models.get(model_id)
    if entry is None:
        known = ", ".join(ocr_model_ids(config))
        raise ModelUnavailable(
            f"no model '{model_id}' in the active profile", hint=f"use one of: {known}"
        )
    return entry
