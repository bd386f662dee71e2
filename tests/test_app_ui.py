"""The app starts under AppTest without exceptions and every page renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT
from testkit.apptest import shown

APP = str(REPO_ROOT / "app.py")
PAGES = ["app_pages/chat.py", "app_pages/ocr.py", "app_pages/benchmark.py", "app_pages/models.py"]


def _start(timeout: float = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_app_starts_and_shows_the_active_profile(temp_profile: Path) -> None:
    at = _start()
    assert any("profile.yaml" in shown(c.value) for c in at.sidebar.caption)


@pytest.mark.parametrize("page", PAGES)
def test_each_page_renders(temp_profile: Path, page: str) -> None:
    at = _start()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"{page} rendered no title"


def test_broken_profile_shows_the_error_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  x:\n    backend: nope\n", encoding="utf-8")
    monkeypatch.setenv("CHATVLM_CONFIG", str(bad))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert any("could not be loaded" in shown(e.value) for e in at.error)
    assert any("models.x" in block.value for block in at.code)  # verbatim, never Markdown


def test_models_page_lists_the_catalog_and_cache(temp_profile: Path) -> None:
    at = _start()
    at.switch_page("app_pages/models.py").run()
    table = at.dataframe[0].value
    assert "qwen2_vl_2b" in set(table["id"])
    assert [m.label for m in at.metric][:2] == ["Entries", "Size (MB)"]
