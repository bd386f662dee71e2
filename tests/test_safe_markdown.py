"""Hostile Markdown from a model or an OCR page cannot load or run anything."""

from __future__ import annotations

from utils.safe_markdown import SafeStream, escape_markdown, safe_markdown


def test_images_show_as_text() -> None:
    out = safe_markdown("look ![x](http://evil.example/t.png) and ![y][ref]")
    assert "![" not in out.replace("!\\[", "")
    assert "http://evil.example/t.png" in out  # still visible, as text


def test_script_links_lose_their_link_syntax() -> None:
    out = safe_markdown("[click](javascript:alert(1)) [d](data:text/html,x) <javascript:alert(2)>")
    assert "](javascript:" not in out and "](data:" not in out
    assert "<javascript:alert(2)\\>" in out


def test_web_links_and_code_are_untouched() -> None:
    text = "[docs](https://example.org) `![not an image](x)`\n```\n![code](y)\n```"
    assert safe_markdown(text) == text


def test_html_is_left_for_streamlit_to_show_as_text() -> None:
    text = "<script>alert(1)</script> <img src=x onerror=alert(1)>"
    assert safe_markdown(text) == text


def test_streamed_chunks_add_up_to_the_safe_text() -> None:
    text = (
        "Intro ![pic](http://evil.example/x.png) then [bad](javascript:alert(1)) and "
        "[ok](https://example.org) <data:text/html,boom> end"
    )
    for size in (1, 2, 3, 7):
        stream = SafeStream()
        parts = [stream.feed(text[i : i + size]) for i in range(0, len(text), size)]
        assert "".join(parts) + stream.flush() == safe_markdown(text)


def test_safe_form_blocks_everything_at_once() -> None:
    out = safe_markdown("[bad](javascript:alert(1)) <data:x>")
    assert "]\\(javascript:" in out and "<data:x\\>" in out


def test_math_is_shown_as_text_so_it_cannot_bury_the_page() -> None:
    out = safe_markdown(r"huge $\rule{5000em}{5000em}$ and $$x^2$$ costs $5")
    assert "$" not in out.replace("\\$", "")
    assert safe_markdown(r"already \$5") == r"already \$5"  # an escaped dollar stays one
    assert safe_markdown("`$x$` in code") == "`$x$` in code"


def test_streamed_dollars_add_up_to_the_safe_text() -> None:
    text = r"a \\$x$ b \$y $z$ end"
    for size in (1, 2, 3):
        stream = SafeStream()
        parts = [stream.feed(text[i : i + size]) for i in range(0, len(text), size)]
        assert "".join(parts) + stream.flush() == safe_markdown(text)


def test_escaped_text_has_no_markdown_left() -> None:
    hostile = (
        "![e](http://203.0.113.7/x.png) $\\rule{9em}{9em}$ :red[x] <b>**b**</b> [l](javascript:x)"
    )
    out, shown, i = escape_markdown(hostile), [], 0
    while i < len(out):  # read it as CommonMark would: a backslash escapes what follows
        if out[i] == "\\":
            shown.append(out[i + 1])
            i += 2
        else:
            assert out[i].isalnum() or out[i] in " \n", f"unescaped {out[i]!r}"
            shown.append(out[i])
            i += 1
    assert "".join(shown) == hostile
