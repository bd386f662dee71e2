"""From cumulative server counters to what a person watches: tokens per second and
latency percentiles over a recent window.

Counters and histogram buckets only grow while a server runs; a value lower than the
one before means the server restarted and counted from zero again, so the increase
since the restart is the new value itself (as Prometheus's ``rate`` does). A rate is
therefore never negative.
"""

from __future__ import annotations

from utils.monitor.vllm import Histogram


def counter_rate(new: float | None, old: float | None, seconds: float) -> float | None:
    """Increase per second of a counter from ``old`` to ``new`` over ``seconds``."""
    if new is None or old is None or seconds <= 0:
        return None
    increase = new if new < old else new - old
    return increase / seconds


def histogram_increase(new: Histogram | None, old: Histogram | None) -> Histogram | None:
    """What the histogram counted between two samples (everything, after a restart)."""
    if new is None:
        return None
    if old is None or old.bounds != new.bounds or new.total < old.total:
        return new
    counts = [n - o for n, o in zip(new.counts, old.counts, strict=True)]
    if any(count < 0 for count in counts):  # a reset between the two samples
        return new
    return Histogram(
        bounds=new.bounds, counts=counts, total=new.total - old.total, sum=new.sum - old.sum
    )


def quantile(histogram: Histogram | None, q: float) -> float | None:
    """The ``q`` quantile, interpolated inside its bucket (Prometheus's
    ``histogram_quantile``); ``None`` when nothing was counted. A rank past the last
    finite bound answers that bound: the histogram cannot say more."""
    if histogram is None or histogram.total <= 0 or not histogram.bounds:
        return None
    rank = q * histogram.total
    lower, below = 0.0, 0.0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        if count >= rank:
            inside = count - below
            share = (rank - below) / inside if inside > 0 else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return histogram.bounds[-1]
