"""What the field extractors share while they read one page."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.ocr.base import Box, OcrLine
from models.templates import FieldSpec, FieldValue


@dataclass
class PageLines:
    """The lines of one page plus what several fields share (the MRZ, parsed once)."""

    lines: list[OcrLine]
    # Per line, its blocks: the parts of the line that a wide gap separates, left to
    # right ("12, JALAN INDAH" and "INV NO: 881" printed on one row); None: no positions.
    blocks: list[list[OcrLine]] | None = None
    found: dict[str, FieldValue] = field(default_factory=dict)
    # Last line of each found value; an extractor whose value spans several
    # lines sets ``last_line`` (``FieldValue.line`` is the first one).
    ends: dict[str, int | None] = field(default_factory=dict)
    last_line: int | None = None
    # Every MRZ field, filled by the first MRZ field read (``mrz.extract_mrz``).
    mrz: dict[str, FieldValue] | None = None

    def blocks_of(self, index: int) -> list[OcrLine]:
        """The blocks of line ``index``; the line itself when it has no separate blocks."""
        if self.blocks is None or len(self.blocks) != len(self.lines) or not self.blocks[index]:
            return [self.lines[index]]
        return self.blocks[index]

    def first_line(self, spec: FieldSpec) -> int:
        """Where searching starts: below ``spec.after_field``'s value when that was found."""
        end = self.ends.get(spec.after_field or "")
        return end + 1 if end is not None else 0


def beside(box: Box | None, column: Box | None) -> bool:
    """Wholly to the left or right of ``column``: another block of text on the same rows,
    such as an invoice's number and date beside the sender's name and address."""
    if box is None or column is None:
        return False
    return box[0] > column[2] or box[2] < column[0]
