"""Shared fixtures: a profile whose data folders live in the test's temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit.profiles import tiny_model_yaml, write_test_profile

# Nothing in the tests may reach a network: make Hugging Face libraries fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def temp_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """config.yaml with results/ and cache/ moved into tmp_path, made active."""
    profile = write_test_profile(tmp_path)
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    return profile


@pytest.fixture(scope="session")
def tiny_vlms(tmp_path_factory: pytest.TempPathFactory):
    """Tiny random-weight VLMs built locally on first use (see testkit/tiny_vlms.py)."""
    from testkit.tiny_vlms import TinyVlmFolders

    return TinyVlmFolders(tmp_path_factory.mktemp("tiny_vlms"))


@pytest.fixture
def chat_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_vlms) -> Path:
    """config.yaml plus a tiny Qwen2-VL chat model, data folders in tmp_path, made active."""
    folder = tiny_vlms("qwen2_vl")
    profile = write_test_profile(
        tmp_path,
        "models:\n" + tiny_model_yaml("tiny_qwen", folder),
        name="chat_profile.yaml",
    )
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    return profile
