"""What a benchmark run is made of: its manifest, one record per (engine, item), its summary.

Plain typed records, written and read by ``utils.bench.store`` (which owns the run
folders, the state file and the listing). The manifest and item records are written
by the runner, the summary by ``utils.bench.scoring``; stored runs are read back with
these same models, so a field added here needs a default or a schema migration.

Every record refuses NaN and infinity (``FINITE``): JSON has neither, and a stored
``Infinity`` or ``1e999`` that passed validation would break the next summary or
rescore; refused on read, such a line is skipped and counted like any invalid one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.ocr.base import OcrLine
from utils.storage import VersionedRecord

ItemStatus = Literal["ok", "error", "skipped"]

#: The config of every record here: no unknown keys, no NaN or infinity in any float.
FINITE = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Strict(BaseModel):
    model_config = FINITE


class EngineInfo(_Strict):
    """One engine of a run as it was configured when the run started."""

    name: str
    # "registered": an engine object the caller handed the runner (tests, perf scripts),
    # not a catalog entry. The value keeps its old name so stored manifests still read.
    source: Literal["catalog", "registered"]
    backend: str
    concurrency: int = Field(1, ge=1)
    catalog_entry: dict | None = None
    endpoint: dict | None = None
    ocr_options: dict | None = None


class DatasetInfo(_Strict):
    name: str
    root: str
    format: str
    content_hash: str
    items: int = Field(ge=0)
    problems: list[str] = Field(default_factory=list, description="folder-level, e.g. orphans")


class HardwareInfo(_Strict):
    platform: str
    machine: str
    cpu_count: int | None = None
    ram_total_bytes: int | None = None
    cuda_devices: list[str] = Field(default_factory=list)


class Manifest(VersionedRecord):
    """Everything needed to know what a run measured; written before any item."""

    model_config = FINITE
    SCHEMA_VERSION = 1

    run_id: str
    name: str
    created_at: str
    started_at: str
    versions: dict[str, str | None]
    profile_path: str
    profile_sha256: str
    engines: list[EngineInfo]
    upload_limits: dict
    dataset: DatasetInfo
    hardware: HardwareInfo
    limit: int | None = None
    template: str | None = Field(None, description="the run's template, for every item")
    fallback_template: str | None = Field(
        None, description="for items whose dataset names no template (the profile's OCR default)"
    )
    templates: dict[str, dict] = Field(
        default_factory=dict, description="the specs of every template the run can use"
    )
    items_planned: int = Field(ge=0, description="dataset items after `limit`")
    owner_id: str | None = Field(None, description="user id of who started it (sign-in on)")
    owner: str = Field("", description="their e-mail or name when they started it")
    bootstrap_resamples: int = Field(1000, ge=1)
    bootstrap_seed: int = 0


class ItemRecord(VersionedRecord):
    """One engine on one item: prediction, truth, scores, cost. Self-contained, so a
    rescore needs neither the model nor the dataset folder."""

    model_config = FINITE
    SCHEMA_VERSION = 1

    run_id: str
    engine: str
    item_id: str
    status: ItemStatus
    message: str | None = None
    template: str | None = Field(None, description="fields were extracted with it (None: not)")
    prediction: str = ""
    predicted_fields: dict[str, str | None] = Field(default_factory=dict)
    truth_text: str | None = None
    truth_fields: dict[str, str] | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    fields_correct: dict[str, bool] = Field(default_factory=dict)
    seconds: float | None = None
    pages: int = 0
    tokens_in: int | None = None
    tokens_out: int | None = None
    boxes: list[OcrLine] = Field(
        default_factory=list, description="predicted lines with boxes, for the drill-down view"
    )
    peak_rss_bytes: int | None = None
    peak_vram_bytes: int | None = None
    finished_at: str = ""


class MetricSummary(_Strict):
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    direction: Literal["higher", "lower"]


class FieldScore(_Strict):
    accuracy: float
    n: int


class EngineSummary(_Strict):
    engine: str
    n: int
    ok: int
    errors: int
    skipped: int
    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    fields: dict[str, FieldScore] = Field(default_factory=dict)
    latency_mean_s: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    pages: int = 0
    pages_per_minute: float | None = None
    tokens_out: int | None = None
    output_tokens_per_s: float | None = None
    peak_rss_bytes: int | None = None
    peak_vram_bytes: int | None = None


class Summary(VersionedRecord):
    """Aggregates of a run; a pure function of its manifest and item records."""

    model_config = FINITE
    SCHEMA_VERSION = 1

    run_id: str
    items_total: int
    items_recorded: int
    complete: bool
    bootstrap_resamples: int
    bootstrap_seed: int
    confidence: float = 0.95
    engines: list[EngineSummary] = Field(default_factory=list)
