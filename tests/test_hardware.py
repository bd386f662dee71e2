"""Hardware detection (on faked torch facts and on this machine) and profile advice."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from models.config import REPO_ROOT
from models.runtime import gpu as gpu_probe
from models.runtime.gpu import GpuDevice, gpu_facts_from_torch
from utils.system.hardware import (
    GIB,
    HardwareFacts,
    detect_hardware,
    process_memory,
    recommend_profile,
)


def facts(*gpus: tuple[str, float, tuple[int, int]], mps: bool = False) -> HardwareFacts:
    return HardwareFacts(
        cpu_logical_cores=8,
        ram_total_bytes=32 * GIB,
        ram_available_bytes=20 * GIB,
        cuda_devices=[
            GpuDevice(index=i, name=name, total_vram_bytes=int(gib * GIB), compute_capability=cc)
            for i, (name, gib, cc) in enumerate(gpus)
        ],
        mps_available=mps,
    )


def fake_torch(*gpus: tuple[str, int, int, int], cuda: str | None = "13.0", mps: bool = False):
    """What detection reads from torch: cuda.*, version.cuda, backends.mps."""
    props = [SimpleNamespace(name=n, total_memory=m, major=a, minor=b) for n, m, a, b in gpus]
    return SimpleNamespace(
        __version__="2.14.1",
        version=SimpleNamespace(cuda=cuda),
        cuda=SimpleNamespace(
            is_available=lambda: bool(props),
            device_count=lambda: len(props),
            get_device_properties=lambda index: props[index],
        ),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)),
    )


def test_blackwell_card_gets_the_blackwell_profile() -> None:
    advice = recommend_profile(facts(("NVIDIA GeForce RTX 5080", 15.9, (12, 0))))
    assert advice.profile_file == "config_blackwell_optimized.yaml"
    assert "sm_120" in advice.reason and "RTX 5080" in advice.reason


def test_small_gpu_gets_the_optimized_profile() -> None:
    advice = recommend_profile(facts(("NVIDIA GeForce RTX 3070", 8, (8, 6))))
    assert advice.profile_file == "config_optimized.yaml"
    assert "under 16 GB" in advice.reason


def test_large_non_blackwell_gpu_gets_the_optimized_profile_and_says_why() -> None:
    advice = recommend_profile(facts(("NVIDIA GeForce RTX 4090", 24, (8, 9))))
    assert advice.profile_file == "config_optimized.yaml"
    assert "not a Blackwell card" in advice.reason


def test_no_gpu_gets_the_cpu_profile() -> None:
    advice = recommend_profile(facts())
    assert advice.profile_file == "config.yaml"
    assert "no CUDA GPU" in advice.reason


def test_apple_mps_gets_the_cpu_profile_and_says_why() -> None:
    advice = recommend_profile(facts(mps=True))
    assert advice.profile_file == "config.yaml"
    assert "MPS" in advice.reason


def test_the_largest_gpu_decides() -> None:
    advice = recommend_profile(
        facts(("Quadro T1000", 4, (7, 5)), ("NVIDIA GeForce RTX 5090", 31.4, (12, 0)))
    )
    assert advice.profile_file == "config_blackwell_optimized.yaml"


@pytest.mark.parametrize("mps", [False, True])
@pytest.mark.parametrize("gpu", [None, ("A", 8, (8, 6)), ("B", 40, (8, 0)), ("C", 16, (12, 0))])
def test_every_recommended_profile_ships(gpu, mps: bool) -> None:
    advice = recommend_profile(facts(gpu, mps=mps) if gpu else facts(mps=mps))
    assert (REPO_ROOT / advice.profile_file).is_file()


def test_gpu_facts_are_read_from_torch() -> None:
    gpu = gpu_facts_from_torch(
        fake_torch(("NVIDIA GeForce RTX 5070", 12 * GIB, 12, 0), ("Tesla T4", 15 * GIB, 7, 5))
    )
    assert [(d.index, d.name, d.capability_label) for d in gpu.cuda_devices] == [
        (0, "NVIDIA GeForce RTX 5070", "12.0"),
        (1, "Tesla T4", "7.5"),
    ]
    assert gpu.cuda_devices[1].total_vram_bytes == 15 * GIB
    assert gpu.torch_cuda_version == "13.0" and gpu.gpu_note is None


def test_cpu_only_torch_is_noted() -> None:
    gpu = gpu_facts_from_torch(fake_torch(cuda=None, mps=True))
    assert gpu.cuda_devices == [] and gpu.mps_available
    assert "CPU-only build" in gpu.gpu_note


def test_a_broken_cuda_setup_becomes_a_note() -> None:
    torch = fake_torch(("X", GIB, 8, 0))

    def broken(index: int):
        raise RuntimeError("CUDA driver version is insufficient")

    torch.cuda.get_device_properties = broken
    gpu = gpu_facts_from_torch(torch)
    assert gpu.cuda_devices == []
    assert "insufficient" in gpu.gpu_note


def test_detect_hardware_reads_gpus_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    torch = fake_torch(("NVIDIA H100", 80 * GIB, 9, 0))
    counted = torch.cuda.device_count
    torch.cuda.device_count = lambda: calls.append(1) or counted()
    gpu_probe.detect_gpus.cache_clear()
    monkeypatch.setitem(sys.modules, "torch", torch)
    try:
        first, second = detect_hardware(), detect_hardware()
    finally:
        gpu_probe.detect_gpus.cache_clear()
    assert first.cuda_devices[0].name == "NVIDIA H100"
    assert second.cuda_devices == first.cuda_devices
    assert len(calls) == 1
    assert first.cpu_logical_cores >= 1 and first.ram_total_bytes >= first.ram_available_bytes > 0


def test_detect_hardware_on_this_machine() -> None:
    import torch

    found = detect_hardware()
    expected = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert len(found.cuda_devices) == expected
    assert found.torch_version == torch.__version__
    assert recommend_profile(found).profile_file.endswith(".yaml")


def test_process_memory_is_measured() -> None:
    used = process_memory()
    assert used.ram_rss_bytes > 10 * 1024**2
