"""The benchmark runner, used by the benchmark page and `cli.py bench`.

A run is one labelled dataset read by one or more engines. For each engine and
item the runner calls the engine, scores the prediction against the item's
ground truth and appends one ``ItemRecord`` to the run's ``items.jsonl`` at once
(see ``utils.bench.store`` for the files). The manifest is written before the
first item and the summary after the last, so:

- a crash or a kill loses at most the items in flight; running the same run id
  again skips every (engine, item) already recorded and redoes the rest;
- the summary is a pure function of the manifest and the records
  (``utils.bench.scoring``), so a resumed run summarises exactly like an
  uninterrupted one.

Engines come from the profile's catalog (``utils.bench.engines``); tests and
perf scripts pass their own ``engine_factory``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from models.config import LoadedConfig
from utils.auth import LOCAL_USER, Action, User
from utils.auth.audit import AuditLog
from utils.bench import store
from utils.bench.datasets import LabelledItem
from utils.bench.engines import (
    BenchEngine,
    EngineFactory,
    Prediction,
    create_bench_engine,
    items_in_flight,
)
from utils.bench.environment import peak_rss_bytes, peak_vram_bytes
from utils.bench.plan import BenchRequest, RunPlan, plan_run, template_for
from utils.bench.records import ItemRecord, Manifest, Summary
from utils.bench.scoring import build_summary, score_prediction
from utils.errors import AppError, ModelUnavailable
from utils.storage import utc_now_iso

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, int, float | None], None]
"""``(done, total, failures, seconds_left_estimate)``; done counts items recorded before a
resume too; the estimate is None until one item has finished in this session."""


class RunOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    status: Literal["complete", "cancelled"]
    summary: Summary
    recorded_now: int
    recorded_before: int


@dataclass
class _Progress:
    """Counts shown while running; the estimate uses this session's wall time."""

    total: int
    done: int
    failures: int
    callback: ProgressFn | None
    started: float = field(default_factory=time.perf_counter)
    done_now: int = 0

    def add(self, record: ItemRecord) -> None:
        self.done += 1
        self.done_now += 1
        self.failures += record.status == "error"
        self.report()

    def report(self) -> None:
        if self.callback is None:
            return
        left = None
        if self.done_now:
            per_item = (time.perf_counter() - self.started) / self.done_now
            left = per_item * max(0, self.total - self.done)
        self.callback(self.done, self.total, self.failures, left)


@dataclass
class _Run:
    data_dir: Path
    manifest: Manifest
    progress: _Progress
    cancel: threading.Event | None

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def run_benchmark(
    loaded: LoadedConfig,
    request: BenchRequest,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    engine_factory: EngineFactory = create_bench_engine,
    user: User = LOCAL_USER,
) -> RunOutcome:
    """Run (or resume) a benchmark; returns when every item is recorded or ``cancel`` is set.

    Raises ``BadInput`` / ``ModelUnavailable`` before anything is written when the
    request cannot run; an engine that becomes unavailable mid-run marks it failed.
    ``engine_factory`` turns the request's engine names into engines (tests pass fakes).
    ``user`` must be allowed to run benchmarks (``PermissionDenied``); a new run is theirs.
    """
    data_dir = loaded.config.data_dir
    AuditLog(data_dir).check(user, Action.RUN_BENCHMARK, request.run_id or "new run")
    plan = plan_run(loaded, request, engine_factory, user)
    with store.hold_run_lock(data_dir, plan.manifest.run_id):
        if not plan.resumed:
            store.write_manifest(data_dir, plan.manifest)
        store.write_state(data_dir, plan.manifest.run_id, "running")
        return _run_locked(data_dir, plan, progress, cancel)


def _run_locked(
    data_dir: Path, plan: RunPlan, progress: ProgressFn | None, cancel: threading.Event | None
) -> RunOutcome:
    manifest = plan.manifest
    before = store.read_items(data_dir, manifest.run_id).records
    run = _Run(
        data_dir=data_dir,
        manifest=manifest,
        progress=_Progress(
            total=manifest.items_planned * len(plan.engines),
            done=len(before),
            failures=sum(r.status == "error" for r in before),
            callback=progress,
        ),
        cancel=cancel,
    )
    run.progress.report()
    recorded = {(r.engine, r.item_id) for r in before}
    items = plan.dataset.items[: manifest.items_planned]
    try:
        for engine in plan.engines:
            pending = [i for i in items if (engine.name, i.item_id) not in recorded]
            _run_engine(run, engine, pending)
    except AppError as exc:
        _finish(run, "failed", str(exc))
        raise
    except KeyboardInterrupt:
        _finish(run, "cancelled", "interrupted from the keyboard")
        raise
    except SystemExit:  # the process is going away: read back as "interrupted", like a kill
        raise
    except BaseException:  # e.g. the web page's script stopped by a click (its Cancel)
        _finish(run, "cancelled", "stopped before finishing; resume it")
        raise
    status: Literal["complete", "cancelled"] = "cancelled" if run.cancelled else "complete"
    summary = _finish(run, status, None)
    if status == "complete" and not summary.complete:
        logger.warning("run %s finished with items missing from its records", manifest.run_id)
    return RunOutcome(
        run_id=manifest.run_id,
        status=status,
        summary=summary,
        recorded_now=run.progress.done_now,
        recorded_before=len(before),
    )


def _finish(run: _Run, status: store.RunStatus, message: str | None) -> Summary:
    summary = build_summary(
        run.manifest, store.read_items(run.data_dir, run.manifest.run_id).records
    )
    store.write_summary(run.data_dir, summary)
    store.write_state(run.data_dir, run.manifest.run_id, status, message)
    return summary


def _run_engine(run: _Run, engine: BenchEngine, pending: list[LabelledItem]) -> None:
    if items_in_flight(engine) == 1:
        for item in pending:
            if run.cancelled:
                return
            _record(run, process_item(run.manifest, engine, item))
        return
    _run_concurrently(run, engine, pending, items_in_flight(engine))


def _run_concurrently(
    run: _Run, engine: BenchEngine, pending: list[LabelledItem], width: int
) -> None:
    """Up to ``width`` items in flight; records are appended here, one whole line each."""
    queue = iter(pending)
    in_flight: set[Future[ItemRecord]] = set()
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"bench-{engine.name}") as pool:
        while True:
            while len(in_flight) < width and not run.cancelled:
                item = next(queue, None)
                if item is None:
                    break
                in_flight.add(pool.submit(process_item, run.manifest, engine, item))
            if not in_flight:
                return
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                _record(run, future.result())


def _record(run: _Run, record: ItemRecord) -> None:
    store.append_item(run.data_dir, record)
    run.progress.add(record)


def process_item(manifest: Manifest, engine: BenchEngine, item: LabelledItem) -> ItemRecord:
    """Run one engine on one item and score it; only ``ModelUnavailable`` escapes.

    The engine gets the item with its template resolved (``template_for``).
    """
    template = template_for(item, manifest)
    base = {
        "run_id": manifest.run_id,
        "engine": engine.name,
        "item_id": item.item_id,
        "template": template,
        "truth_text": item.text,
        "truth_fields": dict(item.fields) if item.fields is not None else None,
    }
    if item.problem:
        return ItemRecord(**base, status="skipped", message=item.problem, finished_at=utc_now_iso())
    prediction, message = _predict(engine, replace(item, template=template))
    metrics, fields_correct = score_prediction(
        prediction.text, prediction.fields, item.text, base["truth_fields"], template is not None
    )
    return ItemRecord(
        **base,
        status="error" if message else "ok",
        message=message,
        prediction=prediction.text,
        predicted_fields=prediction.fields,
        metrics=metrics,
        fields_correct=fields_correct,
        seconds=prediction.seconds,
        pages=prediction.pages,
        tokens_in=prediction.tokens_in,
        tokens_out=prediction.tokens_out,
        boxes=[line for line in prediction.lines if line.box is not None],
        peak_rss_bytes=peak_rss_bytes(),
        peak_vram_bytes=peak_vram_bytes(),
        finished_at=utc_now_iso(),
    )


def _predict(engine: BenchEngine, item: LabelledItem) -> tuple[Prediction, str | None]:
    """The engine's prediction and an error message; a failed item scores as what it
    returned (nothing, when it raised), so failures count against accuracy."""
    try:
        prediction = engine.run(item)
    except ModelUnavailable:
        raise
    except AppError as exc:
        return Prediction(pages=0), str(exc)
    except Exception as exc:  # one item's crash must not end the run
        logger.exception("benchmark engine %s failed on item %s", engine.name, item.item_id)
        return Prediction(pages=0), f"{type(exc).__name__}: {exc}"
    return prediction, prediction.error
