"""A model download running in a worker thread, watched from the caller's thread.

huggingface_hub reports progress from its worker threads, where Streamlit
elements cannot be updated; the Models page polls a ``DownloadTracker`` from its
own thread while ``run_download`` waits for the download to end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


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
