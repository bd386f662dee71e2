"""The benchmark runner, used by the benchmark page and `cli.py bench`.

A run is one labelled dataset read by one or more engines. For each engine and
item the runner calls the engine, scores the prediction against the item's
ground truth and appends one ``ItemRecord`` to the run's ``items.jsonl`` at once
(see ``utils.bench.store`` for the files). The manifest is written before the
first item and the summary after the last, so:

- a crash or a kill loses at most the items in flight; running the same run id
  again skips every (engine, item) already recorded and redoes the rest;
- the summary is a pure function of the manifest and the records (sorted by
  engine and item, bootstrap with a fixed seed), so a resumed run summarises
  exactly like an uninterrupted one, and ``rebuild_summary`` / ``rescore``
  recompute it without any model.

Engines are catalog ids (OCR-capable entries of the profile), read through the
app's OCR pipeline with no cache so timings are real, or names registered with
``register_bench_engine`` (tests, extensions; also loaded from the modules named
in ``$CHATVLM_BENCH_ENGINES``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.config import AppConfig, LoadedConfig
from models.ocr.base import OcrLine
from models.runtime.gpu import cuda_in_use
from utils.bench import store
from utils.bench.datasets import Dataset, LabelledItem, builtin_dataset, load_dataset
from utils.bench.metrics import METRICS, aggregate, bootstrap_ci, field_accuracy
from utils.bench.store import (
    DatasetInfo,
    EngineInfo,
    EngineSummary,
    FieldScore,
    HardwareInfo,
    ItemRecord,
    Manifest,
    MetricSummary,
    RunState,
    Summary,
)
from utils.errors import AppError, BadInput, ModelUnavailable

logger = logging.getLogger(__name__)

#: Modules (comma-separated) imported before engines are resolved; they call
#: ``register_bench_engine`` to add engines without touching the profile.
PLUGIN_ENV_VAR = "CHATVLM_BENCH_ENGINES"
#: Metrics scored on structured fields; every other registered metric is scored on text.
FIELD_METRICS = frozenset({"field_accuracy"})
#: Packages whose versions go into the manifest (read from metadata, never imported).
VERSIONED_PACKAGES = (
    "torch",
    "transformers",
    "rapidocr",
    "onnxruntime",
    "pytesseract",
    "pillow",
    "numpy",
)
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95

ProgressFn = Callable[[int, int, int, float | None], None]
"""``(done, total, failures, seconds_left_estimate)``; done counts items recorded before a
resume too; the estimate is None until one item has finished in this session."""


# --------------------------------------------------------------------------- engines


class Prediction(BaseModel):
    """What an engine made of one item; ``error`` set when it failed part-way."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    fields: dict[str, str | None] = Field(default_factory=dict)
    seconds: float = Field(0.0, ge=0.0)
    pages: int = Field(1, ge=0)
    tokens_in: int | None = None
    tokens_out: int | None = None
    lines: list[OcrLine] = Field(default_factory=list)
    error: str | None = None


@runtime_checkable
class BenchEngine(Protocol):
    """An engine the runner can drive.

    ``backend`` "openai" means requests go to a server: up to ``concurrency`` items
    are then in flight at once; any other backend runs one item at a time.
    ``run`` raises ``ModelUnavailable`` when the engine cannot run at all (the run
    stops), anything else fails that item only.
    """

    name: str
    backend: str
    concurrency: int

    def run(self, item: LabelledItem) -> Prediction: ...


EngineFactory = Callable[[AppConfig], BenchEngine]

_REGISTERED: dict[str, EngineFactory] = {}
_LOADED_PLUGINS: set[str] = set()
_REGISTRY_LOCK = threading.Lock()


def register_bench_engine(name: str, factory: EngineFactory) -> None:
    """Make ``name`` usable as a benchmark engine; it takes precedence over a catalog id."""
    if not name or not name.strip():
        raise ValueError("a benchmark engine needs a name")
    with _REGISTRY_LOCK:
        _REGISTERED[name] = factory


def unregister_bench_engine(name: str) -> None:
    with _REGISTRY_LOCK:
        _REGISTERED.pop(name, None)


def load_engine_plugins() -> None:
    """Import the modules named in ``$CHATVLM_BENCH_ENGINES`` (each once)."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGIN_ENV_VAR, "").split(","))):
        if module in _LOADED_PLUGINS:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ModelUnavailable(
                f"cannot import benchmark engine module {module!r} ({exc})",
                hint=f"fix or unset ${PLUGIN_ENV_VAR}",
            ) from exc
        _LOADED_PLUGINS.add(module)


def bench_engine_names(config: AppConfig) -> list[str]:
    """What a run can use: OCR-capable catalog ids (default first), then registered names."""
    from models.registry import ocr_model_ids

    load_engine_plugins()
    catalog = ocr_model_ids(config)
    return catalog + sorted(name for name in _REGISTERED if name not in catalog)


class PipelineEngine:
    """A catalog engine read through the app's OCR pipeline, without the cache; fields are
    extracted with the item's ``template`` (the runner resolves it)."""

    def __init__(self, model_id: str, config: AppConfig) -> None:
        from utils.ocr.pipeline import OcrSettings, check_settings

        entry = config.models[model_id]
        self.name = model_id
        self.backend = entry.backend
        self.concurrency = (
            config.endpoints[entry.endpoint].concurrency
            if entry.backend == "openai" and entry.endpoint
            else 1
        )
        self.config = config
        self.settings = OcrSettings(engine=model_id, deskew=config.ocr.deskew)
        check_settings(self.settings, config)

    def run(self, item: LabelledItem) -> Prediction:
        from utils.ocr.pipeline import ocr_file

        try:
            data = item.image.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read {item.image.name}: {exc.strerror}") from exc
        settings = self.settings.model_copy(update={"template": item.template})
        started = time.perf_counter()
        result = ocr_file(data, item.image.name, settings, self.config, cache=None)
        seconds = time.perf_counter() - started
        if result.error:
            raise BadInput(result.error)
        page_errors = [f"page {p.page}: {p.error}" for p in result.pages if p.status == "error"]
        return Prediction(
            text=result.text,
            fields={name: value.value for name, value in result.fields.items()},
            seconds=seconds,
            pages=len(result.pages),
            tokens_in=_page_tokens(result, "prompt_tokens"),
            tokens_out=_page_tokens(result, "completion_tokens"),
            lines=[line for page in result.pages for line in page.lines],
            error="; ".join(page_errors) or None,
        )


def _page_tokens(result, key: str) -> int | None:
    """Token counts a VLM engine reported, summed over pages (None for classical engines)."""
    counts = [page.usage.get(key) for page in result.pages if page.usage]
    known = [count for count in counts if isinstance(count, int)]
    return sum(known) if known else None


def create_bench_engine(name: str, config: AppConfig) -> BenchEngine:
    """A registered engine, else an OCR-capable catalog id; ``ModelUnavailable`` otherwise."""
    load_engine_plugins()
    factory = _REGISTERED.get(name)
    if factory is not None:
        return factory(config)
    entry = config.models.get(name)
    if entry is None or entry.task == "chat" or not entry.enabled:
        known = ", ".join(bench_engine_names(config))
        raise ModelUnavailable(
            f"'{name}' is not an OCR engine of the active profile", hint=f"use one of: {known}"
        )
    return PipelineEngine(name, config)


def engine_info(engine: BenchEngine, config: AppConfig) -> EngineInfo:
    """How an engine was configured, for the manifest (and to check a resume)."""
    if isinstance(engine, PipelineEngine):
        from utils.ocr.pipeline import run_settings_record

        entry = config.models[engine.name]
        endpoint = config.endpoints.get(entry.endpoint) if entry.endpoint else None
        return EngineInfo(
            name=engine.name,
            source="catalog",
            backend=engine.backend,
            concurrency=engine.concurrency,
            catalog_entry=entry.model_dump(mode="json"),
            endpoint=endpoint.model_dump(mode="json") if endpoint else None,
            ocr_options=run_settings_record(engine.settings, config),
        )
    return EngineInfo(
        name=engine.name,
        source="registered",
        backend=engine.backend,
        concurrency=_in_flight(engine),
    )


def _in_flight(engine: BenchEngine) -> int:
    return max(1, engine.concurrency) if engine.backend == "openai" else 1


# --------------------------------------------------------------------------- scoring


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


# --------------------------------------------------------------------------- summary


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


# --------------------------------------------------------------------------- run set-up


class BenchRequest(BaseModel):
    """What to run. On resume (``run_id`` of a stored run) every other field may be left
    out; any that is given must match the stored run."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description='"builtin" or a folder; default: profile')
    format: Literal["auto", "sroie", "pairs"] = "auto"
    engines: list[str] = Field(default_factory=list)
    limit: int | None = Field(None, ge=1)
    template: str | None = None
    run_id: str | None = None
    name: str | None = None


class RunOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    status: Literal["complete", "cancelled"]
    summary: Summary
    recorded_now: int
    recorded_before: int


def builtin_root(config: AppConfig) -> Path:
    """Where the built-in sample set is written (once) and read from."""
    return config.data_dir / "datasets" / "builtin"


def open_dataset(spec: str, fmt: Literal["auto", "sroie", "pairs"], config: AppConfig) -> Dataset:
    """``spec`` "builtin" (the sample set, written under the data folder) or a folder."""
    if spec == "builtin":
        return builtin_dataset(builtin_root(config))
    return load_dataset(Path(spec).expanduser(), fmt)


def reopen_dataset(info: DatasetInfo) -> Dataset:
    """The dataset a stored run read, from where it was then."""
    if info.format == "builtin":
        return builtin_dataset(Path(info.root))
    return load_dataset(Path(info.root), "sroie" if info.format == "sroie" else "pairs")


def check_template(name: str | None, config: AppConfig) -> str | None:
    if name is not None and name not in config.templates:
        known = ", ".join(config.templates) or "none"
        raise BadInput(f"no template '{name}'", hint=f"use one of: {known}")
    return name


def template_for(item: LabelledItem, manifest: Manifest) -> str | None:
    """The run's template, else the one the dataset names for the item, else the default."""
    return manifest.template or item.template or manifest.fallback_template


def _template_specs(items: list[LabelledItem], run: str | None, fallback: str | None, config):
    """The specs of every template the run's items will use; unknown names are refused."""
    names = {run} if run else {item.template or fallback for item in items}
    specs = {}
    for name in sorted(n for n in names if n):
        check_template(name, config)
        specs[name] = config.templates[name].model_dump(mode="json")
    return specs


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def hardware_info() -> HardwareInfo:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = None
    return HardwareInfo(
        platform=platform.platform(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        ram_total_bytes=ram,
        cuda_devices=_cuda_device_names(),
    )


def _cuda_device_names() -> list[str]:
    cuda = cuda_in_use(initialised=True)
    if cuda is None:
        return []
    return [cuda.get_device_name(index) for index in range(cuda.device_count())]


def peak_rss_bytes() -> int | None:
    """The process's peak resident memory so far (its high-water mark, not per item)."""
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0)) or None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def peak_vram_bytes() -> int | None:
    """Peak CUDA memory allocated by this process so far, summed over devices."""
    cuda = cuda_in_use(initialised=True)
    if cuda is None:
        return None
    return sum(cuda.max_memory_allocated(index) for index in range(cuda.device_count()))


@dataclass
class _Plan:
    manifest: Manifest
    dataset: Dataset
    engines: list[BenchEngine]
    resumed: bool


def _plan_new(loaded: LoadedConfig, request: BenchRequest) -> _Plan:
    config = loaded.config
    if not request.engines:
        raise BadInput("no engine chosen", hint="pick one or more, e.g. --engine rapidocr")
    run_id = store.new_run_id() if request.run_id is None else store.check_run_id(request.run_id)
    spec = request.dataset or config.benchmark.dataset
    dataset = open_dataset(spec, request.format, config)
    template = check_template(request.template, config)
    engines = [create_bench_engine(name, config) for name in request.engines]
    limit = request.limit or config.benchmark.limit
    items = dataset.items[:limit] if limit else dataset.items
    now = store.now_iso()
    manifest = Manifest(
        run_id=run_id,
        name=request.name or f"{dataset.name} × {', '.join(request.engines)}",
        created_at=now,
        started_at=now,
        versions=package_versions(),
        profile_path=str(loaded.source),
        profile_sha256=loaded.sha256,
        engines=[engine_info(engine, config) for engine in engines],
        upload_limits=config.app.upload.model_dump(mode="json"),
        dataset=DatasetInfo(
            name=dataset.name,
            root=str(dataset.root),
            format=dataset.format,
            content_hash=dataset.content_hash,
            items=len(dataset.items),
            problems=dataset.problems,
        ),
        hardware=hardware_info(),
        limit=limit,
        template=template,
        fallback_template=config.ocr.template,
        templates=_template_specs(items, template, config.ocr.template, config),
        items_planned=len(items),
        bootstrap_resamples=config.benchmark.bootstrap_resamples,
        bootstrap_seed=BOOTSTRAP_SEED,
    )
    return _Plan(manifest, dataset, engines, resumed=False)


def _plan_resume(loaded: LoadedConfig, request: BenchRequest, manifest: Manifest) -> _Plan:
    config = loaded.config
    _check_request_matches(request, manifest, config)
    dataset = reopen_dataset(manifest.dataset)
    if dataset.content_hash != manifest.dataset.content_hash:
        raise BadInput(
            f"the dataset of run {manifest.run_id} changed since it started "
            f"({manifest.dataset.root})",
            hint="restore the files, or start a new run on the changed set",
        )
    items = dataset.items[: manifest.items_planned]
    templates = _template_specs(items, manifest.template, manifest.fallback_template, config)
    if templates != manifest.templates:
        raise BadInput(
            f"the profile's templates changed since run {manifest.run_id} started",
            hint="resume with the profile the run started with, or start a new run",
        )
    engines = []
    for stored in manifest.engines:
        engine = create_bench_engine(stored.name, config)
        if engine_info(engine, config) != stored:
            raise BadInput(
                f"engine '{stored.name}' is configured differently than when run "
                f"{manifest.run_id} started",
                hint="resume with the profile the run started with, or start a new run",
            )
        engines.append(engine)
    return _Plan(manifest, dataset, engines, resumed=True)


def _check_request_matches(request: BenchRequest, manifest: Manifest, config: AppConfig) -> None:
    stored = {
        "engines": [e.name for e in manifest.engines],
        "limit": manifest.limit,
        "template": manifest.template,
    }
    asked = {
        "engines": request.engines or None,
        "limit": request.limit,
        "template": request.template,
    }
    for key, value in asked.items():
        if value is not None and value != stored[key]:
            raise BadInput(
                f"run {manifest.run_id} was started with {key} {stored[key]!r}, not {value!r}",
                hint="leave the option out to resume the run, or omit --run-id for a new run",
            )
    if request.dataset is not None:
        root = (
            builtin_root(config)
            if request.dataset == "builtin"
            else Path(request.dataset).expanduser()
        )
        if root.resolve() != Path(manifest.dataset.root).resolve():
            raise BadInput(
                f"run {manifest.run_id} reads {manifest.dataset.root}, not {request.dataset}",
                hint="leave --dataset out to resume the run",
            )


# --------------------------------------------------------------------------- the run


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
) -> RunOutcome:
    """Run (or resume) a benchmark; returns when every item is recorded or ``cancel`` is set.

    Raises ``BadInput`` / ``ModelUnavailable`` before anything is written when the
    request cannot run; an engine that becomes unavailable mid-run marks it failed.
    """
    data_dir = loaded.config.data_dir
    run_id = None if request.run_id is None else store.check_run_id(request.run_id)
    if run_id is not None and store.run_exists(data_dir, run_id):
        plan = _plan_resume(loaded, request, store.read_manifest(data_dir, run_id))
    else:
        plan = _plan_new(loaded, request)
    with store.hold_run_lock(data_dir, plan.manifest.run_id):
        if not plan.resumed:
            store.write_manifest(data_dir, plan.manifest)
        store.write_state(data_dir, plan.manifest.run_id, "running")
        return _run_locked(data_dir, plan, progress, cancel)


def _run_locked(
    data_dir: Path, plan: _Plan, progress: ProgressFn | None, cancel: threading.Event | None
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
    if _in_flight(engine) == 1:
        for item in pending:
            if run.cancelled:
                return
            _record(run, process_item(run.manifest, engine, item))
        return
    _run_concurrently(run, engine, pending, _in_flight(engine))


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
        return ItemRecord(
            **base, status="skipped", message=item.problem, finished_at=store.now_iso()
        )
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
        finished_at=store.now_iso(),
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


# --------------------------------------------------------------------------- stored runs


class RunDetail(BaseModel):
    """One run opened for display: its files, with the summary current to the records."""

    model_config = ConfigDict(extra="forbid")

    manifest: Manifest
    state: RunState
    summary: Summary
    items: list[ItemRecord]
    bad_lines: int = 0


def open_run(data_dir: Path, run_id: str) -> RunDetail:
    """The stored summary when it covers every record, else one rebuilt in memory."""
    manifest = store.read_manifest(data_dir, run_id)
    items = store.read_items(data_dir, run_id)
    summary = store.read_summary(data_dir, run_id)
    if summary is None or summary.items_recorded != len(items.records):
        summary = build_summary(manifest, items.records)
    return RunDetail(
        manifest=manifest,
        state=store.read_state(data_dir, run_id),
        summary=summary,
        items=items.records,
        bad_lines=items.bad_lines,
    )


def rebuild_summary(data_dir: Path, run_id: str) -> Summary:
    """Recompute summary.json from the item records and store it."""
    manifest = store.read_manifest(data_dir, run_id)
    summary = build_summary(manifest, store.read_items(data_dir, run_id).records)
    store.write_summary(data_dir, summary)
    return summary


class RescoreOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    records: int
    changed: int
    dropped_lines: int
    summary: Summary


def rescore(data_dir: Path, run_id: str) -> RescoreOutcome:
    """Recompute every item's metrics from its saved prediction and truth (no model runs),
    rewrite items.jsonl when anything changed, and rewrite the summary."""
    manifest = store.read_manifest(data_dir, run_id)
    items = store.read_items(data_dir, run_id)
    records = [rescored(record) for record in items.records]
    changed = sum(new != old for new, old in zip(records, items.records, strict=True))
    dropped = items.bad_lines + items.duplicates
    if changed or dropped:
        store.replace_items(data_dir, run_id, records)
    summary = build_summary(manifest, records)
    store.write_summary(data_dir, summary)
    return RescoreOutcome(
        run_id=run_id, records=len(records), changed=changed, dropped_lines=dropped, summary=summary
    )


# --------------------------------------------------------------------------- comparison


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
    ("peak_rss_bytes", "peak RSS (bytes)", "lower"),
    ("peak_vram_bytes", "peak VRAM (bytes)", "lower"),
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
