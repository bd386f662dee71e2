"""Poll every server of the profile on a timer and keep the points.

One poller per data folder: app processes (and ``cli.py monitor``) that share a data
folder race for ``<data_dir>/monitor/.locks/poller.lock``; the holder polls, the others
retry each interval and take over when it goes away (the OS drops a dead process's
lock). Pages only read the history, so a browser tab never polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from filelock import FileLock, Timeout

from models.config import AppConfig
from utils.errors import AppError
from utils.monitor.history import MetricsHistory
from utils.monitor.points import RawSample, SampleWindow, ServerPoint
from utils.monitor.scrape import fetch_metrics, metrics_url
from utils.monitor.vllm import parse_vllm_metrics
from utils.storage.locks import lock_path_for

logger = logging.getLogger(__name__)

_MAX_WORKERS = 8
PointsHook = Callable[[list[ServerPoint]], None]


class ServerPoller:
    """Samples the profile's endpoints; ``poll_once`` returns and stores one point each."""

    def __init__(
        self,
        config: AppConfig,
        clock: Callable[[], float] = time.time,
        previous: ServerPoller | None = None,
    ) -> None:
        self.urls = {key: metrics_url(e.base_url) for key, e in config.endpoints.items()}
        self.timeout_s = config.monitor.timeout_s
        self.windows = {
            key: previous.windows[key]
            if previous is not None and previous.urls.get(key) == url
            else SampleWindow(config.monitor.window_s)
            for key, url in self.urls.items()
        }  # a server polled before keeps its samples: its rates go on without a gap
        self.history = MetricsHistory(config.data_dir, int(config.monitor.history_mb * 2**20))
        self.clock = clock

    def poll_once(self) -> list[ServerPoint]:
        if not self.urls:
            return []
        with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(self.urls))) as pool:
            points = list(pool.map(self._point, self.urls))
        for point in points:
            try:
                self.history.append(point)
            except AppError as exc:  # a full or read-only data folder: keep polling
                logger.warning("monitor history not kept: %s", exc)
        return points

    def _point(self, key: str) -> ServerPoint:
        scrape = fetch_metrics(self.urls[key], self.timeout_s)
        at = self.clock()
        if scrape.text is None:
            return ServerPoint(
                at=at,
                endpoint=key,
                up=scrape.up,
                exposes_metrics=scrape.exposes_metrics,
                error=scrape.error,
            )
        try:
            metrics = parse_vllm_metrics(scrape.text)
        except ValueError as exc:
            return ServerPoint(at=at, endpoint=key, up=True, error=f"unreadable /metrics: {exc}")
        window = self.windows[key]
        window.add(RawSample(at, metrics))
        return window.point(key)


class MonitorThread:
    """The background poller of one process: polls while it holds the data folder's
    poller lock, hands each poll's points to ``on_points`` (the alert rules)."""

    def __init__(
        self, config: AppConfig, hook_for: Callable[[AppConfig], PointsHook] | None = None
    ) -> None:
        """``hook_for`` makes the ``on_points`` hook (the alert rules) of a profile;
        ``follow`` calls it again for a new one."""
        self.config = config
        self.poller = ServerPoller(config)
        self.interval_s = config.monitor.interval_s
        self.hook_for = hook_for
        self.on_points = hook_for(config) if hook_for is not None else None
        lock_file = lock_path_for(config.data_dir / "monitor" / "poller")
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(lock_file, timeout=0, thread_local=False)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="server-monitor", daemon=True)

    def start(self) -> MonitorThread:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=self.interval_s + 5)

    def follow(self, config: AppConfig) -> None:
        """Poll the servers and apply the alert rules of ``config`` from the next poll on
        (a server connected or removed while the app runs, a rule edited)."""
        if _monitored(config) == _monitored(self.config):
            return
        self.poller = ServerPoller(config, previous=self.poller)
        self.interval_s = config.monitor.interval_s
        if self.hook_for is not None:
            self.on_points = self.hook_for(config)
        self.config = config
        logger.info("the monitor follows the profile's %d server(s) now", len(self.poller.urls))

    @property
    def leading(self) -> bool:
        return self.lock.is_locked

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                if self.lead():
                    self._poll()
                self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        finally:
            self.release()

    def lead(self) -> bool:
        """Take the data folder's poller lock if it is free; whether this process polls."""
        if self.lock.is_locked:
            return True
        try:
            self.lock.acquire()
        except (Timeout, OSError):
            return False
        logger.info("this process now polls the model servers")
        return True

    def poll(self) -> list[ServerPoint]:
        """One poll now, its points handed to ``on_points`` (call while leading)."""
        poller, on_points = self.poller, self.on_points  # ``follow`` may swap them meanwhile
        points = poller.poll_once()
        if on_points is not None:
            on_points(points)
        return points

    def release(self) -> None:
        if self.lock.is_locked:
            self.lock.release()

    def _poll(self) -> None:
        try:
            self.poll()
        except Exception:  # noqa: BLE001 - the monitor must outlive any one bad poll
            logger.exception("server poll failed")


def _monitored(config: AppConfig) -> tuple:
    """What the monitor takes from a profile: a change in it means a new poller."""
    return (config.endpoints, config.monitor, config.alerts, config.data_dir)
