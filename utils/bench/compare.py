"""Benchmark runs side by side: every engine of every run, with deltas to the first."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from utils.bench import store
from utils.bench.records import EngineSummary, Manifest, Summary
from utils.bench.scoring import build_summary
from utils.errors import BadInput


class CompareColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    run_name: str
    engine: str
    dataset: str
    n: int


class CompareCell(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    delta: float | None = Field(None, description="value minus the first column's")
    better: bool | None = Field(None, description="better than the first column; None: equal/n.a.")


class CompareRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    label: str
    direction: Literal["higher", "lower"]
    cells: list[CompareCell]


class Comparison(BaseModel):
    """Columns are (run, engine) pairs; the first one is the baseline for deltas."""

    model_config = ConfigDict(extra="forbid")

    columns: list[CompareColumn]
    rows: list[CompareRow]
    notes: list[str] = Field(default_factory=list)


_SPEED_ROWS: tuple[tuple[str, str, Literal["higher", "lower"]], ...] = (
    ("latency_p50_s", "latency p50 (s)", "lower"),
    ("latency_p95_s", "latency p95 (s)", "lower"),
    ("pages_per_minute", "pages / minute", "higher"),
    ("output_tokens_per_s", "output tokens / s", "higher"),
    ("peak_rss_bytes", "peak RSS", "lower"),
    ("peak_vram_bytes", "peak VRAM", "lower"),
)


def compare_runs(data_dir: Path, run_ids: list[str]) -> Comparison:
    """Every engine of every run side by side: metrics with CIs, fields, speed, memory."""
    if not run_ids:
        raise BadInput("nothing to compare", hint="name one or more run ids")
    columns: list[CompareColumn] = []
    engines: list[EngineSummary] = []
    manifests = []
    for run_id in run_ids:
        manifest, summary = _summary_of(data_dir, run_id)
        manifests.append(manifest)
        for engine in summary.engines:
            columns.append(
                CompareColumn(
                    run_id=run_id,
                    run_name=manifest.name,
                    engine=engine.engine,
                    dataset=manifest.dataset.name,
                    n=engine.n,
                )
            )
            engines.append(engine)
    rows = _metric_rows(engines) + _field_rows(engines) + _speed_rows(engines)
    return Comparison(columns=columns, rows=rows, notes=_comparison_notes(manifests))


def _summary_of(data_dir: Path, run_id: str) -> tuple[Manifest, Summary]:
    manifest = store.read_manifest(data_dir, run_id)
    summary = store.read_summary(data_dir, run_id)
    if summary is None:
        summary = build_summary(manifest, store.read_items(data_dir, run_id).records)
    return manifest, summary


def _metric_rows(engines: list[EngineSummary]) -> list[CompareRow]:
    names = list(dict.fromkeys(name for e in engines for name in e.metrics))
    rows = []
    for name in names:
        stats = [e.metrics.get(name) for e in engines]
        direction = next(s.direction for s in stats if s is not None)
        cells = [
            CompareCell(value=s.value, ci_low=s.ci_low, ci_high=s.ci_high)
            if s
            else CompareCell(value=None)
            for s in stats
        ]
        rows.append(_with_deltas(name, name, direction, cells))
    return rows


def _field_rows(engines: list[EngineSummary]) -> list[CompareRow]:
    names = sorted({name for e in engines for name in e.fields})
    rows = []
    for name in names:
        cells = [
            CompareCell(value=e.fields[name].accuracy if name in e.fields else None)
            for e in engines
        ]
        rows.append(_with_deltas(f"field:{name}", f"field {name}", "higher", cells))
    return rows


def _speed_rows(engines: list[EngineSummary]) -> list[CompareRow]:
    rows = []
    for key, label, direction in _SPEED_ROWS:
        values = [getattr(e, key) for e in engines]
        if all(v is None for v in values):
            continue
        cells = [CompareCell(value=float(v) if v is not None else None) for v in values]
        rows.append(_with_deltas(key, label, direction, cells))
    return rows


def _with_deltas(
    key: str, label: str, direction: Literal["higher", "lower"], cells: list[CompareCell]
) -> CompareRow:
    baseline = cells[0].value
    for cell in cells[1:]:
        if cell.value is None or baseline is None:
            continue
        cell.delta = cell.value - baseline
        if cell.value != baseline:
            cell.better = cell.value > baseline if direction == "higher" else cell.value < baseline
    return CompareRow(key=key, label=label, direction=direction, cells=cells)


def _comparison_notes(manifests: list[Manifest]) -> list[str]:
    notes = []
    if len({m.dataset.content_hash for m in manifests}) > 1:
        notes.append("the runs read different datasets (or versions of one): compare with care")
    if len({m.template for m in manifests}) > 1:
        notes.append("the runs used different templates: field scores are not comparable")
    if len({m.limit for m in manifests}) > 1:
        notes.append("the runs used different item limits")
    return notes
