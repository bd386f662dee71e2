"""One point of a server's history: what it was doing at one poll.

The poller keeps the raw samples of the last ``window_s`` seconds in memory and
stores only the point made from them, so the history stays small and a chart reads
it directly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from utils.monitor.rates import counter_rate, histogram_increase, quantile
from utils.monitor.vllm import VllmMetrics
from utils.storage import VersionedRecord


@dataclass(frozen=True)
class RawSample:
    at: float  # time.time() of the poll
    metrics: VllmMetrics


class ServerPoint(VersionedRecord):
    at: float
    endpoint: str
    up: bool
    exposes_metrics: bool = True
    error: str = ""
    running: float | None = None
    waiting: float | None = None
    kv_cache: float | None = None
    prompt_tps: float | None = None
    generation_tps: float | None = None
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    e2e_p50: float | None = None
    e2e_p95: float | None = None


class SampleWindow:
    """The raw samples of one server over the last ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.samples: deque[RawSample] = deque()

    def add(self, sample: RawSample) -> None:
        self.samples.append(sample)
        while self.samples and self.samples[0].at < sample.at - self.seconds:
            self.samples.popleft()

    def point(self, endpoint: str) -> ServerPoint:
        """The point of the newest sample: gauges as read, token rates since the previous
        poll, percentiles over the whole window."""
        newest = self.samples[-1]
        now = newest.metrics
        previous = self.samples[-2] if len(self.samples) > 1 else None
        oldest = self.samples[0] if len(self.samples) > 1 else None
        since = newest.at - previous.at if previous else 0.0
        before = previous.metrics if previous else VllmMetrics()
        start = oldest.metrics if oldest else None
        ttft = histogram_increase(now.ttft, start.ttft) if start else None
        e2e = histogram_increase(now.e2e, start.e2e) if start else None
        return ServerPoint(
            at=newest.at,
            endpoint=endpoint,
            up=True,
            running=now.running,
            waiting=now.waiting,
            kv_cache=now.kv_cache,
            prompt_tps=counter_rate(now.prompt_tokens, before.prompt_tokens, since),
            generation_tps=counter_rate(now.generation_tokens, before.generation_tokens, since),
            ttft_p50=quantile(ttft, 0.5),
            ttft_p95=quantile(ttft, 0.95),
            e2e_p50=quantile(e2e, 0.5),
            e2e_p95=quantile(e2e, 0.95),
        )
