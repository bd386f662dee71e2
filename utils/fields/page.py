"""What the field extractors share while they read one page."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.ocr.base import OcrLine
from models.templates import FieldSpec, FieldValue


@dataclass
class PageLines:
    """The lines of one page plus what several fields share (the MRZ, parsed once)."""

    lines: list[OcrLine]
    found: dict[str, FieldValue] = field(default_factory=dict)
    # Last line of each found value; an extractor whose value spans several
    # lines sets ``last_line`` (``FieldValue.line`` is the first one).
    ends: dict[str, int | None] = field(default_factory=dict)
    last_line: int | None = None
    # Every MRZ field, filled by the first MRZ field read (``mrz.extract_mrz``).
    mrz: dict[str, FieldValue] | None = None

    def first_line(self, spec: FieldSpec) -> int:
        """Where searching starts: below ``spec.after_field``'s value when that was found."""
        end = self.ends.get(spec.after_field or "")
        return end + 1 if end is not None else 0
