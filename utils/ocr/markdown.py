"""OCR fragments as Markdown: paragraphs at large vertical gaps, and runs of lines whose
cells line up as tables (also given as rows of cell texts, for a data frame)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from models.ocr.base import OcrLine
from utils.ocr.fragments import MIN_CELL_GAP, VisualLine, line_height, positioned
from utils.ocr.reading_order import visual_lines

PARAGRAPH_GAP = 1.2
"""A vertical gap above this many line heights starts a new paragraph."""


CELL_ALIGN_TOLERANCE = 0.6
"""Cell edges or centres within this many line heights count as one column."""


def table_rows(fragments: Iterable[OcrLine]) -> list[list[list[str]]]:
    """Every table found on the page: a list of rows, each a list of cell texts."""
    fragments = list(fragments)
    if not positioned(fragments):
        return []
    lines = visual_lines(fragments)
    height = line_height(lines)
    return [
        [[part.text for part in line.parts] for line in run]
        for paragraph in _paragraphs(lines, height)
        for is_table, run in _segments(paragraph, height)
        if is_table
    ]


def to_markdown(fragments: Iterable[OcrLine]) -> str:
    """Markdown: paragraphs separated by blank lines, aligned cell runs as tables."""
    fragments = list(fragments)
    if not positioned(fragments):
        return "\n".join(f.text for f in fragments if f.text.strip())
    lines = visual_lines(fragments)
    height = line_height(lines)
    blocks = [
        _markdown_table(run) if is_table else "\n".join(line.text for line in run)
        for paragraph in _paragraphs(lines, height)
        for is_table, run in _segments(paragraph, height)
    ]
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------
# Paragraphs and tables
# ---------------------------------------------------------------------------


def _paragraphs(lines: Sequence[VisualLine], height: float) -> list[list[VisualLine]]:
    """Split at large vertical gaps and where reading jumps up (into the next column)."""
    paragraphs: list[list[VisualLine]] = []
    for line in lines:
        if paragraphs and not _starts_paragraph(paragraphs[-1][-1], line, height):
            paragraphs[-1].append(line)
        else:
            paragraphs.append([line])
    return paragraphs


def _starts_paragraph(previous: VisualLine, line: VisualLine, height: float) -> bool:
    gap = line.top - previous.bottom
    return gap > PARAGRAPH_GAP * height or line.cy < previous.top


def _segments(
    paragraph: Sequence[VisualLine], height: float
) -> list[tuple[bool, list[VisualLine]]]:
    """The paragraph cut into (is_table, lines) pieces; tables are runs of ≥ 2 aligned lines."""
    runs: list[list[VisualLine]] = []
    for line in paragraph:
        if runs and _same_columns(runs[-1][-1], line, height):
            runs[-1].append(line)
        else:
            runs.append([line])
    segments: list[tuple[bool, list[VisualLine]]] = []
    for run in runs:
        is_table = len(run) >= 2
        if not is_table and segments and not segments[-1][0]:
            segments[-1][1].extend(run)  # consecutive plain lines stay one text block
        else:
            segments.append((is_table, run))
    return segments


def _same_columns(a: VisualLine, b: VisualLine, height: float) -> bool:
    """Same number (≥ 2) of well-separated cells, each aligned left, right or centred."""
    if len(a.parts) != len(b.parts) or len(a.parts) < 2:
        return False
    if not (_cells_separated(a, height) and _cells_separated(b, height)):
        return False
    tolerance = CELL_ALIGN_TOLERANCE * height
    return all(
        min(abs(x.left - y.left), abs(x.right - y.right), abs(x.cx - y.cx)) <= tolerance
        for x, y in zip(a.parts, b.parts, strict=True)
    )


def _cells_separated(line: VisualLine, height: float) -> bool:
    """Word-level fragments (Tesseract) sit a word space apart; table cells much further."""
    return all(
        b.left - a.right >= MIN_CELL_GAP * height
        for a, b in zip(line.parts, line.parts[1:], strict=False)
    )


def _markdown_table(run: Sequence[VisualLine]) -> str:
    rows = [[_escape_cell(part.text) for part in line.parts] for line in run]
    header, body = rows[0], rows[1:]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _escape_cell(text: str) -> str:
    """Only pipes break a table cell; st.markdown renders no raw HTML, so nothing else."""
    return text.replace("|", "\\|")
