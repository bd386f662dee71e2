"""Template fields as records: one per document, or one per page (``fields_per``).

The page, the exports and the CLI all read fields through ``field_records`` so that
the user's choice shapes every view of a result the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from models.templates import FieldValue
from utils.ocr.pipeline import DocumentResult


class FieldRecord(BaseModel):
    """The fields of one record of a file."""

    model_config = ConfigDict(extra="forbid")

    file: str
    page: int | None = Field(None, description="the page this record is; None: the document")
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    field_pages: dict[str, int] = Field(
        default_factory=dict, description="the page each found value came from"
    )


def field_records(result: DocumentResult) -> list[FieldRecord]:
    """The records of one file; none when no template was run (or nothing was read)."""
    if result.fields_per == "page":
        return [
            FieldRecord(
                file=result.file,
                page=page.page,
                fields=page.fields,
                field_pages={n: page.page for n, f in page.fields.items() if f.value is not None},
            )
            for page in result.pages
            if page.fields
        ]
    if not result.fields:
        return []
    return [FieldRecord(file=result.file, fields=result.fields, field_pages=result.field_pages)]


def field_names(results: Sequence[DocumentResult]) -> list[str]:
    """Every field name over ``results``, in first-seen order."""
    names: list[str] = []
    for result in results:
        for record in field_records(result):
            names.extend(n for n in record.fields if n not in names)
    return names
