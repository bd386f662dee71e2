"""What the Models page shows of a server's history: the latest numbers and a chart."""

from __future__ import annotations

import time

import pandas as pd

from models.config import AppConfig
from utils.monitor.history import MetricsHistory
from utils.monitor.points import ServerPoint

CHART_COLUMNS = {
    "running": "requests running",
    "waiting": "requests waiting",
    "generation_tps": "generated tokens/s",
    "prompt_tps": "prompt tokens/s",
    "kv_cache_pct": "KV cache %",
    "ttft_p95": "TTFT p95 (s)",
    "e2e_p95": "latency p95 (s)",
}


def recent_points(config: AppConfig, endpoint: str, hours: float) -> list[ServerPoint]:
    history = MetricsHistory(config.data_dir, int(config.monitor.history_mb * 2**20))
    return history.read(endpoint, since=time.time() - hours * 3600)


def history_frame(points: list[ServerPoint]) -> pd.DataFrame:
    """One row per poll, indexed by local time, in the units the page shows."""
    rows = [
        {
            "time": pd.Timestamp(p.at, unit="s", tz="UTC"),
            "running": p.running,
            "waiting": p.waiting,
            "generation_tps": p.generation_tps,
            "prompt_tps": p.prompt_tps,
            "kv_cache_pct": None if p.kv_cache is None else 100 * p.kv_cache,
            "ttft_p95": p.ttft_p95,
            "e2e_p95": p.e2e_p95,
        }
        for p in points
    ]
    frame = pd.DataFrame(rows, columns=["time", *CHART_COLUMNS])
    return frame.set_index("time").rename(columns=CHART_COLUMNS)


def latest_state(points: list[ServerPoint], interval_s: float) -> str:
    """One line on the newest point: up with metrics, up without, down, or no data."""
    if not points:
        return f"no data yet: the app polls its servers every {interval_s:g} s"
    newest = points[-1]
    age = time.time() - newest.at
    stale = f" (last poll {age:.0f} s ago)" if age > 3 * interval_s else ""
    if not newest.up:
        return f"down: {newest.error}{stale}"
    if not newest.exposes_metrics:
        return f"up, but it publishes no Prometheus metrics ({newest.error}){stale}"
    if newest.error:
        return f"up; {newest.error}{stale}"
    return f"up{stale}"
