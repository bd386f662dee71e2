"""Model and OCR output made safe to hand to ``st.markdown``.

Streamlit never renders raw HTML unless asked (we never ask), so tags already
show as text. What Markdown itself can still do is load a remote image the
moment the text is shown, or carry a ``javascript:`` link. Outside code
blocks and code spans, image syntax is escaped so it shows as text, and
links whose scheme is not http(s) or mailto lose their link syntax. Dollar
signs are escaped too: a ``$...$`` pair would be typeset by KaTeX, and
``$\rule{5000em}{5000em}$`` draws a block tall enough to bury the page (and
receipts are full of dollar amounts that are not math).

Strings that are not meant as Markdown at all (file names, server errors, model
ids, labels) go through ``escape_markdown``: every punctuation character is
escaped, so they show exactly as written.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_IMAGE = re.compile(r"!\[")
_LINK_TARGET = re.compile(r"\]\(\s*<?\s*([a-zA-Z][a-zA-Z0-9+.-]*):")
_AUTOLINK = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9+.-]*):[^>]*>")
_ALLOWED_SCHEMES = {"http", "https", "mailto"}
# A "$" not already escaped (preceded by an even number of backslashes).
_MATH_DOLLAR = re.compile(r"(?<!\\)((?:\\\\)*)\$")
# CommonMark lets a backslash escape any ASCII punctuation character.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text: object) -> str:
    """``text`` as literal text inside any Markdown-rendering Streamlit element."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", str(text))


def safe_markdown(text: str) -> str:
    """``text`` with remote-image and script-link syntax neutralised outside code."""
    out, in_fence = [], False
    for line in text.split("\n"):
        if _FENCE.match(line.lstrip()):
            in_fence = not in_fence
            out.append(line)
        elif in_fence:
            out.append(line)
        else:
            out.append(_outside_code_spans(line))
    return "\n".join(out)


def _outside_code_spans(line: str) -> str:
    pieces, last = [], 0
    for match in _CODE_SPAN.finditer(line):
        pieces.append(_neutralise(line[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_neutralise(line[last:]))
    return "".join(pieces)


def _neutralise(text: str) -> str:
    text = _MATH_DOLLAR.sub(r"\1\\$", text)
    text = _IMAGE.sub(r"!\\[", text)
    text = _LINK_TARGET.sub(_escape_bad_link, text)
    return _AUTOLINK.sub(_escape_bad_autolink, text)


# Each escape inserts one backslash just before the character that completes the
# construct ("[" of "![", "(" of "](bad:", ">" of "<bad:...>"), so the safe form of
# a prefix is a prefix of the safe form of the whole: answers can be made safe
# while they stream (see SafeStream).


def _escape_bad_link(match: re.Match[str]) -> str:
    if match.group(1).lower() in _ALLOWED_SCHEMES:
        return match.group(0)
    return "]\\(" + match.group(0)[2:]


def _escape_bad_autolink(match: re.Match[str]) -> str:
    if match.group(1).lower() in _ALLOWED_SCHEMES:
        return match.group(0)
    return match.group(0)[:-1] + "\\>"


# A link target whose scheme has not fully arrived yet: "](", "](jav", "]( <data".
_UNDECIDED_LINK = re.compile(r"\]\(\s*<?\s*[a-zA-Z0-9+.-]*$")


class SafeStream:
    """Makes streamed Markdown safe chunk by chunk (for ``st.write_stream``).

    ``feed`` returns the newly safe text; the tail of an undecided link target
    is held back until its scheme is known; ``flush`` returns the rest.
    """

    def __init__(self) -> None:
        self._raw = ""
        self._sent = 0

    def feed(self, chunk: str) -> str:
        self._raw += chunk
        held = _UNDECIDED_LINK.search(self._raw)
        return self._emit(self._raw[: held.start()] if held else self._raw)

    def flush(self) -> str:
        return self._emit(self._raw)

    def _emit(self, raw: str) -> str:
        safe = safe_markdown(raw)
        new = safe[self._sent :]
        self._sent = max(self._sent, len(safe))
        return new
