"""What this machine has (CPU, RAM, CUDA GPUs, Apple MPS) and which profile suits it.

GPU facts come from ``models.runtime.gpu.detect_gpus``, which imports torch
(seconds) on first use and keeps them for the life of the process (GPUs do not
come and go), while RAM is read fresh on every call. Tests pass their own
``HardwareFacts`` to ``recommend_profile`` instead of detecting anything.
"""

from __future__ import annotations

import psutil
from pydantic import BaseModel, ConfigDict, Field

from models.runtime.gpu import GpuDevice, allocated_vram_bytes, detect_gpus

GIB = 1024**3
# Cards sold as "16 GB" report 15.6-16 GiB to CUDA; anything below 15 GiB is a smaller card.
SMALL_GPU_BYTES = 15 * GIB
BLACKWELL_CONSUMER_MAJOR = 12  # RTX 50xx: compute capability 12.0 (sm_120)

CPU_PROFILE = "config.yaml"
OPTIMIZED_PROFILE = "config_optimized.yaml"
BLACKWELL_PROFILE = "config_blackwell_optimized.yaml"


class HardwareFacts(BaseModel):
    """The machine the app runs on, as the Models page shows it."""

    model_config = ConfigDict(extra="forbid")

    cpu_logical_cores: int = Field(ge=1)
    cpu_physical_cores: int | None = None
    ram_total_bytes: int = Field(ge=0)
    ram_available_bytes: int = Field(ge=0)
    cuda_devices: list[GpuDevice] = Field(default_factory=list)
    mps_available: bool = False
    torch_version: str | None = None
    torch_cuda_version: str | None = Field(None, description="CUDA version torch was built for")
    gpu_note: str | None = Field(None, description="why GPU facts are missing, when they are")


class Recommendation(BaseModel):
    """The shipped profile that fits the hardware, and why."""

    model_config = ConfigDict(extra="forbid")

    profile_file: str
    reason: str


def detect_hardware() -> HardwareFacts:
    """CPU cores and RAM now, plus the GPU facts found on the first call in this process."""
    memory = psutil.virtual_memory()
    gpu = detect_gpus()
    return HardwareFacts(
        cpu_logical_cores=psutil.cpu_count(logical=True) or 1,
        cpu_physical_cores=psutil.cpu_count(logical=False),
        ram_total_bytes=memory.total,
        ram_available_bytes=memory.available,
        **gpu.model_dump(),
    )


def recommend_profile(facts: HardwareFacts) -> Recommendation:
    """Which shipped profile to run here; the largest CUDA GPU decides."""
    if not facts.cuda_devices:
        return _without_cuda(facts)
    gpu = max(facts.cuda_devices, key=lambda device: device.total_vram_bytes)
    described = f"{gpu.name} ({gpu.total_vram_bytes / GIB:.0f} GiB, compute capability "
    described += f"{gpu.capability_label})"
    if gpu.compute_capability[0] == BLACKWELL_CONSUMER_MAJOR:
        return Recommendation(
            profile_file=BLACKWELL_PROFILE,
            reason=f"{described} is a Blackwell card (sm_120): bf16 and SDPA attention, "
            "since flash-attn has no wheels for it",
        )
    if gpu.total_vram_bytes < SMALL_GPU_BYTES:
        return Recommendation(
            profile_file=OPTIMIZED_PROFILE,
            reason=f"{described} has under 16 GB: the larger VLMs load 4-/8-bit "
            "(bitsandbytes) so they fit",
        )
    return Recommendation(
        profile_file=OPTIMIZED_PROFILE,
        reason=f"{described} has room, but it is not a Blackwell card, whose profile assumes "
        "sm_120; the optimized profile (fp16, SDPA, 4-/8-bit only for the 7-8B models) runs on "
        "any CUDA GPU — set `quantization: none` for the big ones if they fit unquantized",
    )


def _without_cuda(facts: HardwareFacts) -> Recommendation:
    if facts.mps_available:
        return Recommendation(
            profile_file=CPU_PROFILE,
            reason="Apple GPU (MPS) found, but in-process models run on CUDA or the CPU here "
            "and bitsandbytes quantization needs CUDA: the CPU profile is the one that works; "
            "for speed, serve a VLM with Ollama and use its endpoint",
        )
    return Recommendation(
        profile_file=CPU_PROFILE,
        reason="no CUDA GPU: the CPU profile (RapidOCR by default; VLMs run, slowly, on the "
        "CPU, or on a vLLM / Ollama server through an endpoint)",
    )


class ProcessMemory(BaseModel):
    """What this process holds now: resident RAM, and GPU memory torch has allocated."""

    model_config = ConfigDict(extra="forbid")

    ram_rss_bytes: int = Field(ge=0)
    vram_allocated_bytes: dict[str, int] = Field(default_factory=dict)


def process_memory() -> ProcessMemory:
    """Measured, unlike the model manager's estimates; never imports torch itself."""
    return ProcessMemory(
        ram_rss_bytes=psutil.Process().memory_info().rss,
        vram_allocated_bytes=allocated_vram_bytes(),
    )
