"""Catalog id -> engine: the one place that turns a profile entry into an object.

Backends are imported lazily, so listing the catalog or running RapidOCR never
imports torch or transformers.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from models.chat.types import ChatBackend
from models.config import AppConfig, ModelEntry
from models.ocr.base import OcrEngine
from models.options import Characters, RapidOcrOptions
from utils.errors import ModelUnavailable


class Availability(BaseModel):
    """Whether a model or engine can run here: what was found, or what to do if it cannot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


def chat_model_ids(config: AppConfig) -> list[str]:
    """Catalog entries that can chat (task chat or both)."""
    return [key for key, m in config.models.items() if m.task != "ocr" and m.enabled]


def rapidocr_options(config: AppConfig, characters: Characters | None = None) -> RapidOcrOptions:
    """The profile's RapidOCR options, with one run's choice of ``characters`` if made."""
    options = config.ocr.rapidocr
    return options.model_copy(update={"characters": characters}) if characters else options


def create_ocr_engine(
    model_id: str,
    config: AppConfig,
    preset: str = "text",
    characters: Characters | None = None,
) -> OcrEngine:
    """The shared engine for a catalog id; raises ``ModelUnavailable`` with the fix.

    ``preset`` picks the prompt when the engine is a VLM (text, markdown, table);
    ``characters`` overrides what RapidOCR may write ("ascii" or "all") for this run.
    """
    entry = _entry(model_id, config)
    if entry.backend == "rapidocr":
        from models.ocr.rapid import get_rapidocr_engine

        return get_rapidocr_engine(rapidocr_options(config, characters))
    if entry.backend == "tesseract":
        return _tesseract_engine(config)
    if entry.task == "chat":
        raise ModelUnavailable(
            f"'{entry.display_name}' is a chat model, not an OCR engine",
            hint="set `task: both` for it in the profile to use it on the OCR page",
        )
    from models.ocr.vlm import VlmOcrEngine

    return VlmOcrEngine(model_id, create_chat_backend(model_id, config), entry, preset=preset)


def create_chat_backend(model_id: str, config: AppConfig) -> ChatBackend:
    """The shared backend for a chat-capable catalog id (loads an in-process model)."""
    entry = _entry(model_id, config)
    if entry.backend == "transformers":
        from models.chat.hf_loading import load_backend

        return load_backend(model_id, entry, config.runtime)
    if entry.backend == "openai":
        return _openai_backend(model_id, entry, config)
    raise ModelUnavailable(
        f"'{entry.display_name}' is an OCR engine and cannot chat",
        hint="pick a vision-language model in the model list",
    )


_OPENAI_BACKENDS: dict[str, ChatBackend] = {}


def _openai_backend(model_id: str, entry: ModelEntry, config: AppConfig) -> ChatBackend:
    from models.chat.openai_backend import OpenAICompatBackend

    endpoint = config.endpoints[entry.endpoint or ""]
    key = f"{model_id}:{entry.model_dump_json()}:{endpoint.model_dump_json()}"
    with _LOCK:
        if key not in _OPENAI_BACKENDS:
            _OPENAI_BACKENDS[key] = OpenAICompatBackend(model_id, entry, endpoint)
        return _OPENAI_BACKENDS[key]


def availability(model_id: str, config: AppConfig) -> Availability:
    """Whether one catalog entry can run here, without loading anything heavy: engine
    installed, weights in the local cache, or server reachable. Servers are probed,
    so callers cache this."""
    entry = _entry(model_id, config)
    available, detail = _probe(entry, config)
    return Availability(
        model_id=model_id, display_name=entry.display_name, available=available, detail=detail
    )


def availabilities(config: AppConfig, task: Literal["ocr", "chat"]) -> dict[str, Availability]:
    """``availability`` of every entry the task can use, in picker order (catalog id ->
    verdict): what the OCR, Chat and Benchmarks pages offer and explain."""
    model_ids = ocr_model_ids(config) if task == "ocr" else chat_model_ids(config)
    return {model_id: availability(model_id, config) for model_id in model_ids}


def _probe(entry: ModelEntry, config: AppConfig) -> tuple[bool, str]:
    if entry.backend == "rapidocr":
        return _rapidocr_available()
    if entry.backend == "tesseract":
        from models.ocr.tesseract import tesseract_status

        return tesseract_status(config.ocr.tesseract.tesseract_cmd)
    if entry.backend == "transformers":
        return _local_weights_available(entry)
    return _endpoint_available(entry, config)


def _local_weights_available(entry: ModelEntry) -> tuple[bool, str]:
    from models.runtime.hub import resolve_model_path

    try:
        path = resolve_model_path(entry.source or "")
    except ModelUnavailable as exc:
        return False, str(exc)
    return True, f"weights at {path}"


def _endpoint_available(entry: ModelEntry, config: AppConfig) -> tuple[bool, str]:
    from models.chat.openai_client import probe_endpoint

    endpoint = config.endpoints[entry.endpoint or ""]
    status = probe_endpoint(endpoint)
    if not status.reachable or status.error:
        return False, f"{endpoint.base_url}: {status.error or 'unreachable'}"
    served = entry.served_name or entry.source
    if served and status.models and served not in status.models:
        return (
            False,
            f"{endpoint.base_url} does not serve {served} (serves: {', '.join(status.models)})",
        )
    return True, f"{endpoint.base_url} answered in {status.latency_ms:.0f} ms"


def _rapidocr_available() -> tuple[bool, str]:
    """Package and bundled weights present, found without importing rapidocr (slow)."""
    from models.options import CLS_MODEL_FILE, DET_MODEL_FILE, REC_MODEL_FILE

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
    from models.ocr.tesseract import TesseractEngine

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
