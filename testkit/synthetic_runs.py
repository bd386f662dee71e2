"""Synthetic benchmark runs written straight to disk, for the perf scripts.

They skip the runner: a manifest, items.jsonl and state, as a finished run
leaves them, so listing, opening and rescoring can be timed at any scale.
"""

from __future__ import annotations

from pathlib import Path

from utils.bench import store
from utils.bench.records import DatasetInfo, EngineInfo, HardwareInfo, ItemRecord, Manifest
from utils.storage import atomic_write_bytes, utc_now_iso


def synthetic_manifest(
    run_id: str, items: int, engines: list[str], name: str, versions: dict | None = None
) -> Manifest:
    return Manifest(
        run_id=run_id,
        name=name,
        created_at=utc_now_iso(),
        started_at=utc_now_iso(),
        versions=versions or {},
        profile_path="/tmp/profile.yaml",
        profile_sha256="0" * 64,
        engines=[EngineInfo(name=e, source="registered", backend="fake") for e in engines],
        upload_limits={},
        dataset=DatasetInfo(
            name="synthetic",
            root="/tmp/synthetic",
            format="pairs",
            content_hash="1" * 64,
            items=items,
        ),
        hardware=HardwareInfo(platform="test", machine="x86_64"),
        items_planned=items,
    )


def write_run(data_dir: Path, manifest: Manifest, records: list[ItemRecord]) -> None:
    """The run's files as a completed run leaves them (the summary is the caller's)."""
    store.write_manifest(data_dir, manifest)
    lines = "".join(record.model_dump_json() + "\n" for record in records).encode()
    atomic_write_bytes(store.items_path(data_dir, manifest.run_id), lines)
    store.write_state(data_dir, manifest.run_id, "complete")
