"""Which catalog entries can run right now, kept on disk for the Models page and the CLI.

``check_models`` asks the registry about every entry of a profile (engine
installed, weights in the local Hugging Face cache, server reachable) and adds
what the page shows beside it: size on disk, endpoint latency, the models a
server offers. Nothing is loaded. Endpoints are probed once each, in parallel
with the other checks, so a check takes about as long as the slowest server.

``write_status`` replaces ``<data_dir>/model_status.json`` atomically and appends
one summary line to ``<data_dir>/model_status_history.jsonl``, which the page
charts. A corrupt status file is moved aside by ``read_status``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from models.config import AppConfig, ModelEntry
from models.registry import availability
from utils.errors import AppError
from utils.storage import (
    MissingDataFile,
    VersionedRecord,
    append_jsonl,
    atomic_write_json,
    read_json,
    read_jsonl,
)

logger = logging.getLogger(__name__)

STATUS_FILE = "model_status.json"
HISTORY_FILE = "model_status_history.jsonl"
PROBE_WORKERS = 8
# The registry joins what happened and what to do as "message — hint" (AppError.__str__).
_HINT_SEPARATOR = " — "


class EndpointCheck(BaseModel):
    """One OpenAI-compatible server as a check found it."""

    model_config = ConfigDict(extra="forbid")

    key: str
    base_url: str
    reachable: bool
    latency_ms: float | None = None
    models: list[str] = Field(default_factory=list)
    error: str | None = None


class ModelCheck(BaseModel):
    """One catalog entry: can it run here, and if not, the one thing to do."""

    model_config = ConfigDict(extra="forbid")

    model_id: str
    display_name: str
    backend: str
    task: str
    source: str | None = Field(None, description="Hugging Face id, folder or served name")
    enabled: bool = True
    available: bool
    detail: str = Field(description="what the check found")
    fix: str | None = Field(None, description="what to do when it is not available")
    size_bytes: int | None = Field(None, ge=0, description="on disk, for local weights")
    endpoint: str | None = None
    latency_ms: float | None = None
    served_models: list[str] = Field(default_factory=list)


class StatusReport(VersionedRecord):
    """``model_status.json``: every entry of the active profile at one moment."""

    SCHEMA_VERSION = 1

    checked_at: datetime
    profile: str
    check_seconds: float = Field(ge=0)
    models: list[ModelCheck]
    endpoints: list[EndpointCheck] = Field(default_factory=list)

    @property
    def available_ids(self) -> list[str]:
        return [m.model_id for m in self.models if m.available]


class StatusHistoryEntry(VersionedRecord):
    """One line of ``model_status_history.jsonl``: a check, summed up."""

    SCHEMA_VERSION = 1

    checked_at: datetime
    profile: str
    total: int = Field(ge=0)
    available: int = Field(ge=0)
    available_ids: list[str] = Field(default_factory=list)


# --- checking ------------------------------------------------------------------------------


def check_models(config: AppConfig, profile: str = "") -> StatusReport:
    """Probe every catalog entry and endpoint of ``config`` (no loading; servers are asked)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS, thread_name_prefix="model-check") as pool:
        endpoint_jobs = {key: pool.submit(_check_endpoint, key, config) for key in config.endpoints}
        model_jobs = [
            pool.submit(_registry_verdict, model_id, config) for model_id in config.models
        ]
        endpoints = {key: job.result() for key, job in endpoint_jobs.items()}
        verdicts = [job.result() for job in model_jobs]
    models = [
        _model_check(model_id, config.models[model_id], available, detail, endpoints)
        for model_id, (available, detail) in zip(config.models, verdicts, strict=True)
    ]
    return StatusReport(
        checked_at=datetime.now(UTC),
        profile=profile,
        check_seconds=round(time.perf_counter() - started, 3),
        models=models,
        endpoints=list(endpoints.values()),
    )


def _registry_verdict(model_id: str, config: AppConfig) -> tuple[bool, str]:
    """The registry's answer, so this page and the model pickers never disagree."""
    try:
        verdict = availability(model_id, config)
    except AppError as exc:
        return False, str(exc)
    return verdict.available, verdict.detail


def _check_endpoint(key: str, config: AppConfig) -> EndpointCheck:
    from models.chat.openai_client import probe_endpoint

    endpoint = config.endpoints[key]
    status = probe_endpoint(endpoint)
    return EndpointCheck(
        key=key,
        base_url=endpoint.base_url,
        reachable=status.reachable and not status.error,
        latency_ms=round(status.latency_ms, 1) if status.latency_ms is not None else None,
        models=status.models,
        error=status.error,
    )


def _model_check(
    model_id: str,
    entry: ModelEntry,
    available: bool,
    found: str,
    endpoints: dict[str, EndpointCheck],
) -> ModelCheck:
    detail, hint = _split_hint(found)
    server = endpoints.get(entry.endpoint or "")
    check = ModelCheck(
        model_id=model_id,
        display_name=entry.display_name,
        backend=entry.backend,
        task=entry.task,
        source=entry.source or entry.served_name,
        enabled=entry.enabled,
        available=available,
        detail=detail,
        fix=None if available else _fix(entry, server, hint),
        endpoint=entry.endpoint,
    )
    if entry.backend == "transformers" and entry.source:
        check.size_bytes, note = _size_on_disk(entry.source)
        if available and note:
            check.detail = f"{check.detail} ({note})"
    if server is not None:
        check.latency_ms = server.latency_ms
        check.served_models = server.models
    return check


def _split_hint(text: str) -> tuple[str, str | None]:
    """("what happened", "what to do") from the registry's "message — hint" line."""
    if _HINT_SEPARATOR not in text:
        return text, None
    message, _, hint = text.rpartition(_HINT_SEPARATOR)
    return message, hint


def _fix(entry: ModelEntry, server: EndpointCheck | None, hint: str | None) -> str:
    """The one thing to do: the registry's hint, made specific where this module knows more."""
    if entry.backend == "openai" and server is not None and server.latency_ms is None:
        served = entry.served_name or entry.source or "MODEL"
        return (
            f"start the server behind endpoints.{server.key} (`docker compose --profile gpu up "
            f"-d vllm`, `vllm serve {served}` or `ollama serve`), or fix "
            f"endpoints.{server.key}.base_url in the profile"
        )
    return hint or _fallback_fix(entry, server)


def _fallback_fix(entry: ModelEntry, server: EndpointCheck | None) -> str:
    """For the verdicts that carry no hint (a server that does not serve the model)."""
    if entry.backend == "openai" and server is not None:
        served = entry.served_name or entry.source or "the model"
        offered = ", ".join(server.models) or "none"
        return (
            f"serve {served} on {server.base_url} (vllm serve {served}), or set this entry's "
            f"`served_name` to one the server offers: {offered}"
        )
    return "see the detail, fix the profile entry, then check again"


def _size_on_disk(source: str) -> tuple[int | None, str | None]:
    from models.runtime.hub import cached_model_info

    info = cached_model_info(source)
    if info is None:
        return None, None
    note = None if info.has_weights else "no weight files: re-run the download"
    return info.size_bytes, note


# --- files ---------------------------------------------------------------------------------


def status_path(config: AppConfig) -> Path:
    return config.data_dir / STATUS_FILE


def history_path(config: AppConfig) -> Path:
    return config.data_dir / HISTORY_FILE


def write_status(config: AppConfig, report: StatusReport) -> Path:
    """Replace the status file (atomically) and append the check to the history."""
    path = status_path(config)
    atomic_write_json(path, report)
    append_jsonl(
        history_path(config),
        StatusHistoryEntry(
            checked_at=report.checked_at,
            profile=report.profile,
            total=len(report.models),
            available=len(report.available_ids),
            available_ids=report.available_ids,
        ),
    )
    logger.info(
        "model status: %d of %d available (%s)",
        len(report.available_ids),
        len(report.models),
        path,
    )
    return path


def read_status(config: AppConfig) -> StatusReport | None:
    """The last check, None before the first one.

    A file that fails validation is moved to ``<data_dir>/.corrupt/`` and
    ``CorruptDataFile`` (a ``StorageError``) is raised once, saying where it went.
    """
    try:
        return read_json(status_path(config), StatusReport)
    except MissingDataFile:
        return None


def read_history(config: AppConfig, limit: int = 500) -> list[StatusHistoryEntry]:
    """The last ``limit`` checks, oldest first; unreadable lines are skipped and logged."""
    records = read_jsonl(history_path(config), StatusHistoryEntry).records
    return records[-limit:] if limit > 0 else []
