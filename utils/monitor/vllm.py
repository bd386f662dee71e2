"""vLLM's serving metrics out of Prometheus exposition text.

Parsing is ``prometheus_client``'s. Only the families read here are handed to it:
a vLLM page carries dozens of histograms per model, and parsing all of them on
every poll would cost more than the rest of the monitor together. Values are summed
over label sets (one server may serve several models).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
# vLLM V1 renamed the KV-cache gauge; older servers still send the V0 name.
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PROMPT_TOKENS = "vllm:prompt_tokens"
GENERATION_TOKENS = "vllm:generation_tokens"
TTFT = "vllm:time_to_first_token_seconds"
E2E = "vllm:e2e_request_latency_seconds"
_WANTED = (RUNNING, WAITING, *KV_CACHE, PROMPT_TOKENS, GENERATION_TOKENS, TTFT, E2E)


class Histogram(BaseModel):
    """Cumulative bucket counts by finite upper bound, as the server counts them; the
    ``+Inf`` bucket is ``total``."""

    model_config = ConfigDict(extra="forbid")

    bounds: list[float]
    counts: list[float]
    total: float = 0.0  # the _count series
    sum: float = 0.0


class VllmMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    running: float | None = None
    waiting: float | None = None
    kv_cache: float | None = None  # 0..1
    prompt_tokens: float | None = None  # counters since the server started
    generation_tokens: float | None = None
    ttft: Histogram | None = None
    e2e: Histogram | None = None


def parse_vllm_metrics(text: str) -> VllmMetrics:
    """The vLLM metrics in ``text``; those it lacks stay ``None``.

    Raises ``ValueError`` when the wanted part of ``text`` is not exposition format.
    """
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(_wanted_lines(text)):
        found[family.name] = family.samples
    kv_name = next((name for name in KV_CACHE if name in found), None)
    return VllmMetrics(
        running=_summed(found.get(RUNNING)),
        waiting=_summed(found.get(WAITING)),
        kv_cache=_summed(found.get(kv_name)) if kv_name else None,
        prompt_tokens=_summed(found.get(PROMPT_TOKENS), suffix="_total"),
        generation_tokens=_summed(found.get(GENERATION_TOKENS), suffix="_total"),
        ttft=_histogram(found.get(TTFT)),
        e2e=_histogram(found.get(E2E)),
    )


def _wanted_lines(text: str) -> str:
    """The lines of the families read here (samples and their HELP/TYPE comments)."""
    kept = []
    for line in text.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("# ") and line.count(" ") >= 2 else line
        if name.startswith(_WANTED):
            kept.append(line)
    return "\n".join(kept) + "\n"


def _summed(samples: Iterable | None, suffix: str = "") -> float | None:
    if samples is None:
        return None
    values = [s.value for s in samples if not suffix or s.name.endswith(suffix)]
    return float(sum(values)) if values else None


def _histogram(samples: Iterable | None) -> Histogram | None:
    if samples is None:
        return None
    buckets: dict[float, float] = {}
    total = summed = infinite = 0.0
    for sample in samples:
        if sample.name.endswith("_bucket"):
            bound = float(sample.labels.get("le", "nan"))
            if math.isinf(bound):
                infinite += sample.value
            elif not math.isnan(bound):
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
        elif sample.name.endswith("_count"):
            total += sample.value
        elif sample.name.endswith("_sum"):
            summed += sample.value
    if not buckets:
        return None
    bounds = sorted(buckets)
    counts = [buckets[b] for b in bounds]
    return Histogram(bounds=bounds, counts=counts, total=total or infinite, sum=summed)
