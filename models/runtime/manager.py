"""Loaded models, shared by every session: load once, stay within budgets, free on demand.

A loaded VLM takes gigabytes, and Streamlit runs each browser session in its own
thread, so models live here, process-wide, keyed by the caller (a config hash).
``get_or_load`` loads a key once however many threads ask; before a load it
unloads least-recently-used models until the estimate fits the RAM or GPU
budget and ``max_loaded``. Budgets are bookkeeping on estimates
(``models.runtime.memory``), not measurements: they keep a laptop from swapping
itself to death, they do not replace the OOM handling.

torch is never imported here: GPU facts are read only when the loaders have
already imported it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import psutil

from models.runtime.gpu import is_out_of_memory
from models.runtime.memory import (
    GIB,
    default_vram_budget,
    format_bytes,
    free_memory,
    memory_pool,
    pool_name,
)
from utils.errors import GenerationError, ModelUnavailable

if TYPE_CHECKING:
    from models.config import RuntimeSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
RAM_BUDGET_SHARE = 0.8  # of the RAM available when the manager is created


# --- the manager -------------------------------------------------------------------------


@dataclass
class LoadedModelInfo:
    """One loaded model, as the Models page shows it."""

    key: str
    label: str
    device: str
    bytes: int  # the estimate it was admitted with
    load_seconds: float
    last_used: float  # time.monotonic()
    loaded_at: str  # wall clock, ISO 8601 UTC


@dataclass
class _Entry:
    obj: Any
    info: LoadedModelInfo
    pool: str


@dataclass
class _Pending:
    """A load in flight: its reserved room, and the result other callers wait on."""

    pool: str
    bytes: int
    future: Future = field(default_factory=Future)


class ModelManager:
    """Process-wide registry of loaded models with LRU eviction under budgets.

    One condition variable guards the bookkeeping; loads and releases run
    outside it, so a slow load of one key never blocks users of another.
    """

    def __init__(
        self, max_loaded: int, ram_budget_bytes: int | None, vram_budget_bytes: int | None
    ) -> None:
        self._cond = threading.Condition()
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[str, _Pending] = {}
        self._default_ram_budget = int(psutil.virtual_memory().available * RAM_BUDGET_SHARE)
        self._max_loaded = max_loaded
        self._ram_budget = ram_budget_bytes or self._default_ram_budget
        self._vram_budget = vram_budget_bytes

    # public API

    def configure(
        self, max_loaded: int, ram_budget_bytes: int | None, vram_budget_bytes: int | None
    ) -> None:
        """New limits (the profile changed); unloads LRU models the new limits exclude."""
        with self._cond:
            self._max_loaded = max_loaded
            self._ram_budget = ram_budget_bytes or self._default_ram_budget
            self._vram_budget = vram_budget_bytes
            evicted = self._evict_over_limits()
            self._cond.notify_all()
        self._release(evicted, reason="limits changed")

    def get_or_load(
        self, key: str, load: Callable[[], T], estimate_bytes: int, device: str, label: str
    ) -> T:
        """The object loaded under ``key``, calling ``load`` only if no one has yet.

        Concurrent callers of one key wait for the single load in flight and get
        its object or its exception. Raises ``ModelUnavailable`` if the estimate
        cannot fit the budget even alone, ``GenerationError`` if the load runs
        out of memory; other loader errors propagate unchanged.
        """
        evicted: list[_Entry] = []
        try:
            with self._cond:
                found, ticket, ours = self._claim(key, estimate_bytes, device, label, evicted)
        finally:
            self._release(evicted, reason=f"room for {label}")
        if found is not None:
            return found.obj
        if not ours:
            return ticket.future.result()  # the same object, or the loader's exception
        return self._load(key, load, ticket, device, label)

    def unload(self, key: str) -> bool:
        """Drop ``key`` (closing it); False if it is not loaded."""
        with self._cond:
            entry = self._entries.pop(key, None)
            self._cond.notify_all()
        if entry is None:
            return False
        self._release([entry], reason="unload requested")
        return True

    def unload_all(self) -> int:
        """Drop every loaded model; returns how many there were."""
        with self._cond:
            entries = list(self._entries.values())
            self._entries.clear()
            self._cond.notify_all()
        count = len(entries)
        self._release(entries, reason="unload all")
        return count

    def loaded(self) -> list[LoadedModelInfo]:
        """Snapshots of the loaded models, most recently used first."""
        with self._cond:
            infos = [replace(entry.info) for entry in self._entries.values()]
        return sorted(infos, key=lambda info: info.last_used, reverse=True)

    def get_loaded(self, key: str) -> Any | None:
        """The object already loaded under ``key`` (marked as used), or None.

        Lets callers skip the path and size look-ups ``get_or_load`` needs for a load.
        """
        with self._cond:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.info.last_used = time.monotonic()
            return entry.obj

    def touch(self, key: str) -> None:
        """Mark ``key`` as just used, so LRU eviction picks others first."""
        with self._cond:
            entry = self._entries.get(key)
            if entry is not None:
                entry.info.last_used = time.monotonic()

    def handle_oom(self, key: str) -> None:
        """After an out-of-memory error while using ``key``: unload it and free memory."""
        logger.warning("out of memory with %s: unloading it", key)
        if not self.unload(key):
            free_memory()

    # admission

    def _claim(
        self, key: str, estimate: int, device: str, label: str, evicted: list[_Entry]
    ) -> tuple[_Entry | None, _Pending | None, bool]:
        """Under the lock: (entry, None, False) | (None, in flight, False) | (None, ours, True).

        Evicts LRU models into ``evicted`` until the estimate fits; waits while
        loads in flight hold the room it needs.
        """
        while True:
            entry = self._entries.get(key)
            if entry is not None:
                entry.info.last_used = time.monotonic()
                return entry, None, False
            in_flight = self._pending.get(key)
            if in_flight is not None:
                return None, in_flight, False
            pool = memory_pool(device)
            self._require_fits_alone(pool, estimate, label)
            while not self._fits(pool, estimate) and self._evict_lru(
                pool, self._at_max_loaded(), evicted
            ):
                pass
            if self._fits(pool, estimate):
                ticket = _Pending(pool=pool, bytes=estimate)
                self._pending[key] = ticket
                return None, ticket, True
            self._cond.wait()  # only loads in flight are in the way: wait for one to land

    def _require_fits_alone(self, pool: str, estimate: int, label: str) -> None:
        budget = self._budget(pool)
        if budget is None or estimate <= budget:
            return
        setting = "ram_budget_gb" if pool == "ram" else "vram_budget_gb"
        raise ModelUnavailable(
            f"{label} needs about {format_bytes(estimate)} of {pool_name(pool)}, "
            f"but the budget is {format_bytes(budget)}",
            hint="set `quantization: 4bit` in the model's profile entry, use a smaller model, "
            f"or serve it with vLLM/Ollama (backend: openai); raise runtime.{setting} only if "
            "the machine really has the room",
        )

    def _budget(self, pool: str) -> int | None:
        if pool == "ram":
            return self._ram_budget
        return self._vram_budget or default_vram_budget(pool)

    def _used(self, pool: str) -> int:
        loaded = sum(e.info.bytes for e in self._entries.values() if e.pool == pool)
        return loaded + sum(p.bytes for p in self._pending.values() if p.pool == pool)

    def _at_max_loaded(self) -> bool:
        return len(self._entries) + len(self._pending) >= self._max_loaded

    def _fits(self, pool: str, estimate: int) -> bool:
        if self._at_max_loaded():
            return False
        budget = self._budget(pool)
        return budget is None or self._used(pool) + estimate <= budget

    def _evict_lru(self, pool: str, any_pool: bool, evicted: list[_Entry]) -> bool:
        """Pop the least recently used model of ``pool`` (or of any); False if none is left."""
        candidates = [e for e in self._entries.values() if any_pool or e.pool == pool]
        if not candidates:
            return False
        victim = min(candidates, key=lambda e: e.info.last_used)
        del self._entries[victim.info.key]
        evicted.append(victim)
        return True

    def _evict_over_limits(self) -> list[_Entry]:
        evicted: list[_Entry] = []
        while len(self._entries) > self._max_loaded:
            self._evict_lru("", True, evicted)
        for pool in {e.pool for e in self._entries.values()}:
            budget = self._budget(pool)
            while budget is not None and self._used(pool) > budget:
                if not self._evict_lru(pool, False, evicted):
                    break
        return evicted

    # loading and releasing

    def _load(
        self, key: str, load: Callable[[], T], ticket: _Pending, device: str, label: str
    ) -> T:
        logger.info("loading %s (%s) on %s, ~%s", label, key, device, format_bytes(ticket.bytes))
        started = time.perf_counter()
        try:
            obj = load()
        except BaseException as exc:
            error = self._failed_load_error(exc, label)
            with self._cond:
                del self._pending[key]
                self._cond.notify_all()
            ticket.future.set_exception(error)
            if error is not exc:
                logger.error("out of memory while loading %s: unloading every model", label)
                self.unload_all()
                raise error from exc
            raise
        seconds = time.perf_counter() - started
        info = LoadedModelInfo(
            key=key,
            label=label,
            device=device,
            bytes=ticket.bytes,
            load_seconds=seconds,
            last_used=time.monotonic(),
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._cond:
            del self._pending[key]
            # Re-read the pool: "auto" means the GPU once the loader has imported torch.
            self._entries[key] = _Entry(obj=obj, info=info, pool=memory_pool(device))
            self._cond.notify_all()
        ticket.future.set_result(obj)
        logger.info("loaded %s in %.1f s", label, seconds)
        return obj

    @staticmethod
    def _failed_load_error(exc: BaseException, label: str) -> BaseException:
        """What callers see for a failed load: OOM becomes GenerationError, the rest as is."""
        if not is_out_of_memory(exc):
            return exc
        return GenerationError(
            f"Out of memory while loading {label}",
            hint="set `quantization: 4bit` (or 8bit) in the model's profile entry, use a smaller "
            "model, lower runtime.max_loaded_models, or serve it with vLLM/Ollama",
        )

    @staticmethod
    def _release(entries: list[_Entry], reason: str) -> None:
        """Close and forget ``entries`` (outside the lock), then free the memory."""
        if not entries:
            return
        while entries:
            entry = entries.pop()
            logger.info(
                "unloading %s (%s, ~%s): %s",
                entry.info.label,
                entry.info.key,
                format_bytes(entry.info.bytes),
                reason,
            )
            _close(entry.obj)
            del entry  # the manager's last reference, so gc below can free it
        free_memory()


def _close(obj: Any) -> None:
    """Call the object's own ``close()`` or ``unload()``; a failure there is only logged."""
    for name in ("close", "unload"):
        method = getattr(obj, name, None)
        if callable(method):
            try:
                method()
            except Exception as exc:
                logger.warning("%s.%s() failed: %s", type(obj).__name__, name, exc)
            return


# --- the process-wide manager ------------------------------------------------------------

_MANAGER: ModelManager | None = None
_MANAGER_LIMITS: tuple[int, int | None, int | None] | None = None
_MANAGER_LOCK = threading.Lock()


def get_manager(runtime: RuntimeSettings) -> ModelManager:
    """The one manager of this process, re-configured when ``runtime`` changes."""
    global _MANAGER, _MANAGER_LIMITS
    limits = (
        runtime.max_loaded_models,
        _gib_to_bytes(runtime.ram_budget_gb),
        _gib_to_bytes(runtime.vram_budget_gb),
    )
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = ModelManager(*limits)
        elif limits != _MANAGER_LIMITS:
            _MANAGER.configure(*limits)
        _MANAGER_LIMITS = limits
        return _MANAGER


def _gib_to_bytes(gib: float | None) -> int | None:
    return None if gib is None else int(gib * GIB)
