"""A model download running in a worker thread, watched from the caller's thread.

huggingface_hub reports progress from its worker threads, where Streamlit
elements cannot be updated; the Models page polls a ``DownloadTracker`` from its
own thread while ``run_download`` waits for the download to end.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from models.config import AppConfig
from models.registry import chat_model_ids

ProgressBar = Callable[[float, str], None]  # (fraction done, text): a page's progress bar
_SIZE_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*([MB])(?![a-z])", re.IGNORECASE)


class DownloadTracker:
    """Bytes written by a download running in another thread, read by the page's progress bar.

    huggingface_hub reports progress from its worker threads, where Streamlit
    elements cannot be updated; the page polls ``fraction`` from its own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0

    def update(self, done: int, total: int) -> None:
        with self._lock:
            self._done = max(self._done, done)
            self._total = max(self._total, total)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self._done, self._total

    def fraction(self) -> float:
        done, total = self.snapshot()
        return min(done / total, 1.0) if total else 0.0


def run_download(
    download: Callable[[str, Callable[[int, int], None]], Path],
    source: str,
    tracker: DownloadTracker,
    on_tick: Callable[[DownloadTracker], None],
    tick_s: float = 0.25,
) -> Path:
    """Run ``download(source, tracker.update)`` in a worker thread, calling ``on_tick`` from
    this thread until it ends; returns its folder or raises its exception."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-download") as pool:
        job = pool.submit(download, source, tracker.update)
        while not job.done():
            on_tick(tracker)
            time.sleep(tick_s)
        on_tick(tracker)
        return job.result()


def download_entry(model_id: str, config: AppConfig, show: ProgressBar) -> Path:
    """Download the weights of the catalog entry ``model_id`` into the Hugging Face cache,
    showing progress through ``show`` (from this thread); returns the folder.

    Raises ``ModelUnavailable`` when offline (HF_HUB_OFFLINE) or the download fails."""
    from models.runtime.hub import download_model

    source = config.models[model_id].source or ""
    show(0.0, f"Starting the download of {source}…")

    def tick(tracker: DownloadTracker) -> None:
        done, total = tracker.snapshot()
        text = f"{done / 1e6:,.0f} / {total / 1e6:,.0f} MB" if total else "Listing files…"
        show(tracker.fraction(), text)

    return run_download(download_model, source, DownloadTracker(), tick)


def recommended_chat_download(config: AppConfig) -> str | None:
    """The in-process chat model of the catalog that is quickest to fetch: the smallest
    size its source names (``SmolVLM-256M`` before ``Qwen2-VL-2B``); None if there is none."""
    in_process = [m for m in chat_model_ids(config) if config.models[m].backend == "transformers"]
    return min(in_process, key=lambda m: _size_in_name(config.models[m].source or ""), default=None)


def _size_in_name(source: str) -> float:
    """Parameters the name announces (``256M`` -> 2.56e8); unknown sizes sort last."""
    found = _SIZE_IN_NAME.findall(source.rsplit("/", 1)[-1])
    if not found:
        return float("inf")
    number, unit = found[-1]
    return float(number) * (1e6 if unit.upper() == "M" else 1e9)
