"""The services behind the Chat page's first-model state: which model to download first,
the download with progress, and connecting a server into the user's overrides file."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.config import REPO_ROOT, load_config
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.profiles import write_test_profile
from utils.auth import LOCAL_USER
from utils.chat.connect import connect_server
from utils.errors import BadInput
from utils.system.downloads import download_entry, recommended_chat_download


def test_the_recommended_download_is_the_smallest_in_process_chat_model() -> None:
    config = load_config(REPO_ROOT / "config.yaml").config
    assert recommended_chat_download(config) == "smolvlm_256m"


def test_download_entry_shows_progress_and_returns_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fake_download(source: str, progress) -> Path:
        progress(50, 100)
        progress(100, 100)
        return tmp_path / source

    monkeypatch.setattr("models.runtime.hub.download_model", fake_download)
    config = load_config(REPO_ROOT / "config.yaml").config
    shown: list[tuple[float, str]] = []
    folder = download_entry("smolvlm_256m", config, lambda done, text: shown.append((done, text)))
    assert folder == tmp_path / "HuggingFaceTB/SmolVLM-256M-Instruct"
    assert shown[0] == (0.0, "Starting the download of HuggingFaceTB/SmolVLM-256M-Instruct…")
    assert shown[-1][0] == 1.0


def test_a_second_server_is_added_beside_the_first(tmp_path: Path) -> None:
    profile = write_test_profile(tmp_path)
    data_dir = load_config(profile).config.data_dir
    with FakeOpenAIServer(models=("a-model",)) as first, FakeOpenAIServer(models=("b",)) as second:
        assert connect_server(data_dir, LOCAL_USER, first.base_url, "a-model") == "server_a-model"
        assert connect_server(data_dir, LOCAL_USER, second.base_url, " b ", "MY_KEY") == "server_b"
    config = load_config(profile).config
    assert config.endpoints["server_a-model"].base_url == first.base_url
    assert config.endpoints["server_b"].api_key_env == "MY_KEY"
    assert config.models["server_b"].served_name == "b"


@pytest.mark.parametrize(
    ("url", "name", "problem"),
    [("localhost:11434", "m", "is not a server URL"), ("http://127.0.0.1:9/v1", " ", "no model")],
)
def test_bad_input_is_refused_before_any_request(
    tmp_path: Path, url: str, name: str, problem: str
) -> None:
    with pytest.raises(BadInput, match=problem):
        connect_server(tmp_path, LOCAL_USER, url, name)
    assert not (tmp_path / "overrides.yaml").exists()
