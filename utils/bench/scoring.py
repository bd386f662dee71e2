"""Scores and summaries: every metric of one prediction, and a run's aggregates.

The summary is a pure function of the manifest and the item records (sorted by
engine and item, bootstrap with the manifest's fixed seed), so a resumed run
summarises exactly like an uninterrupted one, and a stored run can be summarised
or rescored again without any model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from utils.bench.metrics import METRICS, aggregate, bootstrap_ci, field_accuracy
from utils.bench.records import (
    EngineSummary,
    FieldScore,
    ItemRecord,
    Manifest,
    MetricSummary,
    Summary,
)

#: Metrics scored on structured fields; every other registered metric is scored on text.
FIELD_METRICS = frozenset({"field_accuracy"})
#: The seed stored in every new manifest: the same records always give the same intervals.
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def score_prediction(
    prediction: str,
    predicted_fields: dict[str, str | None],
    truth_text: str | None,
    truth_fields: dict[str, str] | None,
    score_fields: bool,
) -> tuple[dict[str, float], dict[str, bool]]:
    """Every registered metric that the item's ground truth allows, and per-field results.

    Text metrics need ``truth_text``; field metrics need truth fields and a run that
    extracted fields (``score_fields``: the item had a template).
    """
    metrics: dict[str, float] = {}
    if truth_text is not None:
        for name, metric in METRICS.items():
            if name not in FIELD_METRICS:
                metrics[name] = float(metric.fn(prediction, truth_text))
    fields_correct: dict[str, bool] = {}
    if truth_fields and score_fields:
        fields_correct = field_accuracy(predicted_fields, truth_fields)
        for name in FIELD_METRICS & METRICS.keys():
            metrics[name] = float(METRICS[name].fn(predicted_fields, truth_fields))
    # JSON has no NaN or infinity; a metric undefined for this item is left out.
    return {k: v for k, v in metrics.items() if math.isfinite(v)}, fields_correct


def rescored(record: ItemRecord) -> ItemRecord:
    """The record with metrics recomputed from its saved prediction and truth."""
    if record.status == "skipped":
        return record
    metrics, fields_correct = score_prediction(
        record.prediction,
        record.predicted_fields,
        record.truth_text,
        record.truth_fields,
        score_fields=record.template is not None,
    )
    return record.model_copy(update={"metrics": metrics, "fields_correct": fields_correct})


def build_summary(manifest: Manifest, records: Iterable[ItemRecord]) -> Summary:
    """Aggregates per engine; independent of the order the records were written in."""
    ordered = sorted(records, key=lambda r: (r.engine, r.item_id))
    by_engine: dict[str, list[ItemRecord]] = {e.name: [] for e in manifest.engines}
    for record in ordered:
        by_engine.setdefault(record.engine, []).append(record)
    engines = [
        _engine_summary(name, recs, manifest.bootstrap_resamples, manifest.bootstrap_seed)
        for name, recs in by_engine.items()
    ]
    recorded = len(ordered)
    total = manifest.items_planned * len(manifest.engines)
    return Summary(
        run_id=manifest.run_id,
        items_total=total,
        items_recorded=recorded,
        complete=recorded >= total,
        bootstrap_resamples=manifest.bootstrap_resamples,
        bootstrap_seed=manifest.bootstrap_seed,
        confidence=CONFIDENCE,
        engines=engines,
    )


def _engine_summary(
    engine: str, records: list[ItemRecord], resamples: int, seed: int
) -> EngineSummary:
    scored = [r for r in records if r.status != "skipped"]
    timed = [r for r in records if r.status == "ok" and r.seconds is not None]
    return EngineSummary(
        engine=engine,
        n=len(records),
        ok=sum(r.status == "ok" for r in records),
        errors=sum(r.status == "error" for r in records),
        skipped=sum(r.status == "skipped" for r in records),
        metrics=_metric_summaries(scored, resamples, seed),
        fields=_field_scores(scored),
        **_speed(timed),
        peak_rss_bytes=_max_or_none(r.peak_rss_bytes for r in records),
        peak_vram_bytes=_max_or_none(r.peak_vram_bytes for r in records),
    )


def _metric_summaries(
    records: list[ItemRecord], resamples: int, seed: int
) -> dict[str, MetricSummary]:
    summaries = {}
    names = list(METRICS) + sorted({n for r in records for n in r.metrics} - METRICS.keys())
    for name in names:
        values = [r.metrics[name] for r in records if name in r.metrics]
        if not values:
            continue
        low, high = bootstrap_ci(values, n_resamples=resamples, confidence=CONFIDENCE, seed=seed)
        metric = METRICS.get(name)
        summaries[name] = MetricSummary(
            value=aggregate(name, values) if metric else float(np.mean(values)),
            ci_low=low,
            ci_high=high,
            n=len(values),
            direction=metric.direction if metric else "higher",
        )
    return summaries


def _field_scores(records: list[ItemRecord]) -> dict[str, FieldScore]:
    outcomes: dict[str, list[bool]] = {}
    for record in records:
        for name, correct in record.fields_correct.items():
            outcomes.setdefault(name, []).append(correct)
    return {
        name: FieldScore(accuracy=sum(values) / len(values), n=len(values))
        for name, values in sorted(outcomes.items())
    }


def _speed(records: list[ItemRecord]) -> dict:
    """Latency over ok items; throughput per engine-second (not wall time: concurrent
    requests to a server overlap, so pages/minute understates a concurrent run)."""
    if not records:
        return {}
    seconds = np.asarray([r.seconds for r in records], dtype=float)
    total_seconds = float(seconds.sum())
    pages = sum(r.pages for r in records)
    with_tokens = [r for r in records if r.tokens_out is not None]
    token_seconds = sum(r.seconds or 0.0 for r in with_tokens)
    tokens_out = sum(r.tokens_out or 0 for r in with_tokens) if with_tokens else None
    return {
        "latency_mean_s": float(seconds.mean()),
        "latency_p50_s": float(np.percentile(seconds, 50)),
        "latency_p95_s": float(np.percentile(seconds, 95)),
        "pages": pages,
        "pages_per_minute": 60.0 * pages / total_seconds if total_seconds > 0 else None,
        "tokens_out": tokens_out,
        "output_tokens_per_s": (
            tokens_out / token_seconds if tokens_out is not None and token_seconds > 0 else None
        ),
    }


def _max_or_none(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
