"""vLLM's Prometheus metrics, as a fake server serves them at ``/metrics``.

Names, types, labels and histogram buckets are vLLM's own (V1 engine), together with
a few of the families a real page also carries (process metrics, other histograms),
so a parser that reads only what it needs is tested on a realistic page. Counters
and histograms only grow until ``restart()``, which starts them from zero as a
restarted server does.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

# vLLM's bucket bounds (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
               60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: int = 0
    sum: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        for index in range(bisect.bisect_left(self.bounds, value), len(self.bounds)):
            self.counts[index] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        out = [
            f'{name}_bucket{{{labels},le="{b}"}} {c}.0'
            for b, c in zip(self.bounds, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.total}.0')
        out.append(f"{name}_count{{{labels}}} {self.total}.0")
        out.append(f"{name}_sum{{{labels}}} {self.sum!r}")
        return out


class FakeVllmMetrics:
    def __init__(self, model_name: str = "fake-vlm") -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.kv_cache = 0.0
        self.restart()

    def restart(self) -> None:
        """Counters and histograms from zero, as after a server restart."""
        with self._lock:
            self.prompt_tokens = 0
            self.generation_tokens = 0
            self.ttft = _Histogram(TTFT_BUCKETS)
            self.e2e = _Histogram(E2E_BUCKETS)
            self.itl = _Histogram(ITL_BUCKETS)

    def observe_request(
        self, prompt_tokens: int, generation_tokens: int, ttft_s: float, e2e_s: float
    ) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += generation_tokens
            self.ttft.observe(ttft_s)
            self.e2e.observe(e2e_s)
            if generation_tokens > 1:
                self.itl.observe((e2e_s - ttft_s) / (generation_tokens - 1))

    def render(self) -> str:
        labels = f'engine="0",model_name="{self.model_name}"'
        with self._lock:
            families = [
                (_gauge, "vllm:num_requests_running", "Requests in execution.", self.running),
                (_gauge, "vllm:num_requests_waiting", "Requests waiting.", self.waiting),
                (_gauge, "vllm:kv_cache_usage_perc", "KV-cache usage, 1 = 100%.", self.kv_cache),
                (_counter, "vllm:prompt_tokens", "Prefill tokens processed.", self.prompt_tokens),
                (_counter, "vllm:generation_tokens", "Tokens generated.", self.generation_tokens),
                (_histogram, "vllm:time_to_first_token_seconds", "Time to first token.", self.ttft),
                (_histogram, "vllm:inter_token_latency_seconds", "Inter-token latency.", self.itl),
                (_histogram, "vllm:e2e_request_latency_seconds", "E2e request latency.", self.e2e),
            ]
            lines = list(_PROCESS_LINES)
            for write, name, help_text, value in families:
                lines.extend(write(name, help_text, labels, value))
            for name, bounds in _OTHER_HISTOGRAMS:  # on every real page, unread by the app
                lines.extend(_histogram(name, "Not read by the app.", labels, _Histogram(bounds)))
        return "\n".join(lines) + "\n"


_TOKENS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
# The rest of a vLLM page (a few KB per model), so the page has a real page's size.
_OTHER_HISTOGRAMS = (
    ("vllm:request_queue_time_seconds", E2E_BUCKETS),
    ("vllm:request_inference_time_seconds", E2E_BUCKETS),
    ("vllm:request_prefill_time_seconds", E2E_BUCKETS),
    ("vllm:request_decode_time_seconds", E2E_BUCKETS),
    ("vllm:time_per_output_token_seconds", ITL_BUCKETS),
    ("vllm:request_prompt_tokens", _TOKENS),
    ("vllm:request_generation_tokens", _TOKENS),
    ("vllm:request_params_max_tokens", _TOKENS),
    ("vllm:iteration_tokens_total", _TOKENS),
)

_PROCESS_LINES = (
    "# HELP python_gc_objects_collected_total Objects collected during gc",
    "# TYPE python_gc_objects_collected_total counter",
    'python_gc_objects_collected_total{generation="0"} 12345.0',
    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
    "# TYPE process_cpu_seconds_total counter",
    "process_cpu_seconds_total 42.5",
)


def _gauge(name: str, help_text: str, labels: str, value: float) -> list[str]:
    return [
        f"# HELP {name} {help_text}",
        f"# TYPE {name} gauge",
        f"{name}{{{labels}}} {float(value)!r}",
    ]


def _counter(name: str, help_text: str, labels: str, value: int) -> list[str]:
    return [
        f"# HELP {name}_total {help_text}",
        f"# TYPE {name}_total counter",
        f"{name}_total{{{labels}}} {float(value)!r}",
    ]


def _histogram(name: str, help_text: str, labels: str, histogram: _Histogram) -> list[str]:
    return [
        f"# HELP {name} {help_text}",
        f"# TYPE {name} histogram",
        *histogram.lines(name, labels),
    ]
