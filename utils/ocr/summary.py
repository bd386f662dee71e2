"""Tables of an OCR run for the page: the batch at a glance, one file's fields."""

from __future__ import annotations

from collections.abc import Sequence

from utils.ocr.pipeline import DocumentResult
from utils.ocr.records import FieldRecord, field_names, field_records


def document_status(result: DocumentResult) -> str:
    """``ok``; ``partial`` (some pages read, an error too); ``failed`` (nothing read)."""
    if result.ok:
        return "ok"
    return "partial" if result.pages else "failed"


def batch_rows(results: Sequence[DocumentResult]) -> list[dict]:
    """One row per record (a file, or each page of a file read with fields_per='page'):
    file, (page), pages, status, seconds, then one column per template field (the
    union over the files; a record without that field has None there)."""
    names = field_names(results)
    per_page = any(r.fields_per == "page" for r in results)
    rows = []
    for result in results:
        for record in field_records(result) or [FieldRecord(file=result.file)]:
            found = {n: record.fields[n].value if n in record.fields else None for n in names}
            rows.append(
                {
                    "file": result.file,
                    **({"page": record.page} if per_page else {}),
                    "pages": len(result.pages),
                    "status": document_status(result),
                    "seconds": round(result.seconds, 2),
                    **found,
                }
            )
    return rows


def field_rows(result: DocumentResult) -> list[dict]:
    """One file's fields: per document, a row per field with the page it came from;
    per page, a row per page with a column per field."""
    records = field_records(result)
    if result.fields_per == "page":
        return [{"page": r.page, **{n: f.value for n, f in r.fields.items()}} for r in records]
    return [
        {
            "field": name,
            "value": found.value,
            "confidence": round(found.confidence, 2),
            "page": record.field_pages.get(name),
            "line": found.line,
            "note": found.note,
        }
        for record in records
        for name, found in record.fields.items()
    ]
