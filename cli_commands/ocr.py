"""`python cli.py ocr`: OCR files from a terminal, one result per file.

Kept out of cli.py so `config` and `cache` commands stay import-light; nothing
here imports torch or transformers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.config import AppConfig
from utils.cache import open_cache
from utils.documents.uploads import read_upload_file, sanitize_filename
from utils.errors import AppError, BadInput
from utils.ocr.pipeline import (
    DocumentResult,
    OcrSettings,
    check_settings,
    document_limits,
    ocr_file,
)
from utils.ocr.records import FieldRecord, field_records


def run_ocr_command(args: argparse.Namespace, config: AppConfig) -> int:
    """Each file is read and printed independently; exit 1 if any of them failed."""
    settings = OcrSettings(
        engine=args.engine or config.ocr.engine,
        template=args.template or config.ocr.template,
        deskew=args.deskew or config.ocr.deskew,
        auto_rotate=args.auto_rotate or config.ocr.auto_rotate,
        vlm_preset=args.preset or ("markdown" if args.format == "markdown" else "text"),
        fields_per=args.fields_per,
        characters=args.characters,
    )
    check_settings(settings, config)
    cache = None if args.no_cache else open_cache(config.cache_dir, config.cache)
    failed = 0
    for name in args.files:
        result = _ocr_path(Path(name), settings, config, cache)
        failed += not result.ok
        print(_render(result, args.format), flush=True)
    if cache is not None:
        cache.flush_stats()
    return 1 if failed else 0


def _ocr_path(path: Path, settings: OcrSettings, config: AppConfig, cache) -> DocumentResult:
    name = sanitize_filename(path.name)
    try:
        # Refused by size before it is read: a 3 GB file or /dev/zero never fills memory.
        data = read_upload_file(path, document_limits(config))
    except OSError as exc:
        return DocumentResult(
            file=name, engine=settings.engine, error=f"cannot read {name}: {exc.strerror}"
        )
    except BadInput as exc:  # empty, or over max_file_mb
        return DocumentResult(file=name, engine=settings.engine, error=str(exc))
    try:
        return ocr_file(data, path.name, settings, config, cache)
    except AppError as exc:
        return DocumentResult(file=name, engine=settings.engine, error=str(exc))


def _render(result: DocumentResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(cli_json(result), ensure_ascii=False)
    if result.error:
        print(f"error: {result.file}: {result.error}", file=sys.stderr)
        if not result.pages:  # a file stopped by its time budget keeps the pages read
            return ""
    body = result.markdown if fmt == "markdown" else result.text
    header = f"==> {result.file} <=="
    fields = [line for record in field_records(result) for line in _record_lines(record)]
    return "\n".join([header, body, *(["", *fields] if fields else [])])


def _record_lines(record: FieldRecord) -> list[str]:
    """``total: 10.00 (page 2)`` per found field; a page record under its own heading."""
    found = {k: v.value for k, v in record.fields.items() if v.value is not None}
    if record.page is not None:
        return [f"-- page {record.page} --", *(f"{k}: {v}" for k, v in found.items())]
    return [f"{k}: {v} (page {record.field_pages[k]})" for k, v in found.items()]


def cli_json(result: DocumentResult) -> dict:
    """The documented one-line JSON shape of `cli.py ocr --format json`."""
    records = field_records(result)
    return {
        "file": result.file,
        "engine": result.engine,
        "pages": [
            {
                "page": page.page,
                "status": page.status,
                "text": page.text,
                "lines": [
                    {
                        "text": line.text,
                        "box": list(line.box),
                        "confidence": round(line.confidence, 4),
                    }
                    for line in page.lines
                ],
                "seconds": round(page.seconds, 4),
                **({"error": page.error} if page.error else {}),
            }
            for page in result.pages
        ],
        # The whole document's fields (empty with --fields-per page), as before records.
        "fields": next((_json_fields(r) for r in records if r.page is None), {}),
        "fields_per": result.fields_per,
        "records": [{"page": r.page, "fields": _json_fields(r)} for r in records],
        "error": result.error,
    }


def _json_fields(record: FieldRecord) -> dict:
    return {
        name: {
            "value": f.value,
            "confidence": round(f.confidence, 4),
            "line": f.line,
            "page": record.field_pages.get(name),
        }
        for name, f in record.fields.items()
    }
