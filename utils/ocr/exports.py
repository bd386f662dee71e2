"""OCR results as downloadable files: TXT, Markdown, JSON, fields CSV."""

from __future__ import annotations

import json
from collections.abc import Sequence

from utils.ocr.pipeline import DocumentResult
from utils.ocr.records import FieldRecord, field_names, field_records
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
    for record in field_records(result):
        parts.append("## Fields" + (f", page {record.page}" if record.page else ""))
        parts.append(_fields_table(record))
    return "\n\n".join(parts) + "\n"


def _fields_table(record: FieldRecord) -> str:
    rows = "".join(
        f"\n| {name} | {_cell(f.value)} | {f.confidence:.2f} | {record.field_pages.get(name, '')} |"
        for name, f in record.fields.items()
    )
    return "| field | value | confidence | page |\n|---|---|---|---|" + rows


def _cell(value: str | None) -> str:
    return "" if value is None else value.replace("|", "\\|").replace("\n", " ")


def results_json(results: Sequence[DocumentResult]) -> str:
    """Everything (engine, settings, timings, lines with boxes), one object per file;
    ``records`` holds its template fields as chosen: one record, or one per page."""
    files = [
        {**r.model_dump(mode="json"), "records": [f.model_dump() for f in field_records(r)]}
        for r in results
    ]
    return json.dumps(files, ensure_ascii=False, indent=2)


def fields_csv(results: Sequence[DocumentResult]) -> str:
    """One row per record (a document, or a page with fields_per='page'); one column per
    field (union over the files). A ``page`` column names each page record; after each
    field of a whole-document record, ``<field> page`` names the page it came from. A
    file without records (refused, or no template) still gets its row and error.

    Written by ``utils.spreadsheet``, which keeps OCR text, file names and errors from
    running as spreadsheet formulas.
    """
    names = field_names(results)
    per_page = any(r.fields_per == "page" for r in results)
    per_document = any(r.fields_per == "document" for r in results)
    header = ["file", *(["page"] if per_page else [])]
    for name in names:
        header += [name, *([f"{name} page"] if per_document else [])]
    rows = []
    for result in results:
        for record in field_records(result) or [FieldRecord(file=result.file)]:
            row = [record.file, *([record.page or ""] if per_page else [])]
            for name in names:
                found = record.fields.get(name)
                row.append(found.value if found is not None else "")
                if per_document:
                    row.append(record.field_pages.get(name, ""))
            rows.append([*row, result.error or ""])
    return csv_text([*header, "error"], rows)
