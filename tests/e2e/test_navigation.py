"""The first visitor of a freshly started server, arriving by a bookmarked deep link.

The pages live in app_pages/, not pages/: with a pages/ folder Streamlit starts a
process in its legacy multipage mode, and a deep link as the very first visit ran
that page without app.py and listed the files instead of the app's menu.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testkit import e2e_harness as h

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fresh_server(
    e2e_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[h.AppServer]:
    folder = tmp_path_factory.mktemp("e2e_fresh")
    with h.AppServer(h.write_profile(folder), folder / "server.log") as server:
        yield server


def test_deep_link_as_first_visit_gets_the_apps_navigation(
    browser: Any, fresh_server: h.AppServer
) -> None:
    watch = h.PageWatch()
    context, page = h.new_page(browser, watch)
    try:
        h.open_page(page, fresh_server, "/ocr")
        links = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
        names = [" ".join(link.split()) for link in links]
        assert any("OCR" in name for name in names), names
        assert not any(name.strip() == "app" for name in names), names
        # .streamlit/config.toml: users get no Deploy button or developer menu
        assert not page.get_by_role("button", name="Deploy").count()
        assert not page.locator('[data-testid="stMainMenu"]').count()
    finally:
        context.close()
    assert not watch.foreign_requests()
