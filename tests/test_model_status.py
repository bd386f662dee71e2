"""Model availability checks and the status files (model_status.json + history)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

import cli
from models.config import AppConfig, load_config
from testkit.fake_openai_server import FakeOpenAIServer
from utils.errors import ModelUnavailable, StorageError
from utils.storage import CorruptDataFile
from utils.storage import atomic as atomic_files
from utils.system.downloads import DownloadTracker, run_download
from utils.system.model_status import (
    StatusReport,
    check_models,
    history_path,
    read_history,
    read_status,
    status_path,
    write_status,
)

REVISION = "fedcba9876543210fedcba9876543210fedcba98"
WEIGHTS = b"\x01" * 4096
CONFIG_JSON = b'{"model_type": "qwen2_vl"}'


def fake_hf_cache_repo(cache: Path, repo_id: str) -> int:
    """A cached snapshot as huggingface_hub lays it out; returns its size in bytes."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_bytes(CONFIG_JSON)
    (snapshot / "model.safetensors").write_bytes(WEIGHTS)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION, encoding="utf-8")
    return len(CONFIG_JSON) + len(WEIGHTS)


def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="module")
def fake_server():
    with FakeOpenAIServer(models=("served-vlm",)) as server:
        yield server


@pytest.fixture
def profile(tmp_path: Path, hf_cache: Path, fake_server: FakeOpenAIServer) -> Path:
    """A small standalone catalog: one entry per kind of verdict."""
    size = fake_hf_cache_repo(hf_cache, "org/tiny-vlm")
    (tmp_path / "size").write_text(str(size))
    path = tmp_path / "status_profile.yaml"
    path.write_text(
        f"""
app:
  data_dir: {tmp_path / "results"}
  cache_dir: {tmp_path / "cache"}
endpoints:
  vllm:
    base_url: http://127.0.0.1:{closed_port()}/v1
    api_key_env: VLLM_API_KEY
  fake:
    base_url: {fake_server.base_url}
models:
  rapidocr: {{display_name: RapidOCR, backend: rapidocr, task: ocr}}
  tesseract: {{display_name: Tesseract, backend: tesseract, task: ocr}}
  tiny_cached:
    {{display_name: Tiny cached, backend: transformers, task: both, source: org/tiny-vlm}}
  absent:
    {{display_name: Not downloaded, backend: transformers, task: chat, source: org/absent}}
  on_vllm:
    {{display_name: On vLLM, backend: openai, task: both, endpoint: vllm, served_name: x/y}}
  served:
    {{display_name: Served, backend: openai, task: chat, endpoint: fake, served_name: served-vlm}}
  not_served:
    {{display_name: Not served, backend: openai, task: chat, endpoint: fake, served_name: nope}}
ocr:
  engine: rapidocr
  tesseract:
    tesseract_cmd: {tmp_path / "nowhere" / "tesseract"}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(profile: Path) -> AppConfig:
    return load_config(profile).config


@pytest.fixture
def report(config: AppConfig, profile: Path) -> StatusReport:
    return check_models(config, profile=str(profile))


def by_id(report: StatusReport) -> dict:
    return {check.model_id: check for check in report.models}


def test_every_catalog_entry_is_checked_in_order(report: StatusReport, config: AppConfig) -> None:
    assert [c.model_id for c in report.models] == list(config.models)
    assert {e.key for e in report.endpoints} == {"vllm", "fake"}
    assert report.check_seconds >= 0


def test_weights_in_the_hf_cache_are_available_with_their_size(
    report: StatusReport, tmp_path: Path
) -> None:
    check = by_id(report)["tiny_cached"]
    assert check.available, check.detail
    assert check.size_bytes == int((tmp_path / "size").read_text())
    assert REVISION in check.detail  # the snapshot folder it found
    assert check.fix is None


def test_weights_not_in_the_cache_name_the_download_command(report: StatusReport) -> None:
    check = by_id(report)["absent"]
    assert not check.available
    assert check.size_bytes is None
    assert "not in the local Hugging Face cache" in check.detail
    assert "python cli.py models download org/absent" in check.fix


def test_unreachable_endpoint_is_unavailable_with_the_fix(report: StatusReport) -> None:
    check = by_id(report)["on_vllm"]
    assert not check.available
    assert check.latency_ms is None
    assert "cannot reach" in check.detail
    assert "endpoints.vllm" in check.fix and "start the server" in check.fix
    vllm = next(e for e in report.endpoints if e.key == "vllm")
    assert not vllm.reachable and vllm.error


def test_reachable_endpoint_reports_latency_and_served_models(report: StatusReport) -> None:
    check = by_id(report)["served"]
    assert check.available, check.detail
    assert check.latency_ms is not None and check.latency_ms >= 0
    assert check.served_models == ["served-vlm"]


def test_server_without_the_model_says_what_it_serves(report: StatusReport) -> None:
    check = by_id(report)["not_served"]
    assert not check.available
    assert "does not serve nope" in check.detail
    assert "served-vlm" in check.fix and "served_name" in check.fix


def test_missing_tesseract_binary_gives_the_apt_hint(report: StatusReport) -> None:
    check = by_id(report)["tesseract"]
    assert not check.available
    assert "not found" in check.detail
    assert "apt-get install" in check.fix and "tesseract-ocr" in check.fix


def test_status_file_round_trips_with_its_schema_version(
    config: AppConfig, report: StatusReport
) -> None:
    path = write_status(config, report)
    assert path == status_path(config)
    assert json.loads(path.read_text(encoding="utf-8"))["schema_version"] == 1
    assert read_status(config) == report


def test_a_failed_write_keeps_the_previous_status_whole(
    config: AppConfig, report: StatusReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_status(config, report)
    before = status_path(config).read_bytes()
    newer = report.model_copy(update={"profile": "changed"})

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "replace", crash)
    with pytest.raises(StorageError):
        write_status(config, newer)
    assert status_path(config).read_bytes() == before
    leftovers = [p.name for p in config.data_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_history_gets_one_line_per_check(config: AppConfig, report: StatusReport) -> None:
    assert read_history(config) == []
    for _ in range(3):
        write_status(config, report)
    lines = history_path(config).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    history = read_history(config)
    assert [h.available for h in history] == [len(report.available_ids)] * 3
    assert history[0].total == len(report.models)
    assert history[0].available_ids == report.available_ids
    assert len(read_history(config, limit=2)) == 2


def test_corrupt_status_file_is_moved_aside(config: AppConfig) -> None:
    path = status_path(config)
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 1, "models": "not a list"', encoding="utf-8")
    with pytest.raises(CorruptDataFile, match="moved to"):
        read_status(config)
    assert not path.exists()
    assert len(list((config.data_dir / ".corrupt").iterdir())) == 1
    assert read_status(config) is None


def test_cli_models_status_writes_the_files_and_prints_json(
    profile: Path, config: AppConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["models", "status", "--json", "--config", str(profile)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["schema_version"] == 1
    assert {m["model_id"] for m in printed["models"]} == set(config.models)
    assert read_status(config) is not None
    assert len(read_history(config)) == 1


def test_cli_models_list_and_status_print_the_same_table(
    profile: Path, config: AppConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["models", "list", "--config", str(profile)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert cli.main(["models", "status", "--config", str(profile)]) == 0
    captured = capsys.readouterr()
    status_lines = captured.out.splitlines()
    # Same rows (latencies may differ, so compare what each row starts with).
    assert [line.split()[:2] for line in listed] == [line.split()[:2] for line in status_lines]
    assert any(line.startswith("no   absent") and "models download" in line for line in listed)
    assert "written to" in captured.err


def test_download_progress_is_read_from_the_page_thread(tmp_path: Path) -> None:
    worker_threads: set[str] = set()
    ticks: list[float] = []

    def fake_download(source: str, progress) -> Path:
        worker_threads.add(threading.current_thread().name)
        for done in (0, 50, 100):
            progress(done, 100)
        return tmp_path / source

    folder = run_download(
        fake_download, "org/m", DownloadTracker(), lambda t: ticks.append(t.fraction()), 0.001
    )
    assert folder == tmp_path / "org/m"
    assert ticks[-1] == 1.0
    assert threading.current_thread().name not in worker_threads


def test_download_errors_reach_the_caller() -> None:
    def offline(source: str, progress) -> Path:
        raise ModelUnavailable("offline: cannot download", hint="unset HF_HUB_OFFLINE")

    with pytest.raises(ModelUnavailable, match="offline"):
        run_download(offline, "org/m", DownloadTracker(), lambda t: None, 0.001)


def test_tracker_never_goes_backwards() -> None:
    tracker = DownloadTracker()
    tracker.update(40, 100)
    tracker.update(10, 50)  # a late report from another worker thread
    assert tracker.snapshot() == (40, 100)
    assert tracker.fraction() == 0.4
    assert DownloadTracker().fraction() == 0.0
