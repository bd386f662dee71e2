"""The uploaders announce the profile's upload limit, not Streamlit's 200 MB default."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT

APP = str(REPO_ROOT / "app.py")


@pytest.fixture
def small_upload_profile(temp_profile: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test profile with uploads limited to 7.5 MB (the widgets show whole MB: 8)."""
    profile = temp_profile.parent / "small_upload.yaml"
    profile.write_text(
        f"extends: {temp_profile}\napp:\n  upload:\n    max_file_mb: 7.5\n", encoding="utf-8"
    )
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    return profile


def _page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_ocr_uploader_takes_the_profile_limit(small_upload_profile: Path) -> None:
    at = _page("app_pages/ocr.py")
    assert at.file_uploader[0].proto.max_upload_size_mb == 8


def test_chat_input_takes_the_profile_limit(small_upload_profile: Path) -> None:
    at = _page("app_pages/chat.py")
    assert at.chat_input[0].proto.max_upload_size_mb == 8


def test_the_server_cap_wins_when_it_is_lower(small_upload_profile: Path) -> None:
    """Over ``server.maxUploadSize`` the server refuses the upload itself: never
    announce more than it takes."""
    before = st_config.get_option("server.maxUploadSize")
    st_config.set_option("server.maxUploadSize", 5)
    try:
        at = _page("app_pages/ocr.py")
    finally:
        st_config.set_option("server.maxUploadSize", before)
    assert at.file_uploader[0].proto.max_upload_size_mb == 5
