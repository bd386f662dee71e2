"""Stored benchmark runs read back: opened for display, summarised again, rescored.

None of these runs a model: everything is recomputed from the run's manifest and
item records (see ``utils.bench.scoring``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from utils.auth import LOCAL_USER, User
from utils.bench import store
from utils.bench.records import ItemRecord, Manifest, Summary
from utils.bench.scoring import build_summary, rescored
from utils.bench.store import RunState


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


def rescore(data_dir: Path, run_id: str, *, user: User = LOCAL_USER) -> RescoreOutcome:
    """Recompute every item's metrics from its saved prediction and truth (no model runs),
    rewrite items.jsonl when anything changed, and rewrite the summary (owner or admin)."""
    manifest = store.read_manifest(data_dir, run_id)
    store.check_may_manage(data_dir, manifest, user, "re-score")
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
