"""Loading a transformers model for the chat backend: plan, keyword arguments, errors.

``load_backend`` is the entry point: it finds the shared backend in the process-wide
``ModelManager`` (shared by every browser session, evicted LRU under the memory
budget), or loads processor and model from local files only. Model quirks are
config fields, not code:

- pixel budget: ``min_pixels`` / ``max_pixels`` go to image processors that
  declare them (the Qwen-VL family) and are ignored by the others;
- precision, placement, quantization, attention kernel: ``dtype``,
  ``device_map``, ``quantization``, ``attn_implementation``;
- which Auto class: ``auto_class`` (``AutoModelForImageTextToText`` by default).

dtype "auto" keeps the checkpoint's stored precision, except on the CPU where a
float16 checkpoint is upcast to float32: many CPU kernels are missing or slow
in float16, and a half-precision CPU run can overflow to NaN/inf. bfloat16
checkpoints stay bfloat16 on the CPU (supported there, half the memory).

transformers and torch are imported inside functions only (≈6 s at import).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from models.chat.hf_backend import BACKEND_NAME, HFVisionBackend
from models.config import ModelEntry, RuntimeSettings
from utils.errors import ModelUnavailable

logger = logging.getLogger(__name__)

# Entry fields that change what gets loaded; a change means another model in memory.
# The others (generation defaults, ocr_style, prompts, names) apply without reloading.
LOAD_FIELDS = frozenset(
    {
        "source",
        "dtype",
        "device_map",
        "quantization",
        "attn_implementation",
        "auto_class",
        "trust_remote_code",
        "min_pixels",
        "max_pixels",
    }
)


def backend_key(model_id: str, entry: ModelEntry) -> str:
    """The manager key: the catalog id plus a hash of the fields that shape the load."""
    fields = entry.model_dump(mode="json", include=set(LOAD_FIELDS))
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return f"{model_id}@{digest}"


def load_backend(model_id: str, entry: ModelEntry, runtime: RuntimeSettings) -> HFVisionBackend:
    """The shared backend for ``entry``, loading it (no network) if nobody has yet.

    Raises ``ModelUnavailable`` when the model is not on disk (the hint names
    ``python cli.py models download <source>``), cannot be loaded, or cannot fit
    the memory budget; ``GenerationError`` when loading runs out of memory.
    """
    from models.runtime.hub import resolve_model_path
    from models.runtime.manager import get_manager
    from models.runtime.memory import estimate_model_bytes

    if entry.backend != BACKEND_NAME or not entry.source:
        raise ModelUnavailable(
            f"'{model_id}' is not a transformers model (backend: {entry.backend})",
            hint="use the backend its profile entry names",
        )
    manager = get_manager(runtime)
    key = backend_key(model_id, entry)
    backend = manager.get_loaded(key)  # every chat turn lands here: skip the disk look-ups
    if backend is not None:
        backend.entry = entry
        return backend
    path = resolve_model_path(entry.source)
    plan = plan_load(entry, path)
    backend = manager.get_or_load(
        key,
        lambda: load_hf_backend(model_id, entry, path, plan, lambda: manager.handle_oom(key)),
        estimate_bytes=estimate_model_bytes(path, plan.dtype, entry.quantization),
        device=plan.device_map,
        label=entry.display_name,
    )
    # Same load fields, so the same weights: newer generation defaults apply at once.
    backend.entry = entry
    return backend


@dataclass(frozen=True)
class LoadPlan:
    """How a model is loaded on this machine, resolved from its entry."""

    device_map: str
    dtype: str  # "auto" or a torch dtype name
    on_gpu: bool


def plan_load(entry: ModelEntry, path: Path) -> LoadPlan:
    """Placement and precision for ``entry`` here: CPU-only machines get ``device_map="cpu"``
    (so bitsandbytes runs its CPU kernels) and float16 checkpoints upcast to float32."""
    import torch

    on_gpu = torch.cuda.is_available() and entry.device_map != "cpu"
    device_map = entry.device_map if on_gpu else "cpu"
    dtype = entry.dtype
    if dtype == "auto" and not on_gpu and stored_dtype(path) == "float16":
        dtype = "float32"
    return LoadPlan(device_map=device_map, dtype=dtype, on_gpu=on_gpu)


def stored_dtype(path: Path) -> str | None:
    """The precision config.json says the weights were saved in, if it says."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for section in (config, config.get("text_config") or {}):
        for key in ("dtype", "torch_dtype"):
            value = section.get(key)
            if isinstance(value, str):
                return value.removeprefix("torch.")
    return None


def load_hf_backend(
    model_id: str,
    entry: ModelEntry,
    path: Path,
    plan: LoadPlan,
    on_out_of_memory: Callable[[], None] | None = None,
) -> HFVisionBackend:
    """Processor + model from ``path`` (local files only), wrapped as a backend."""
    processor = _load_processor(path, entry)
    apply_pixel_budget(processor, entry.min_pixels, entry.max_pixels)
    model = _load_model(path, entry, plan)
    return HFVisionBackend(model_id, entry, model, processor, on_out_of_memory)


def _load_processor(path: Path, entry: ModelEntry) -> Any:
    from transformers import AutoProcessor

    with _load_errors(entry, "processor"):
        return AutoProcessor.from_pretrained(
            path, local_files_only=True, trust_remote_code=entry.trust_remote_code
        )


def _load_model(path: Path, entry: ModelEntry, plan: LoadPlan) -> Any:
    import transformers

    auto_class = getattr(transformers, entry.auto_class)
    with _load_errors(entry, "model"):
        model = auto_class.from_pretrained(path, **model_load_kwargs(entry, plan))
    return model.eval()


def model_load_kwargs(entry: ModelEntry, plan: LoadPlan) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for ``entry`` under ``plan``."""
    import torch

    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "trust_remote_code": entry.trust_remote_code,
        "device_map": plan.device_map,
        "dtype": plan.dtype if plan.dtype == "auto" else getattr(torch, plan.dtype),
    }
    if entry.attn_implementation:
        kwargs["attn_implementation"] = entry.attn_implementation
    if entry.quantization != "none":
        kwargs["quantization_config"] = quantization_config(entry.quantization, plan)
    return kwargs


def quantization_config(quantization: str, plan: LoadPlan) -> Any:
    """bitsandbytes settings: 8-bit LLM.int8, or 4-bit NF4 with double quantization."""
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=_compute_dtype(plan),
    )


def _compute_dtype(plan: LoadPlan) -> Any:
    """The dtype 4-bit weights are dequantized to for matmuls."""
    import torch

    if plan.dtype != "auto":
        return getattr(torch, plan.dtype)
    if not plan.on_gpu:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def _load_errors(entry: ModelEntry, what: str) -> Iterator[None]:
    """Loader failures as ``ModelUnavailable`` saying what to do. Out-of-memory passes
    through: the manager turns it into ``GenerationError`` and frees memory."""
    try:
        yield
    except ImportError as exc:
        raise ModelUnavailable(
            f"cannot load the {what} of {entry.source}: {exc}",
            hint="install the package it names (e.g. pip install bitsandbytes / flash-attn)",
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(
            f"cannot load the {what} of {entry.source}: {exc}",
            hint=f"check that it is a complete transformers checkpoint "
            f"(`python cli.py models download {entry.source}`); a newer transformers, "
            "another `auto_class`, or `trust_remote_code: true` may be needed",
        ) from exc


def apply_pixel_budget(processor: Any, min_pixels: int | None, max_pixels: int | None) -> bool:
    """Set the image processor's pixel range if it has one (Qwen-VL style); else ignore.

    Such processors resize every image so its area lies in ``[min, max]`` pixels and
    keep the range in ``size`` as shortest_edge / longest_edge. Returns whether set.
    """
    if min_pixels is None and max_pixels is None:
        return False
    image_processor = getattr(processor, "image_processor", None)
    declared = getattr(getattr(image_processor, "valid_kwargs", None), "__annotations__", {})
    if not {"min_pixels", "max_pixels"} <= set(declared):
        logger.info(
            "%s has no pixel budget: min_pixels/max_pixels ignored",
            type(image_processor).__name__,
        )
        return False
    size = image_processor.size
    image_processor.size = replace(
        size,
        shortest_edge=min_pixels or size.shortest_edge,
        longest_edge=max_pixels or size.longest_edge,
    )
    return True
