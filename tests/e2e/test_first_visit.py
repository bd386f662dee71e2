"""First visit on a machine with no model: the Chat page says what to do (download a
small model or connect a server) and the chat input stays disabled until a model can
run, in a real browser on a freshly started server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testkit import e2e_harness as h

pytestmark = pytest.mark.e2e

NO_SERVED_MODEL = "  dots_ocr_vllm:\n    enabled: false\n"  # the catalog's one served entry


@pytest.fixture(scope="module")
def no_model_server(
    e2e_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[h.AppServer]:
    """The app on the shipped catalog with an empty Hugging Face cache: nothing can chat."""
    folder = tmp_path_factory.mktemp("e2e_first_visit")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_CACHE", str(folder / "empty_hf_cache"))  # read by the server
        profile = h.write_profile(folder, models_yaml=NO_SERVED_MODEL)
        with h.AppServer(profile, folder / "server.log") as server:
            yield server


def test_first_visit_without_a_model_shows_the_ways_out(
    browser: Any, no_model_server: h.AppServer
) -> None:
    from playwright.sync_api import expect

    watch = h.PageWatch()
    context, page = h.new_page(browser, watch)
    try:
        h.open_page(page, no_model_server, "/")
        main = page.locator("#stMain")  # the main area, not the sidebar
        expect(main.get_by_text("No chat model can run on this machine yet")).to_be_visible()
        expect(main.get_by_role("heading", name="⬇️ Download a recommended model")).to_be_visible()
        expect(main.get_by_text("HF_HUB_OFFLINE", exact=False)).to_be_visible()
        expect(main.get_by_role("heading", name="🔌 Connect a server")).to_be_visible()
        expect(page.get_by_role("button", name="🔌 Check and save")).to_be_visible()
        chat_input = page.locator('[data-testid="stChatInputTextArea"]')
        expect(chat_input).to_be_disabled()
        placeholder = chat_input.get_attribute("placeholder") or ""
        assert "download one or connect a server" in placeholder, placeholder
        assert not list((no_model_server.profile.parent / "results").glob("chats/*.json"))
    finally:
        context.close()
    assert not watch.foreign_requests()
