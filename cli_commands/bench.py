"""`python cli.py bench ...`: run, list, show, compare and rescore benchmark runs.

Readable tables by default, ``--json`` for scripts. Progress goes to stderr so
stdout stays clean. Nothing here imports torch or transformers; an engine that
needs them imports them when it loads.

Runs are team-visible. With ``--user`` a new run belongs to that user; renaming,
deleting or resuming it takes its owner or an admin, and a viewer may only read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cli_commands.acting import Acting
from cli_commands.tables import printable, table
from utils.auth import Action
from utils.bench import store
from utils.bench.compare import Comparison, compare_runs
from utils.bench.datasets import write_sample_set
from utils.bench.plan import BenchRequest
from utils.bench.records import EngineSummary, Summary
from utils.bench.runner import run_benchmark
from utils.bench.runs import RunDetail, open_run, rescore
from utils.bench.store import RunListing

#: Seconds between two redraws of the progress line.
_PROGRESS_EVERY_S = 0.2
#: Item failures listed by `bench show` (all of them with --json).
_SHOWN_FAILURES = 20


def run_bench_command(args: argparse.Namespace, acting: Acting) -> int:
    """Dispatch `bench ACTION` for ``acting.user``; AppErrors propagate to cli.main."""
    actions: dict[str, Callable[[argparse.Namespace, Acting], int]] = {
        "run": _run,
        "list": _list,
        "show": _show,
        "compare": _compare,
        "rescore": _rescore,
        "rename": _rename,
        "delete": _delete,
        "sample": _sample,
    }
    return actions[args.bench_action](args, acting)


# --------------------------------------------------------------------------- run


class _ProgressLine:
    """`[12/40] 1 failed, ~35 s left` redrawn in place on stderr, at most 5 times a second."""

    def __init__(self) -> None:
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int, failures: int, left: float | None) -> None:
        now = time.monotonic()
        if done < total and now - self._last < _PROGRESS_EVERY_S:
            return
        self._last = now
        eta = f", ~{_duration(left)} left" if left is not None and done < total else ""
        failed = f", {failures} failed" if failures else ""
        print(f"\r[{done}/{total}]{failed}{eta}\033[K", end="", file=sys.stderr, flush=True)
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            print(file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, acting: Acting) -> int:
    request = BenchRequest(
        dataset=args.dataset,
        format=args.format,
        engines=_engine_names(args.engine),
        limit=args.limit,
        template=args.template,
        run_id=args.run_id,
        name=args.name,
    )
    progress = _ProgressLine()
    try:
        outcome = run_benchmark(acting.loaded, request, progress=progress, user=acting.user)
    except KeyboardInterrupt:
        progress.close()
        print("cancelled: resume with the same --run-id (see `bench list`)", file=sys.stderr)
        return 130
    finally:
        progress.close()
    if args.json:
        print(outcome.model_dump_json(indent=2))
        return 0
    print(f"run {outcome.run_id}: {outcome.status}, {outcome.recorded_now} items recorded now")
    print(_summary_table(outcome.summary))
    return 0


def _engine_names(values: list[str] | None) -> list[str]:
    """`--engine a,b --engine c` -> [a, b, c], order kept, repeats dropped."""
    names = [name.strip() for value in values or [] for name in value.split(",")]
    return list(dict.fromkeys(name for name in names if name))


# --------------------------------------------------------------------------- list / show


def _list(args: argparse.Namespace, acting: Acting) -> int:
    acting.check(Action.VIEW_BENCHMARKS)
    runs = store.list_bench_runs(acting.config.data_dir)
    if args.json:
        print(json.dumps([run.model_dump(mode="json") for run in runs], indent=2))
        return 0
    if not runs:
        print("no benchmark runs yet: `cli.py bench run --engine rapidocr` starts one")
        return 0
    rows = [["RUN", "STATUS", "ITEMS", "DATASET", "ENGINES", "OWNER", "NAME"]]
    rows += [_listing_row(run) for run in runs]
    print(table(rows))
    return 0


def _listing_row(run: RunListing) -> list[str]:
    return [
        run.run_id,
        run.status,
        f"{run.items_recorded}/{run.items_total}",
        run.dataset,
        ",".join(run.engines),
        printable(run.owner) or "-",
        printable(run.name),
    ]


def _show(args: argparse.Namespace, acting: Acting) -> int:
    acting.check(Action.VIEW_BENCHMARKS)
    detail = open_run(acting.config.data_dir, store.check_run_id(args.run))
    if args.json:
        data = detail.model_dump(mode="json")
        if not args.items:
            data.pop("items")
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print(_detail_text(detail))
    return 0


def _detail_text(detail: RunDetail) -> str:
    manifest, state = detail.manifest, detail.state
    lines = [
        f"run       {manifest.run_id}  ({printable(manifest.name)})",
        f"owner     {printable(manifest.owner) or '-'}",
        f"status    {state.status}" + (f": {state.message}" if state.message else ""),
        f"started   {manifest.started_at}",
        f"dataset   {manifest.dataset.name} ({manifest.dataset.format}, "
        f"{manifest.items_planned} of {manifest.dataset.items} items) at {manifest.dataset.root}",
        f"template  {manifest.template or 'per item'}",
        f"profile   {manifest.profile_path}",
        "",
        _summary_table(detail.summary),
    ]
    if detail.bad_lines:
        lines.append(f"\n{detail.bad_lines} unreadable record line(s) skipped")
    failures = [r for r in detail.items if r.status != "ok"]
    if failures:
        lines.append(f"\n{len(failures)} item(s) not ok:")
        lines += [
            f"  {r.engine} {r.item_id}: {r.status}: {r.message}" for r in failures[:_SHOWN_FAILURES]
        ]
        if len(failures) > _SHOWN_FAILURES:
            lines.append(f"  ... {len(failures) - _SHOWN_FAILURES} more (--json --items)")
    return "\n".join(lines)


def _summary_table(summary: Summary) -> str:
    metric_names = list(dict.fromkeys(n for e in summary.engines for n in e.metrics))
    header = ["ENGINE", "N", "ERR", "SKIP", *[n.upper() for n in metric_names]]
    header += ["P50 S", "P95 S", "PAGES/MIN", "TOK/S", "PEAK RSS"]
    rows = [header] + [_engine_row(e, metric_names) for e in summary.engines]
    text = table(rows)
    state = "complete" if summary.complete else "partial"
    foot = (
        f"{summary.items_recorded}/{summary.items_total} items ({state}); "
        f"[{summary.confidence:.0%} bootstrap CI, {summary.bootstrap_resamples} resamples]"
    )
    fields = _fields_text(summary.engines)
    return "\n".join([text, foot] + ([fields] if fields else []))


def _engine_row(engine: EngineSummary, metric_names: list[str]) -> list[str]:
    cells = [engine.engine, str(engine.n), str(engine.errors), str(engine.skipped)]
    for name in metric_names:
        stat = engine.metrics.get(name)
        cells.append(
            "-"
            if stat is None
            else f"{_num(stat.value)} [{_num(stat.ci_low)}, {_num(stat.ci_high)}]"
        )
    cells += [
        _num(engine.latency_p50_s),
        _num(engine.latency_p95_s),
        _num(engine.pages_per_minute, 1),
        _num(engine.output_tokens_per_s, 1),
        _megabytes(engine.peak_rss_bytes),
    ]
    return cells


def _fields_text(engines: list[EngineSummary]) -> str:
    lines = []
    for engine in engines:
        if engine.fields:
            scores = ", ".join(
                f"{name} {score.accuracy:.2f} (n={score.n})"
                for name, score in engine.fields.items()
            )
            lines.append(f"fields {engine.engine}: {scores}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- compare


def _compare(args: argparse.Namespace, acting: Acting) -> int:
    acting.check(Action.VIEW_BENCHMARKS)
    run_ids = [store.check_run_id(run_id) for run_id in args.runs]
    comparison = compare_runs(acting.config.data_dir, run_ids)
    if args.json:
        print(comparison.model_dump_json(indent=2))
        return 0
    print(_comparison_text(comparison))
    return 0


def _comparison_text(comparison: Comparison) -> str:
    header = ["", *[f"{c.run_id} {c.engine}" for c in comparison.columns]]
    rows = [header]
    for row in comparison.rows:
        arrow = "↓" if row.direction == "lower" else "↑"
        cells = [f"{row.label} {arrow}"]
        in_bytes = row.key.endswith("_bytes")
        for cell in row.cells:
            text = _megabytes(cell.value) if in_bytes else _num(cell.value)
            if cell.ci_low is not None:
                text += f" [{_num(cell.ci_low)}, {_num(cell.ci_high)}]"
            if cell.delta is not None:
                mark = {True: " better", False: " worse", None: ""}[cell.better]
                delta = f"{cell.delta / 2**20:+.0f} MB" if in_bytes else f"{cell.delta:+.4g}"
                text += f" ({delta}{mark})"
            cells.append(text)
        rows.append(cells)
    notes = [f"note: {note}" for note in comparison.notes]
    return "\n".join([table(rows), *notes])


# --------------------------------------------------------------------------- maintenance


def _rescore(args: argparse.Namespace, acting: Acting) -> int:
    acting.check(Action.RUN_BENCHMARK, args.run)
    outcome = rescore(acting.config.data_dir, store.check_run_id(args.run), user=acting.user)
    if args.json:
        print(outcome.model_dump_json(indent=2))
        return 0
    print(
        f"run {outcome.run_id}: {outcome.records} records rescored, {outcome.changed} changed, "
        f"{outcome.dropped_lines} unreadable line(s) dropped"
    )
    print(_summary_table(outcome.summary))
    return 0


def _rename(args: argparse.Namespace, acting: Acting) -> int:
    run_id = store.check_run_id(args.run)
    manifest = store.rename_run(acting.config.data_dir, run_id, args.name, user=acting.user)
    print(f"run {manifest.run_id} is now named {printable(manifest.name)!r}")
    return 0


def _delete(args: argparse.Namespace, acting: Acting) -> int:
    store.delete_run(acting.config.data_dir, store.check_run_id(args.run), user=acting.user)
    print(f"deleted run {args.run}")
    return 0


def _sample(args: argparse.Namespace, acting: Acting) -> int:
    folder = Path(args.folder).expanduser()
    count = write_sample_set(folder)
    print(f"wrote {count} labelled documents to {folder} (pairs layout)")
    return 0


# --------------------------------------------------------------------------- formatting


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if digits != 1 else f"{value:.1f}"


def _megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
