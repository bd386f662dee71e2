"""Benchmark runs as tables for the Benchmarks page (and CSV exports).

Pure functions from the runner's typed records to pandas DataFrames, so the
page only lays them out and the tests can check them without Streamlit.
"""

from __future__ import annotations

import difflib

import pandas as pd

from utils.bench.compare import Comparison
from utils.bench.metrics import METRICS
from utils.bench.runs import RunDetail
from utils.bench.store import RunListing

ACCURACY_METRICS = ("cer", "wer", "word_f1", "field_accuracy")


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


def comparison_table(comparison: Comparison) -> pd.DataFrame:
    """Metric rows; per column its value with the 95% interval, and the difference."""
    rows = []
    for row in comparison.rows:
        record = {"metric": row.label, "better": row.direction}
        for column, cell in zip(comparison.columns, row.cells, strict=True):
            label = f"{column.run_name} · {column.engine}"
            record[label] = _with_interval(cell.value, cell.ci_low, cell.ci_high)
            if column is not comparison.columns[0]:
                record[f"Δ {label}"] = _delta(cell.delta, cell.better)
        rows.append(record)
    return pd.DataFrame(rows)


def _with_interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.4g}"
    return f"{text} [{low:.3g}, {high:.3g}]" if low is not None and high is not None else text


def _delta(delta: float | None, better: bool | None) -> str:
    if delta is None:
        return "—"
    mark = "" if better is None else (" ▲" if better else " ▼")
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
