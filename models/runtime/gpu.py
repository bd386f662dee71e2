"""The one place that asks torch about GPUs, and the one test for "out of memory".

torch costs seconds to import, so only ``detect_gpus`` imports it (the Models
page's hardware tab describes the GPUs even before any model is loaded; once per
process, GPUs do not come and go). Every other probe looks at the torch a model
loader has already imported, and answers "no GPU" otherwise. A broken CUDA setup
(driver/runtime mismatch) also answers "no GPU", or a note saying why, rather
than breaking the caller's bookkeeping.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

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


# --- describing the GPUs ------------------------------------------------------------------


class GpuDevice(BaseModel):
    """One CUDA device as torch reports it."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    name: str
    total_vram_bytes: int = Field(ge=0)
    compute_capability: tuple[int, int]

    @property
    def capability_label(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


class GpuFacts(BaseModel):
    """What ``detect_gpus`` finds: CUDA devices, Apple MPS, the torch build, or why not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cuda_devices: list[GpuDevice] = Field(default_factory=list)
    mps_available: bool = False
    torch_version: str | None = None
    torch_cuda_version: str | None = None
    gpu_note: str | None = None


@functools.cache
def detect_gpus() -> GpuFacts:
    """The GPUs of this machine, importing torch on the first call (seconds) to ask."""
    try:
        import torch
    except ImportError:
        return GpuFacts(gpu_note="torch is not installed, so GPUs cannot be detected")
    return gpu_facts_from_torch(torch)


def gpu_facts_from_torch(torch: Any) -> GpuFacts:
    """CUDA devices and MPS as ``torch`` sees them; a broken driver becomes a note, not a crash."""
    version = getattr(torch, "__version__", None)
    cuda_version = getattr(getattr(torch, "version", None), "cuda", None)
    try:
        devices = _cuda_devices(torch)
    except Exception as exc:  # driver/runtime mismatch, no libcuda: report, keep rendering
        logger.warning("CUDA device query failed: %s", exc)
        return GpuFacts(
            mps_available=_mps_available(torch),
            torch_version=version,
            torch_cuda_version=cuda_version,
            gpu_note=f"CUDA is installed but the devices could not be read: {exc}",
        )
    note = None
    if not devices:
        note = (
            f"torch {version} is a CPU-only build"
            if cuda_version is None
            else "no CUDA device visible (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides them)"
        )
    return GpuFacts(
        cuda_devices=devices,
        mps_available=_mps_available(torch),
        torch_version=version,
        torch_cuda_version=cuda_version,
        gpu_note=note,
    )


def _cuda_devices(torch: Any) -> list[GpuDevice]:
    if not torch.cuda.is_available():
        return []
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            GpuDevice(
                index=index,
                name=str(props.name),
                total_vram_bytes=int(props.total_memory),
                compute_capability=(int(props.major), int(props.minor)),
            )
        )
    return devices


def _mps_available(torch: Any) -> bool:
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    try:
        return bool(mps is not None and mps.is_available())
    except Exception:
        return False


def allocated_vram_bytes() -> dict[str, int]:
    """GPU memory torch has allocated now, per device ("cuda:N"); empty without a loaded
    torch and CUDA (then no model holds any)."""
    vram: dict[str, int] = {}
    cuda = cuda_in_use()
    if cuda is None:
        return vram
    try:
        for index in range(cuda.device_count()):
            vram[f"cuda:{index}"] = int(cuda.memory_allocated(index))
    except Exception as exc:
        logger.debug("cannot read CUDA memory: %s", exc)
    return vram
