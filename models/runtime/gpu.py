"""The one place that asks torch about GPUs, and the one test for "out of memory".

torch costs seconds to import, so nothing here imports it: every probe looks at
the torch a model loader has already imported, and answers "no GPU" otherwise.
A broken CUDA setup (driver/runtime mismatch) also answers "no GPU" rather than
breaking the caller's bookkeeping.
"""

from __future__ import annotations

import sys
from typing import Any

# Loaders sometimes wrap the out-of-memory error once or twice.
_OOM_CHAIN_DEPTH = 3


def loaded_torch() -> Any | None:
    """torch if something already imported it, else None."""
    return sys.modules.get("torch")


def cuda_in_use(*, initialised: bool = False) -> Any | None:
    """``torch.cuda`` when torch is loaded and CUDA is available, else None.

    With ``initialised=True`` it also needs a CUDA context to exist already, so a
    caller that only reports (peak memory, device names) never creates one.
    """
    cuda = getattr(loaded_torch(), "cuda", None)
    try:
        if cuda is None or not cuda.is_available():
            return None
        if initialised and not cuda.is_initialized():
            return None
    except Exception:
        return None
    return cuda


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError or torch's OutOfMemoryError (CUDA / MPS; by name, torch may not be
    loaded), also when a loader wrapped it in another exception."""
    current: BaseException | None = exc
    for _ in range(_OOM_CHAIN_DEPTH):
        if current is None:
            return False
        if isinstance(current, MemoryError) or any(
            cls.__name__ == "OutOfMemoryError" for cls in type(current).__mro__
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
