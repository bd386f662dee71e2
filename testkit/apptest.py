"""Reading what an AppTest page shows.

AppTest hands back each element's Markdown source. The app escapes every
untrusted string (``ui.untrusted``), so a file name ``a.png`` is stored as
``a\\.png``; ``shown`` undoes the escapes as the browser's Markdown renderer does.
"""

from __future__ import annotations

import re

_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(source: str) -> str:
    """The text a reader sees for Markdown ``source`` (backslash escapes undone)."""
    return _MARKDOWN_ESCAPE.sub(r"\1", source)


def blank_when_missing(table) -> bool:
    """Whether an ``at.dataframe`` element shows missing values as blank cells: its
    placeholder is set to "" (unset, the browser writes "None" in them)."""
    return table.proto.HasField("placeholder") and table.proto.placeholder == ""
