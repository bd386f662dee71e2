"""Benchmark runs as tables for the Benchmarks page (and CSV exports).

Pure functions from the runner's typed records to pandas DataFrames, so the
page only lays them out and the tests can check them without Streamlit.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import pandas as pd

from utils.bench.compare import Comparison
from utils.bench.metrics import METRICS
from utils.bench.records import EngineSummary, FieldScore, Manifest, MetricSummary, Summary
from utils.bench.runs import RunDetail
from utils.bench.store import RunListing

ACCURACY_METRICS = ("cer", "line_cer", "wer", "word_f1", "field_accuracy")
LINE_CER_NOTE = f"line_cer: {METRICS['line_cer'].description}."
"""Shown under the tables with a line_cer column: why it may differ from cer."""


def runs_table(runs: list[RunListing]) -> pd.DataFrame:
    """One row per (run, engine), with the headline numbers of its summary."""
    rows = []
    for run in runs:
        summaries = {e.engine: e for e in (run.summary.engines if run.summary else [])}
        for engine in run.engines:
            summary = summaries.get(engine)
            row = {
                "run": run.run_id,
                "name": run.name,
                "created": run.created_at[:19].replace("T", " "),
                "status": run.status,
                "dataset": run.dataset,
                "engine": engine,
                "items": f"{run.items_recorded}/{run.items_total}",
                "owner": run.owner,
            }
            for metric in ACCURACY_METRICS:
                value = summary.metrics.get(metric) if summary else None
                row[metric] = value.value if value else None
            row["p50 s"] = summary.latency_p50_s if summary else None
            row["pages/min"] = summary.pages_per_minute if summary else None
            rows.append(row)
    return pd.DataFrame(rows)


def filter_runs(
    table: pd.DataFrame, engines: list[str], datasets: list[str], since: str | None
) -> pd.DataFrame:
    if table.empty:
        return table
    keep = pd.Series(True, index=table.index)
    if engines:
        keep &= table["engine"].isin(engines)
    if datasets:
        keep &= table["dataset"].isin(datasets)
    if since:
        keep &= table["created"] >= since
    return table[keep]


def leaderboard(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Best complete (run, engine) per dataset on one metric, best first."""
    done = table[(table["status"] == "complete") & table[metric].notna()] if len(table) else table
    if done.empty:
        return done
    ascending = METRICS[metric].direction == "lower"
    ranked = done.sort_values(["dataset", metric], ascending=[True, ascending])
    columns = ["dataset", "engine", metric, "p50 s", "run", "name", "created"]
    return ranked[columns].reset_index(drop=True)


MEMORY_KEYS = frozenset({"peak_rss_bytes", "peak_vram_bytes"})


def comparison_table(comparison: Comparison) -> pd.DataFrame:
    """Metric rows; per column its value with the 95% interval, and the difference.

    Columns are (run, engine) pairs, so the engines of one run compare as well as runs."""
    rows = []
    for row in comparison.rows:
        record = {"metric": row.label, "better": row.direction}
        for column, cell in zip(comparison.columns, row.cells, strict=True):
            label = f"{column.run_name} · {column.engine}"
            if row.key in MEMORY_KEYS:
                record[label] = format_bytes(cell.value)
            else:
                record[label] = _with_interval(cell.value, cell.ci_low, cell.ci_high)
            if column is not comparison.columns[0]:
                record[f"Δ {label}"] = _delta(cell.delta, cell.better, row.key in MEMORY_KEYS)
        rows.append(record)
    return pd.DataFrame(rows)


def format_bytes(size: float | None) -> str:
    """A memory size as a reader takes it in: MiB below one GiB, else GiB."""
    if size is None:
        return "—"
    mib = size / 2**20
    return f"{mib:.1f} MiB" if abs(mib) < 1024 else f"{mib / 1024:.2f} GiB"


def _with_interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"  # never "1.59e+03"
    return f"{text} [{low:.3g}, {high:.3g}]" if low is not None and high is not None else text


def _delta(delta: float | None, better: bool | None, memory: bool = False) -> str:
    if delta is None:
        return "—"
    mark = "" if better is None else (" ▲" if better else " ▼")
    if memory:
        return ("+" if delta >= 0 else "-") + format_bytes(abs(delta)) + mark
    return f"{delta:+.4g}{mark}"


def scatter_points(comparison: Comparison, accuracy: str) -> pd.DataFrame:
    """One point per (run, engine): an accuracy metric against median seconds."""
    rows = {row.key: row for row in comparison.rows}
    if accuracy not in rows or "latency_p50_s" not in rows:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "series": [f"{c.run_name} · {c.engine}" for c in comparison.columns],
            accuracy: [cell.value for cell in rows[accuracy].cells],
            "seconds (p50)": [cell.value for cell in rows["latency_p50_s"].cells],
        }
    )


def field_accuracy_table(details: list[RunDetail]) -> pd.DataFrame:
    """Long format: series, field, accuracy — for grouped bars."""
    rows = [
        {"series": f"{d.manifest.name} · {e.engine}", "field": field, "accuracy": score.accuracy}
        for d in details
        for e in d.summary.engines
        for field, score in e.fields.items()
    ]
    return pd.DataFrame(rows)


def latency_table(details: list[RunDetail]) -> pd.DataFrame:
    """Long format: series, seconds per item — for a latency distribution."""
    rows = [
        {"series": f"{d.manifest.name} · {r.engine}", "seconds": r.seconds}
        for d in details
        for r in d.items
        if r.seconds is not None and r.status == "ok"
    ]
    return pd.DataFrame(rows)


def items_table(detail: RunDetail) -> pd.DataFrame:
    rows = []
    for record in detail.items:
        row = {"engine": record.engine, "item": record.item_id, "status": record.status}
        row.update({m: record.metrics.get(m) for m in ACCURACY_METRICS})
        row["seconds"] = record.seconds
        row["message"] = record.message
        rows.append(row)
    return pd.DataFrame(rows)


def word_diff(truth: str, prediction: str) -> pd.DataFrame:
    """Where the prediction differs from the truth, word by word (as table rows, which
    the page shows as plain cells: nothing in them is ever rendered as markup)."""
    truth_words, predicted_words = truth.split(), prediction.split()
    matcher = difflib.SequenceMatcher(a=truth_words, b=predicted_words, autojunk=False)
    rows = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        rows.append(
            {
                "change": {
                    "equal": "same",
                    "replace": "changed",
                    "delete": "missing",
                    "insert": "extra",
                }[op],
                "truth": " ".join(truth_words[a0:a1]),
                "prediction": " ".join(predicted_words[b0:b1]),
            }
        )
    return pd.DataFrame(rows, columns=["change", "truth", "prediction"])


def run_detail_table(summary: Summary) -> pd.DataFrame:
    """One run's numbers, a column per engine: every metric with its 95% interval, field
    accuracies, latency, throughput and peak memory (what Compare shows, for one run)."""
    engines = summary.engines
    counts = {e.engine: f"{e.ok} / {e.errors} / {e.skipped}" for e in engines}
    rows = [_detail_row("items (ok / errors / skipped)", "", counts)]
    for name in dict.fromkeys(name for e in engines for name in e.metrics):
        stats = {e.engine: e.metrics.get(name) for e in engines}
        direction = next(s.direction for s in stats.values() if s is not None)
        cells = {engine: _metric_cell(stat) for engine, stat in stats.items()}
        rows.append(_detail_row(name, direction, cells))
    for field in sorted({field for e in engines for field in e.fields}):
        cells = {e.engine: _field_cell(e.fields.get(field)) for e in engines}
        rows.append(_detail_row(f"field {field}", "higher", cells))
    for label, direction, cell in _SPEED_DETAIL:
        rows.append(_detail_row(label, direction, {e.engine: cell(e) for e in engines}))
    return pd.DataFrame(rows)


def _detail_row(quantity: str, better: str, cells: dict[str, str | None]) -> dict:
    return {"quantity": quantity, "better": better, **cells}


def _metric_cell(stat: MetricSummary | None) -> str | None:
    if stat is None or stat.value is None:
        return None
    return f"{_with_interval(stat.value, stat.ci_low, stat.ci_high)} (n={stat.n})"


def _field_cell(score: FieldScore | None) -> str | None:
    return None if score is None else f"{score.accuracy:.4g} (n={score.n})"


def _plain(value: float | None) -> str | None:
    """Three significant digits, but whole numbers from 100 up (never "1.59e+03")."""
    if value is None:
        return None
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


_SPEED_DETAIL: tuple[tuple[str, str, Callable[[EngineSummary], str | None]], ...] = (
    ("latency mean (s)", "lower", lambda e: _plain(e.latency_mean_s)),
    ("latency p50 (s)", "lower", lambda e: _plain(e.latency_p50_s)),
    ("latency p95 (s)", "lower", lambda e: _plain(e.latency_p95_s)),
    ("pages / minute", "higher", lambda e: _plain(e.pages_per_minute)),
    ("output tokens / s", "higher", lambda e: _plain(e.output_tokens_per_s)),
    ("peak RSS", "lower", lambda e: _memory(e.peak_rss_bytes)),
    ("peak VRAM", "lower", lambda e: _memory(e.peak_vram_bytes)),
)


def _memory(size: int | None) -> str | None:
    return None if size is None else format_bytes(size)


def manifest_table(manifest: Manifest) -> pd.DataFrame:
    """What a run measured with, a (what, value) row each: profile, dataset, engines,
    hardware and package versions, so two runs' conditions can be told apart."""
    dataset, hardware = manifest.dataset, manifest.hardware
    rows = [
        ("run id", manifest.run_id),
        ("started", manifest.started_at),
        ("profile", manifest.profile_path),
        ("profile SHA-256", manifest.profile_sha256),
        ("dataset", f"{dataset.name} ({dataset.format}, {dataset.items} items)"),
        ("dataset folder", dataset.root),
        ("dataset hash", dataset.content_hash),
        ("items per engine", str(manifest.items_planned)),
        ("template", manifest.template or "none"),
        ("hardware", f"{hardware.platform} ({hardware.machine})"),
        ("CPU cores", str(hardware.cpu_count or "unknown")),
        ("RAM", _memory(hardware.ram_total_bytes) or "unknown"),
        ("CUDA devices", ", ".join(hardware.cuda_devices) or "none"),
    ]
    rows += [
        (f"engine {e.name}", f"{e.backend}, {e.concurrency} in flight") for e in manifest.engines
    ]
    rows += [
        (f"version of {package}", version or "not installed")
        for package, version in sorted(manifest.versions.items())
    ]
    return pd.DataFrame(rows, columns=["what", "value"])
