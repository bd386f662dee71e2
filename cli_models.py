"""`python cli.py models list|download`: the catalog and its availability."""

from __future__ import annotations

import argparse
import json
import sys

from models.config import AppConfig
from models.registry import model_status
from utils.errors import BadInput


def run_models_list(args: argparse.Namespace, config: AppConfig) -> int:
    rows = []
    for model_id, entry in config.models.items():
        status = model_status(model_id, config)
        rows.append(
            {
                "id": model_id,
                "name": entry.display_name,
                "backend": entry.backend,
                "task": entry.task,
                "available": status.available,
                "detail": status.detail,
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        mark = "yes" if row["available"] else "no "
        print(f"{mark}  {row['id']:<16} {row['backend']:<12} {row['task']:<5} {row['detail']}")
    return 0


def run_models_download(args: argparse.Namespace, config: AppConfig) -> int:
    from models.hub import download_model

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
