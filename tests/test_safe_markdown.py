"""Hostile Markdown from a model or an OCR page cannot load or run anything."""

from __future__ import annotations

from utils.safe_markdown import SafeStream, safe_markdown


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
