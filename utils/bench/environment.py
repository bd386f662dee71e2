"""What a benchmark ran on: package versions and hardware for the manifest, and the
process's peak memory for each item record."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

from models.runtime.gpu import cuda_in_use
from utils.bench.records import HardwareInfo

#: Packages whose versions go into the manifest (read from metadata, never imported).
VERSIONED_PACKAGES = (
    "torch",
    "transformers",
    "rapidocr",
    "onnxruntime",
    "pytesseract",
    "pillow",
    "numpy",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def hardware_info() -> HardwareInfo:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = None
    return HardwareInfo(
        platform=platform.platform(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        ram_total_bytes=ram,
        cuda_devices=_cuda_device_names(),
    )


def _cuda_device_names() -> list[str]:
    cuda = cuda_in_use(initialised=True)
    if cuda is None:
        return []
    return [cuda.get_device_name(index) for index in range(cuda.device_count())]


def peak_rss_bytes() -> int | None:
    """The process's peak resident memory so far (its high-water mark, not per item)."""
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0)) or None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def peak_vram_bytes() -> int | None:
    """Peak CUDA memory allocated by this process so far, summed over devices."""
    cuda = cuda_in_use(initialised=True)
    if cuda is None:
        return None
    return sum(cuda.max_memory_allocated(index) for index in range(cuda.device_count()))
