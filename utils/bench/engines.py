"""What a benchmark run reads documents with.

Production engines are the OCR-capable entries of the active profile
(``models.registry``), each read through the app's OCR pipeline with no cache so
timings are real (``PipelineEngine``). ``create_bench_engine`` is the runner's
default engine factory; tests and perf scripts hand ``run_benchmark`` their own
factory to drive fake engines, which the page and the CLI never do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from models.config import AppConfig
from models.ocr.base import OcrLine
from utils.bench.datasets import LabelledItem
from utils.bench.records import EngineInfo
from utils.errors import BadInput, ModelUnavailable


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


EngineFactory = Callable[[str, AppConfig], BenchEngine]
"""``(engine name, config) -> engine``; raises ``ModelUnavailable`` for an unknown name."""


def bench_engine_names(config: AppConfig) -> list[str]:
    """What a run can use: the OCR-capable catalog ids, default first."""
    from models.registry import ocr_model_ids

    return ocr_model_ids(config)


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
    """An OCR-capable catalog id of the profile; ``ModelUnavailable`` otherwise."""
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
        concurrency=items_in_flight(engine),
    )


def items_in_flight(engine: BenchEngine) -> int:
    """How many items the runner keeps in flight for the engine at once."""
    return max(1, engine.concurrency) if engine.backend == "openai" else 1
