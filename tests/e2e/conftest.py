"""Fixtures of the browser suite: one app server and one Chromium for the whole session.

The app runs with a test profile: its data folders in a temp dir, a tiny
random-weight Qwen2-VL (built here, no network) and a "hostile" model served by
a fake OpenAI-compatible server whose every answer is dangerous Markdown. Each
test gets its own browser context (its own Streamlit session) on the shared
server. Without Chromium the whole suite is skipped with how to install it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import e2e_harness as h

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def e2e_ready() -> None:
    reason = h.missing_browser_reason()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def hostile_server(e2e_ready: None) -> Iterator[Any]:
    from testkit.fake_openai_server import FakeOpenAIServer, Reply

    with FakeOpenAIServer(
        models=("hostile-vlm", h.HOSTILE_MODEL_ID), default=Reply(chunks=h.HOSTILE_CHUNKS)
    ) as server:
        yield server


def hostile_yaml(base_url: str) -> tuple[str, str]:
    """(endpoints, models) entries for the hostile model."""
    endpoints = f"  fake:\n    base_url: {base_url}\n    timeout_s: 30\n    max_retries: 0\n"
    models = (
        "  hostile:\n"
        "    display_name: Hostile fake VLM\n"
        "    backend: openai\n"
        "    task: both\n"
        "    endpoint: fake\n"
        "    served_name: hostile-vlm\n"
        "    max_new_tokens: 64\n"
        # Not served: its availability quotes the model ids the server does serve.
        "  ghost:\n"
        "    display_name: Ghost served model\n"
        "    backend: openai\n"
        "    task: chat\n"
        "    endpoint: fake\n"
        "    served_name: not-served\n"
    )
    return endpoints, models


@pytest.fixture(scope="session")
def browser(e2e_ready: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = h.launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def app_server(
    e2e_ready: None,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_vlms: Any,
    hostile_server: Any,
    browser: Any,
) -> Iterator[h.AppServer]:
    folder = tmp_path_factory.mktemp("e2e_app")
    endpoints, hostile = hostile_yaml(hostile_server.base_url)
    models = h.tiny_model_yaml("tiny_qwen", tiny_vlms("qwen2_vl")) + hostile
    profile = h.write_profile(folder, models, endpoints)
    with h.AppServer(profile, folder / "server.log") as server:
        # The first run of a fresh server must be the root URL (see test_navigation.py).
        context, page = h.new_page(browser, h.PageWatch())
        h.open_page(page, server, "/")
        context.close()
        yield server


@pytest.fixture
def watch() -> h.PageWatch:
    return h.PageWatch()


@pytest.fixture
def page(
    browser: Any, app_server: h.AppServer, watch: h.PageWatch, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A fresh browser session on the app; on failure a full-page screenshot is saved.

    Whatever the test checks, the page may never reach a host but 127.0.0.1.
    """
    context, browser_page = h.new_page(browser, watch)
    yield browser_page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        save_failure_artifacts(request.node.name, browser_page, app_server)
    context.close()
    foreign = watch.foreign_requests()
    assert not foreign, f"the page made requests beyond 127.0.0.1: {foreign[:10]}"


def save_failure_artifacts(test_name: str, browser_page: Any, server: h.AppServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{test_name}.png"
    try:
        browser_page.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot of the failed page: {shot}")
    except Exception as exc:  # noqa: BLE001 - a broken page must not hide the real failure
        print(f"\nno screenshot ({exc})")
    print(f"server log tail:\n{server.log_tail()}")
