"""Shared fixtures: a profile whose data folders live in the test's temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.config import REPO_ROOT

# Nothing in the tests may reach a network: make Hugging Face libraries fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def temp_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """config.yaml with results/ and cache/ moved into tmp_path, made active."""
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        f"extends: {REPO_ROOT / 'config.yaml'}\n"
        "app:\n"
        f"  data_dir: {tmp_path / 'results'}\n"
        f"  cache_dir: {tmp_path / 'cache'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    return profile
