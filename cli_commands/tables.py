"""Plain-text tables for the terminal, and text from outside made safe to print there."""

from __future__ import annotations


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def printable(text: str) -> str:
    """``text`` with control characters written as escapes: a name or an e-mail from an
    identity provider cannot move the cursor, retitle the terminal or break a table row."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
