"""The one CSV writer of every export: cells a spreadsheet cannot run as formulas.

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula, and some also after a leading TAB or carriage return, so text from
documents, file names, run names or error messages could run as one when a CSV
is opened (CSV injection). Following the OWASP guidance, every text cell that
starts with one of those characters, headers included, is written with a single
quote in front, which the spreadsheet shows as text.

Numbers are written as numbers: a cell that is an int or a float, or text that
is exactly a decimal number such as ``-12.50``, cannot be a formula, and quoting
it would turn every negative amount into text. Empty values (None, NaN) are
written as empty cells.

A leaf module: it imports nothing from the app, so every layer may use it.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation; callers hand in their own frames
    import pandas as pd

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Text that is one plain decimal number (sign, digits, point, exponent) and nothing else.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: object) -> str | int | float:
    """``value`` as a CSV cell no spreadsheet runs as a formula (see the module notes)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return value
    text = str(value)  # numpy scalars, dates and anything else are written as their text
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document (RFC 4180: CRLF line ends, quoted as needed) with every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(name) for name in header])
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def frame_csv(frame: pd.DataFrame) -> str:
    """A pandas table as a safe CSV: its column names, then its rows (the index is left out)."""
    return csv_text(list(frame.columns), frame.itertuples(index=False, name=None))
