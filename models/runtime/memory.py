"""Memory arithmetic for loaded models: what a checkpoint needs, which budget it uses.

Estimates come from the weight files on disk (sizes, safetensors headers,
config.json), never from loading anything: the manager admits a model on them
before it loads. They are bookkeeping, not measurements.

torch is never imported here: GPU facts are read only when the loaders have
already imported it (``models.runtime.gpu``).
"""

from __future__ import annotations

import gc
import json
import logging
import struct
from pathlib import Path
from typing import Any

from models.runtime.gpu import cuda_in_use

logger = logging.getLogger(__name__)

GIB = 1024**3
VRAM_BUDGET_SHARE = 0.9  # of each GPU's total memory
RUNTIME_OVERHEAD = 1.2  # buffers, activations, allocator slack on top of the weights
# bitsandbytes quantizes Linear layers; embeddings, norms and lm_head stay in the
# compute dtype. In small VLMs they are roughly a tenth of the parameters.
UNQUANTIZED_SHARE = 0.1
QUANTIZED_BYTES_PER_PARAM = {"8bit": 1.0, "4bit": 0.5}
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8}
_MAX_SAFETENSORS_HEADER = 100 * 1024**2
# device_map values that let accelerate place the model: on the GPU when there is one.
_PLACED_BY_ACCELERATE = {"auto", "balanced", "balanced_low_0", "sequential"}


# --- estimates ---------------------------------------------------------------------------


def estimate_model_bytes(path: Path, dtype: str, quantization: str) -> int:
    """Memory a model in ``path`` needs once loaded with ``dtype`` and ``quantization``.

    From the weight files' sizes and the stored dtype (safetensors headers, else
    config.json), scaled to the target dtype ("auto" keeps the stored one) or to
    8-/4-bit, plus ``RUNTIME_OVERHEAD``. 0 when the folder holds no weight files.
    """
    files = weight_files(Path(path))
    stored_bytes = sum(f.stat().st_size for f in files)
    if stored_bytes == 0:
        return 0
    config = _read_config(Path(path))
    if config.get("quantization_config"):
        # A pre-quantized checkpoint (bnb, AWQ, GPTQ) loads at the size it is stored.
        return int(stored_bytes * RUNTIME_OVERHEAD)
    params = _safetensors_parameter_count(files) or stored_bytes / _stored_dtype_bytes(config)
    stored_per_param = stored_bytes / params
    per_param = DTYPE_BYTES.get(dtype, stored_per_param)  # "auto" keeps what is stored
    if quantization in QUANTIZED_BYTES_PER_PARAM:
        quantized = QUANTIZED_BYTES_PER_PARAM[quantization]
        per_param = (1 - UNQUANTIZED_SHARE) * quantized + UNQUANTIZED_SHARE * per_param
    return int(params * per_param * RUNTIME_OVERHEAD)


def weight_files(folder: Path) -> list[Path]:
    """The files transformers would load: *.safetensors, else *.bin checkpoints."""
    if not folder.is_dir():
        return []
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors
    return sorted(p for p in folder.glob("*.bin") if p.name != "training_args.bin")


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stored_dtype_bytes(config: dict[str, Any]) -> float:
    """Bytes per parameter the checkpoint was saved with, per config.json."""
    for section in (config, config.get("text_config") or {}):
        for key in ("dtype", "torch_dtype"):
            value = section.get(key) if isinstance(section, dict) else None
            if isinstance(value, str) and value.removeprefix("torch.") in DTYPE_BYTES:
                return DTYPE_BYTES[value.removeprefix("torch.")]
    return 4  # checkpoints saved without a dtype were float32 by convention


def _safetensors_parameter_count(files: list[Path]) -> int | None:
    """Exact parameter count from safetensors headers; None if any file is not one."""
    total = 0
    for path in files:
        count = _safetensors_file_parameters(path) if path.suffix == ".safetensors" else None
        if count is None:
            return None
        total += count
    return total or None


def _safetensors_file_parameters(path: Path) -> int | None:
    """Elements in one safetensors file, read from its JSON header (8-byte length first)."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if not 0 < length <= min(_MAX_SAFETENSORS_HEADER, path.stat().st_size - 8):
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None
    if not isinstance(header, dict):
        return None
    count = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        try:
            elements = 1
            for dim in tensor["shape"]:
                elements *= int(dim)
        except (TypeError, KeyError, ValueError):
            return None
        count += elements
    return count


# --- memory pools ------------------------------------------------------------------------


def memory_pool(device: str) -> str:
    """Which budget a model on ``device`` counts against: "ram" or "cuda:N"."""
    name = device.strip().lower()
    if name.startswith("cuda"):
        index = name.partition(":")[2] or "0"
        return f"cuda:{index}"
    if name in _PLACED_BY_ACCELERATE and cuda_in_use() is not None:
        return "cuda:0"
    return "ram"


def default_vram_budget(pool: str) -> int | None:
    """90% of the card behind ``pool``; None (no limit known) without torch+CUDA."""
    cuda = cuda_in_use()
    if cuda is None:
        return None
    try:
        total = cuda.get_device_properties(int(pool.split(":")[1])).total_memory
    except Exception:
        return None
    return int(total * VRAM_BUDGET_SHARE)


def free_memory() -> None:
    """Collect garbage and hand cached GPU blocks back, so the memory shows as free."""
    gc.collect()
    cuda = cuda_in_use()
    if cuda is not None:
        try:
            cuda.empty_cache()
        except Exception as exc:
            logger.debug("torch.cuda.empty_cache failed: %s", exc)


def format_bytes(count: float) -> str:
    if count >= GIB / 10:
        return f"{count / GIB:.1f} GiB"
    return f"{count / 1024**2:.0f} MiB"


def pool_name(pool: str) -> str:
    """The pool as a sentence names it: "RAM" or "GPU memory on cuda:N"."""
    return "RAM" if pool == "ram" else f"GPU memory on {pool}"
