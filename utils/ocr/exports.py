"""OCR results as downloadable files: TXT, Markdown, JSON, fields CSV."""

from __future__ import annotations

import json
from collections.abc import Sequence

from utils.ocr.pipeline import DocumentResult
from utils.spreadsheet import csv_text


def document_text(result: DocumentResult) -> str:
    """Plain text: pages separated by a form feed line, as `pdftotext` does."""
    return "\n\f\n".join(page.text for page in result.pages if page.status == "ok") + "\n"


def document_markdown(result: DocumentResult) -> str:
    parts = [f"# {result.file}"]
    for page in result.pages:
        parts.append(f"## Page {page.page}")
        if page.status == "ok":
            parts.append(page.markdown)
        else:
            parts.append(f"*{page.status}*" + (f": {page.error}" if page.error else ""))
    if result.fields:
        parts.append("## Fields")
        parts.append("| field | value | confidence |\n|---|---|---|")
        parts[-1] += "".join(
            f"\n| {name} | {_cell(f.value)} | {f.confidence:.2f} |"
            for name, f in result.fields.items()
        )
    return "\n\n".join(parts) + "\n"


def _cell(value: str | None) -> str:
    return "" if value is None else value.replace("|", "\\|").replace("\n", " ")


def results_json(results: Sequence[DocumentResult]) -> str:
    """Everything (engine, settings, timings, lines with boxes), one object per file."""
    return json.dumps([r.model_dump(mode="json") for r in results], ensure_ascii=False, indent=2)


def fields_csv(results: Sequence[DocumentResult]) -> str:
    """One row per document; one column per field (union over the documents).

    Written by ``utils.spreadsheet``, which keeps OCR text, file names and errors from
    running as spreadsheet formulas.
    """
    names: list[str] = []
    for result in results:
        names.extend(n for n in result.fields if n not in names)
    rows = [
        [
            result.file,
            *[result.fields[n].value if n in result.fields else "" for n in names],
            result.error or "",
        ]
        for result in results
    ]
    return csv_text(["file", *names, "error"], rows)
