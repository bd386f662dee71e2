"""Finding model files offline: local folders, a fake Hugging Face cache, the
download command in the error, and download refusals when offline. No network."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from models.runtime.hub import (
    cached_model_info,
    download_model,
    hub_cache_dir,
    reporting_progress_bar,
    resolve_model_path,
)
from utils.errors import ModelUnavailable

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache in tmp_path, set through the environment only.

    huggingface_hub's own constants still point at the real cache, so these
    tests also show that the module reads the environment at call time.
    """
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def cache_repo(cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """The cache layout huggingface_hub writes: blobs, a snapshot of symlinks, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION, encoding="utf-8")  # no newline, as the Hub
    return snapshot


def model_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\0" * 100)
    return folder


MODEL_FILES = {"config.json": b'{"model_type": "qwen2_vl"}', "model.safetensors": b"\0" * 1000}


# --- resolve_model_path ----------------------------------------------------------------------


def test_local_folder_resolves_to_itself(tmp_path: Path, hf_cache: Path) -> None:
    folder = model_folder(tmp_path / "my-model")
    assert resolve_model_path(str(folder)) == folder.resolve()


def test_relative_local_folder(
    tmp_path: Path, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = model_folder(tmp_path / "models" / "tiny")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("./models/tiny") == folder.resolve()
    assert resolve_model_path("models/tiny") == folder.resolve()  # folder wins over a repo id


def test_folder_without_config_is_refused(tmp_path: Path, hf_cache: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="has no config.json"):
        resolve_model_path(str(tmp_path / "empty"))


def test_missing_folder_is_refused(tmp_path: Path, hf_cache: Path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_model_path(str(tmp_path / "nowhere"))


def test_cached_repo_resolves_offline(hf_cache: Path) -> None:
    snapshot = cache_repo(hf_cache, "org/name", MODEL_FILES)
    assert resolve_model_path("org/name") == snapshot
    assert (resolve_model_path("org/name") / "config.json").is_file()


def test_cache_found_through_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    snapshot = cache_repo(tmp_path / "home" / "hub", "org/name", MODEL_FILES)
    assert resolve_model_path("org/name") == snapshot


def test_stray_repo_like_folder_without_config_does_not_hide_the_cache(
    tmp_path: Path, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work" / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    snapshot = cache_repo(hf_cache, "org/name", MODEL_FILES)
    assert resolve_model_path("org/name") == snapshot


@pytest.mark.parametrize("allow_download", [False, True])
def test_missing_repo_names_the_download_command(hf_cache: Path, allow_download: bool) -> None:
    # Offline, allow_download changes nothing: no network is tried.
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model_path("org/name", allow_download=allow_download)
    assert "not in the local Hugging Face cache" in caught.value.message
    assert str(hf_cache) in caught.value.message
    assert "python cli.py models download org/name" in caught.value.hint


def test_snapshot_without_a_ref_is_not_found(hf_cache: Path) -> None:
    cache_repo(hf_cache, "org/name", MODEL_FILES)
    (hf_cache / "models--org--name" / "refs" / "main").unlink()
    with pytest.raises(ModelUnavailable, match="not in the local Hugging Face cache"):
        resolve_model_path("org/name")


def test_nonsense_source_is_refused(hf_cache: Path) -> None:
    with pytest.raises(ModelUnavailable, match="neither a model folder nor a Hugging Face id"):
        resolve_model_path("not a model!")


# --- download_model --------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_download_refused_when_offline(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv(variable, "1")
    # Refused before huggingface_hub is asked (it would try the network if its import-time
    # constant said online).
    with pytest.raises(ModelUnavailable, match="^offline: .*is set") as caught:
        download_model("org/name")
    assert "'org/name'" in caught.value.message and caught.value.hint
    assert not (hf_cache / "models--org--name").exists()


def test_download_when_huggingface_hub_itself_is_offline(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment allows it, but huggingface_hub read HF_HUB_OFFLINE=1 at import.
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailable, match="^offline: the Hugging Face Hub cannot be reached"):
        download_model("org/name")


def test_download_of_a_local_folder_returns_it(tmp_path: Path, hf_cache: Path) -> None:
    folder = model_folder(tmp_path / "local")
    assert download_model(str(folder)) == folder.resolve()


def test_progress_bar_reports_bytes_written() -> None:
    reports: list[tuple[int, int]] = []
    bar_class = reporting_progress_bar(lambda done, total: reports.append((done, total)))
    bytes_bar = bar_class(name="huggingface_hub.snapshot_download", total=100, disable=True)
    bytes_bar.update(30)
    bytes_bar.total = 150  # snapshot_download grows the total as files start
    bytes_bar.update(120)
    files_bar = bar_class(name="huggingface_hub.snapshot_download.transfer", total=5, disable=True)
    files_bar.update(1)
    assert reports == [(30, 100), (150, 150)]


# --- cached_model_info -----------------------------------------------------------------------


def test_cached_model_info_for_a_cached_repo(hf_cache: Path) -> None:
    snapshot = cache_repo(hf_cache, "org/name", MODEL_FILES)
    info = cached_model_info("org/name")
    assert info is not None
    assert info.path == snapshot and info.revision == REVISION
    assert info.size_bytes == sum(len(data) for data in MODEL_FILES.values())  # blobs, not links
    assert info.has_weights


def test_cached_model_info_for_a_local_folder(tmp_path: Path, hf_cache: Path) -> None:
    folder = model_folder(tmp_path / "local")
    info = cached_model_info(str(folder))
    assert info is not None
    assert info.revision is None and info.size_bytes == 100 + len(
        (folder / "config.json").read_bytes()
    )


def test_cached_model_info_flags_a_config_only_snapshot(hf_cache: Path) -> None:
    cache_repo(hf_cache, "org/config-only", {"config.json": b"{}"})
    info = cached_model_info("org/config-only")
    assert info is not None and not info.has_weights


def test_cached_model_info_is_none_when_absent(tmp_path: Path, hf_cache: Path) -> None:
    assert cached_model_info("org/absent") is None
    assert cached_model_info(str(tmp_path / "nowhere")) is None
    assert cached_model_info("not a model!") is None
