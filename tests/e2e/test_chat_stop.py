"""Stop with a server-backed model: the partial answer stays on the page, marked as
stopped, with its real time and token count, without a refresh."""

from __future__ import annotations

import re
from typing import Any

import pytest

from testkit import e2e_harness as h
from testkit.fake_openai_server import Reply

pytestmark = pytest.mark.e2e

SLOW_ANSWER = Reply(chunks=tuple(f"slow{i} " for i in range(300)), chunk_delay_s=0.1)


def test_stop_with_a_server_model_keeps_the_partial_answer(
    page: Any, app_server: h.AppServer, hostile_server: Any
) -> None:
    from playwright.sync_api import expect

    h.open_page(page, app_server, "/")
    h.new_chat(page)
    h.choose(page, "Model", "Hostile fake VLM")
    hostile_server.script(SLOW_ANSWER)
    h.chat_send(page, "Take your time (e2e-stop)")
    page.get_by_text("slow5", exact=False).first.wait_for(timeout=h.SLOW_MS)

    page.get_by_role("button", name="⏹️ Stop").click()
    h.settle(page)

    answer = page.locator('[data-testid="stChatMessage"]').filter(has_text="slow0")
    expect(answer).to_have_count(1, timeout=10_000)
    expect(answer).to_contain_text("stopped before the end")
    shown = answer.inner_text()
    assert "slow299" not in shown, shown[-300:]
    stats = re.search(r"→ (\d+) tokens · (\d+\.\d) s", shown)
    assert stats, shown[-300:]
    tokens, seconds = int(stats.group(1)), float(stats.group(2))
    assert tokens >= 5 and seconds >= 0.5, stats.group(0)
    assert len(re.findall(r"\bslow\d+\b", shown)) == tokens  # one token per word shown
