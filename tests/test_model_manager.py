"""ModelManager: load once across threads, LRU eviction under budgets, OOM handling;
estimate_model_bytes from weight files. No torch: loaders return plain objects."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.numpy import save_file

from models.config import RuntimeSettings
from models.runtime import manager as model_manager
from models.runtime.manager import ModelManager, get_manager
from models.runtime.memory import GIB, estimate_model_bytes, memory_pool
from utils.errors import GenerationError, ModelUnavailable

BIG = 1000 * GIB  # a budget nothing in these tests reaches


class FakeModel:
    """Stands in for a loaded backend; records whether the manager closed it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def loader(name: str, calls: list[str] | None = None):
    def load() -> FakeModel:
        if calls is not None:
            calls.append(name)
        return FakeModel(name)

    return load


def load_fake(manager: ModelManager, key: str, size: int = 0, device: str = "cpu") -> FakeModel:
    return manager.get_or_load(key, loader(key), size, device, label=key.upper())


def loaded_keys(manager: ModelManager) -> set[str]:
    return {info.key for info in manager.loaded()}


@pytest.fixture(autouse=True)
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Budgets must not depend on whether another test imported torch."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)


def fake_torch(total_memory: int) -> SimpleNamespace:
    """The bits of torch the manager reads: cuda availability, card size, empty_cache."""
    emptied: list[bool] = []
    cuda = SimpleNamespace(
        is_available=lambda: True,
        get_device_properties=lambda index: SimpleNamespace(total_memory=total_memory),
        empty_cache=lambda: emptied.append(True),
        emptied=emptied,
    )
    return SimpleNamespace(cuda=cuda)


# --- loading once, concurrency -------------------------------------------------------------


def test_same_key_from_eight_threads_loads_once() -> None:
    manager = ModelManager(2, BIG, None)
    calls: list[str] = []
    start = threading.Barrier(8)

    def slow_load() -> FakeModel:
        calls.append("a")
        time.sleep(0.1)  # long enough that every thread arrives during the load
        return FakeModel("a")

    results: list[FakeModel] = []

    def worker() -> None:
        start.wait()
        results.append(manager.get_or_load("a", slow_load, 10, "cpu", "A"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == ["a"]
    assert len(results) == 8 and all(result is results[0] for result in results)


def test_slow_load_of_one_key_does_not_block_another_key() -> None:
    manager = ModelManager(2, BIG, None)
    release_a = threading.Event()

    def blocked_load() -> FakeModel:
        release_a.wait(10)
        return FakeModel("a")

    thread = threading.Thread(target=manager.get_or_load, args=("a", blocked_load, 0, "cpu", "A"))
    thread.start()
    try:
        time.sleep(0.05)  # let A start loading
        started = time.perf_counter()
        assert load_fake(manager, "b").name == "b"
        assert time.perf_counter() - started < 1
        assert loaded_keys(manager) == {"b"}  # A is still loading
    finally:
        release_a.set()
        thread.join(10)
    assert loaded_keys(manager) == {"a", "b"}


def test_waiters_get_the_loaders_error_and_a_later_call_retries() -> None:
    manager = ModelManager(2, BIG, None)
    calls: list[str] = []
    start = threading.Barrier(4)
    failure = ValueError("bad checkpoint")

    def failing_load() -> FakeModel:
        calls.append("x")
        time.sleep(0.1)
        raise failure

    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            manager.get_or_load("x", failing_load, 0, "cpu", "X")
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == ["x"]
    assert errors == [failure] * 4
    assert manager.loaded() == []
    # Nothing half-registered: the next call loads again.
    assert manager.get_or_load("x", loader("x", calls), 0, "cpu", "X").name == "x"
    assert calls == ["x", "x"]


def test_other_loader_exception_propagates_unchanged() -> None:
    manager = ModelManager(2, BIG, None)

    def broken() -> FakeModel:
        raise KeyError("weights missing")

    with pytest.raises(KeyError, match="weights missing"):
        manager.get_or_load("k", broken, 0, "cpu", "K")
    assert manager.loaded() == []


def test_load_waits_for_room_held_by_a_load_in_flight() -> None:
    manager = ModelManager(1, BIG, None)
    release_a = threading.Event()
    order: list[str] = []

    def blocked_load() -> FakeModel:
        release_a.wait(10)
        order.append("a loaded")
        return FakeModel("a")

    def load_b() -> FakeModel:
        order.append("b loading")
        return FakeModel("b")

    a_thread = threading.Thread(target=manager.get_or_load, args=("a", blocked_load, 0, "cpu", "A"))
    a_thread.start()
    time.sleep(0.05)
    b_thread = threading.Thread(target=manager.get_or_load, args=("b", load_b, 0, "cpu", "B"))
    b_thread.start()
    time.sleep(0.05)
    assert order == []  # B may not start while A holds the only slot
    release_a.set()
    a_thread.join(10)
    b_thread.join(10)
    assert order == ["a loaded", "b loading"]
    assert loaded_keys(manager) == {"b"}


# --- eviction ------------------------------------------------------------------------------


def test_max_loaded_evicts_least_recently_used_and_closes_it() -> None:
    manager = ModelManager(2, BIG, None)
    a = load_fake(manager, "a")
    b = load_fake(manager, "b")
    manager.touch("a")  # b is now the least recently used
    load_fake(manager, "c")
    assert loaded_keys(manager) == {"a", "c"}
    assert b.closed and not a.closed


def test_getting_a_loaded_model_counts_as_use() -> None:
    manager = ModelManager(2, BIG, None)
    calls: list[str] = []
    manager.get_or_load("a", loader("a", calls), 0, "cpu", "A")
    manager.get_or_load("b", loader("b", calls), 0, "cpu", "B")
    manager.get_or_load("a", loader("a", calls), 0, "cpu", "A")  # cached: no load, but used
    manager.get_or_load("c", loader("c", calls), 0, "cpu", "C")
    assert calls == ["a", "b", "c"]
    assert loaded_keys(manager) == {"a", "c"}


def test_ram_budget_evicts_least_recently_used_until_it_fits() -> None:
    manager = ModelManager(5, 10 * GIB, None)
    a = load_fake(manager, "a", 4 * GIB)
    b = load_fake(manager, "b", 4 * GIB)
    c = load_fake(manager, "c", 1 * GIB)
    manager.touch("a")
    load_fake(manager, "d", 4 * GIB)  # 9 + 4 > 10: drop b (LRU); 5 + 4 fits
    assert loaded_keys(manager) == {"a", "c", "d"}
    assert b.closed and not a.closed and not c.closed


def test_budgets_are_per_pool() -> None:
    manager = ModelManager(5, 10 * GIB, 10 * GIB)
    gpu = load_fake(manager, "gpu", 8 * GIB, device="cuda:0")
    load_fake(manager, "cpu", 8 * GIB, device="cpu")  # RAM pool: the GPU model stays
    assert loaded_keys(manager) == {"gpu", "cpu"} and not gpu.closed
    load_fake(manager, "gpu2", 8 * GIB, device="cuda")  # same card: evicts the other GPU model
    assert loaded_keys(manager) == {"cpu", "gpu2"} and gpu.closed


def test_model_that_can_never_fit_names_need_and_budget() -> None:
    manager = ModelManager(2, 2 * GIB, None)
    small = load_fake(manager, "small", GIB)
    with pytest.raises(ModelUnavailable) as caught:
        load_fake(manager, "huge", 6 * GIB)
    message = str(caught.value)
    assert "HUGE needs about 6.0 GiB of RAM" in message and "budget is 2.0 GiB" in message
    assert "quantization: 4bit" in caught.value.hint
    assert loaded_keys(manager) == {"small"} and not small.closed  # nothing evicted in vain


def test_default_ram_budget_is_80_percent_of_available(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = SimpleNamespace(available=10 * GIB)
    monkeypatch.setattr(model_manager.psutil, "virtual_memory", lambda: memory)
    manager = ModelManager(2, None, None)
    load_fake(manager, "fits", 7 * GIB)
    with pytest.raises(ModelUnavailable, match="budget is 8.0 GiB"):
        load_fake(manager, "too-big", 9 * GIB)


def test_default_vram_budget_is_90_percent_of_the_card(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = fake_torch(total_memory=10 * GIB)
    monkeypatch.setitem(sys.modules, "torch", torch)
    manager = ModelManager(2, BIG, None)
    with pytest.raises(ModelUnavailable, match="GPU memory on cuda:0.*budget is 9.0 GiB"):
        load_fake(manager, "big", int(9.5 * GIB), device="auto")
    model = load_fake(manager, "ok", 8 * GIB, device="auto")
    assert manager.unload("ok") and model.closed
    assert torch.cuda.emptied  # the CUDA cache was handed back


def test_without_torch_vram_has_no_default_limit() -> None:
    manager = ModelManager(2, GIB, None)
    load_fake(manager, "gpu", 50 * GIB, device="cuda:1")  # nothing known to compare with
    assert loaded_keys(manager) == {"gpu"}


def test_memory_pool_by_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory_pool("cpu") == "ram"
    assert memory_pool("cuda") == "cuda:0"
    assert memory_pool("cuda:1") == "cuda:1"
    assert memory_pool("auto") == "ram"  # torch not imported: assume no GPU
    monkeypatch.setitem(sys.modules, "torch", fake_torch(GIB))
    assert memory_pool("auto") == "cuda:0"
    assert memory_pool("cpu") == "ram"


# --- unloading and OOM ---------------------------------------------------------------------


def test_unload_closes_and_reports() -> None:
    manager = ModelManager(2, BIG, None)
    a = load_fake(manager, "a")
    assert manager.unload("a") is True and a.closed
    assert manager.unload("a") is False
    assert manager.loaded() == []


def test_unload_calls_unload_method_and_survives_a_failing_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class WithUnload:
        unloaded = False

        def unload(self) -> None:
            self.unloaded = True

    class BrokenClose:
        def close(self) -> None:
            raise RuntimeError("already closed")

    manager = ModelManager(3, BIG, None)
    with_unload = manager.get_or_load("u", WithUnload, 0, "cpu", "U")
    manager.get_or_load("b", BrokenClose, 0, "cpu", "B")
    manager.get_or_load("plain", object, 0, "cpu", "Plain")  # no close(): just dropped
    with caplog.at_level(logging.WARNING, logger="models.runtime.manager"):
        assert manager.unload_all() == 3
    assert with_unload.unloaded
    assert "already closed" in caplog.text
    assert manager.loaded() == []


@pytest.mark.parametrize("error_name", ["MemoryError", "OutOfMemoryError"])
def test_loader_out_of_memory_unloads_everything(error_name: str) -> None:
    # torch.OutOfMemoryError is recognised by its class name, torch is never imported.
    error_class = (
        MemoryError if error_name == "MemoryError" else type(error_name, (RuntimeError,), {})
    )
    manager = ModelManager(3, BIG, None)
    a = load_fake(manager, "a")

    def oom() -> FakeModel:
        raise error_class("CUDA out of memory")

    with pytest.raises(GenerationError, match="Out of memory while loading Big") as caught:
        manager.get_or_load("big", oom, 0, "cpu", "Big")
    assert isinstance(caught.value.__cause__, error_class)
    assert caught.value.hint and "4bit" in caught.value.hint
    assert manager.loaded() == [] and a.closed
    assert load_fake(manager, "again").name == "again"  # the manager keeps working


def test_handle_oom_unloads_the_key() -> None:
    manager = ModelManager(2, BIG, None)
    a = load_fake(manager, "a")
    load_fake(manager, "b")
    manager.handle_oom("a")
    assert a.closed and loaded_keys(manager) == {"b"}
    manager.handle_oom("not-loaded")  # frees memory, raises nothing


def test_loaded_info_describes_each_model() -> None:
    manager = ModelManager(2, BIG, None)
    load_fake(manager, "a", 123, device="cpu")
    time.sleep(0.01)
    load_fake(manager, "b", 456, device="cuda:0")
    infos = manager.loaded()
    assert [info.key for info in infos] == ["b", "a"]  # most recently used first
    b = infos[0]
    assert (b.label, b.device, b.bytes) == ("B", "cuda:0", 456)
    assert b.load_seconds >= 0
    assert datetime.fromisoformat(b.loaded_at).tzinfo is not None
    infos[0].bytes = 0  # a copy: the manager's records are not touched
    assert manager.loaded()[0].bytes == 456


# --- the process-wide manager --------------------------------------------------------------


def test_get_manager_is_a_singleton_reconfigured_on_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_manager, "_MANAGER", None)
    monkeypatch.setattr(model_manager, "_MANAGER_LIMITS", None)
    manager = get_manager(RuntimeSettings(max_loaded_models=3, ram_budget_gb=100))
    assert get_manager(RuntimeSettings(max_loaded_models=3, ram_budget_gb=100)) is manager
    for key in "abc":
        load_fake(manager, key, GIB)
    manager.touch("a")
    assert get_manager(RuntimeSettings(max_loaded_models=1, ram_budget_gb=100)) is manager
    assert loaded_keys(manager) == {"a"}  # the new limit keeps only the most recent
    get_manager(RuntimeSettings(max_loaded_models=3, ram_budget_gb=0.5))
    assert manager.loaded() == []  # a 1 GiB model is over the new 0.5 GiB budget


# --- estimates -----------------------------------------------------------------------------


def write_model_folder(folder: Path, config: dict, weights: dict[str, int]) -> Path:
    """config.json plus weight files of the given sizes (sparse, not real tensors)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for name, size in weights.items():
        with (folder / name).open("wb") as handle:
            handle.truncate(size)
    return folder


@pytest.fixture
def bf16_folder(tmp_path: Path) -> Path:
    return write_model_folder(
        tmp_path / "bf16", {"torch_dtype": "bfloat16"}, {"model.safetensors": 2_000_000}
    )


def test_estimate_scales_stored_bf16_to_the_target(bf16_folder: Path) -> None:
    auto = estimate_model_bytes(bf16_folder, "auto", "none")
    assert auto == pytest.approx(2_000_000 * 1.2)
    assert estimate_model_bytes(bf16_folder, "bfloat16", "none") == auto
    assert estimate_model_bytes(bf16_folder, "float16", "none") == auto
    assert estimate_model_bytes(bf16_folder, "float32", "none") == pytest.approx(2 * auto)
    eight = estimate_model_bytes(bf16_folder, "auto", "8bit")
    four = estimate_model_bytes(bf16_folder, "auto", "4bit")
    assert 0.45 < eight / auto < 0.65
    assert 0.25 < four / auto < 0.4
    assert four < eight


def test_estimate_reads_transformers5_dtype_and_nested_text_config(tmp_path: Path) -> None:
    weights = {"model-00001-of-00002.safetensors": 600, "model-00002-of-00002.safetensors": 400}
    top = write_model_folder(tmp_path / "top", {"dtype": "float32"}, weights)
    nested = write_model_folder(
        tmp_path / "nested", {"text_config": {"torch_dtype": "float16"}}, weights
    )
    assert estimate_model_bytes(top, "bfloat16", "none") == pytest.approx(500 * 1.2)
    assert estimate_model_bytes(nested, "float32", "none") == pytest.approx(2000 * 1.2)


def test_estimate_counts_parameters_from_safetensors_headers(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "real", {"torch_dtype": "bfloat16"}, {})
    # The header says float32 whatever config.json claims: 3000 parameters.
    save_file(
        {"a": np.zeros((10, 100), np.float32), "b": np.zeros(2000, np.float32)},
        str(folder / "model.safetensors"),
    )
    assert estimate_model_bytes(folder, "float16", "none") == pytest.approx(3000 * 2 * 1.2)


def test_estimate_keeps_prequantized_checkpoints_at_stored_size(tmp_path: Path) -> None:
    config = {"torch_dtype": "float16", "quantization_config": {"quant_method": "awq"}}
    folder = write_model_folder(tmp_path / "awq", config, {"model.safetensors": 1000})
    assert estimate_model_bytes(folder, "float32", "4bit") == 1200


def test_estimate_uses_bin_checkpoints_and_ignores_training_args(tmp_path: Path) -> None:
    weights = {"pytorch_model.bin": 1000, "training_args.bin": 10_000}
    folder = write_model_folder(tmp_path / "bin", {"torch_dtype": "float16"}, weights)
    assert estimate_model_bytes(folder, "auto", "none") == 1200


def test_estimate_without_weights_is_zero(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "empty", {"torch_dtype": "float16"}, {})
    assert estimate_model_bytes(folder, "auto", "none") == 0
    assert estimate_model_bytes(tmp_path / "missing", "auto", "none") == 0
