"""`python cli.py models list|status|download`: the catalog and its availability."""

from __future__ import annotations

import argparse
import json
import sys

from cli_commands.acting import Acting
from models.config import AppConfig
from utils.errors import BadInput
from utils.system.admin import run_status_check
from utils.system.model_status import StatusReport, check_models, status_path


def run_models_list(args: argparse.Namespace, config: AppConfig) -> int:
    """Check every entry and print the table; writes nothing (``models status`` does)."""
    report = check_models(config)
    if args.json:
        print(json.dumps(_rows(report), ensure_ascii=False, indent=2))
        return 0
    print(format_status_table(report))
    return 0


def run_models_status(args: argparse.Namespace, acting: Acting) -> int:
    """Check every entry, write model_status.json and a history line, print the result
    (an admin action: checked and logged)."""
    report = run_status_check(acting.config, acting.user, str(acting.loaded.source))
    path = status_path(acting.config)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(format_status_table(report))
    print(
        f"\n{len(report.available_ids)} of {len(report.models)} available; "
        f"checked in {report.check_seconds:.1f} s; written to {path}",
        file=sys.stderr,
    )
    return 0


def format_status_table(report: StatusReport) -> str:
    """One line per entry: available?, id, backend, task, then what was found or what to do."""
    lines = []
    for check in report.models:
        mark = "yes" if check.available else "no "
        said = check.detail if check.available else f"{check.detail} -> {check.fix}"
        lines.append(f"{mark}  {check.model_id:<16} {check.backend:<12} {check.task:<5} {said}")
    return "\n".join(lines)


def _rows(report: StatusReport) -> list[dict]:
    return [
        {
            "id": check.model_id,
            "name": check.display_name,
            "backend": check.backend,
            "task": check.task,
            "available": check.available,
            "detail": check.detail,
            "fix": check.fix,
            "size_bytes": check.size_bytes,
            "latency_ms": check.latency_ms,
        }
        for check in report.models
    ]


def run_models_download(args: argparse.Namespace, config: AppConfig) -> int:
    from models.runtime.hub import download_model

    entry = config.models.get(args.model)
    source = entry.source if entry else args.model
    if entry is not None and entry.backend != "transformers":
        raise BadInput(f"'{args.model}' is a {entry.backend} entry: there are no weights to fetch")
    path = download_model(source or "", progress=_progress)
    print(f"\n{source} is in {path}")
    return 0


def _progress(done: int, total: int) -> None:
    if total:
        print(f"\r{done / 1e6:8.1f} / {total / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)
