"""The Models page under AppTest: availability, checks, history, corrupt files, downloads,
hardware advice, and (slow) loading and unloading a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT, load_config
from testkit.apptest import blank_when_missing, shown
from testkit.render import encode, render_lines
from tests.test_model_status import closed_port, fake_hf_cache_repo
from utils.safe_markdown import escape_markdown
from utils.system.hardware import detect_hardware, recommend_profile
from utils.system.model_status import history_path, read_history, read_status, status_path

APP = str(REPO_ROOT / "app.py")


@pytest.fixture
def page_profile(temp_profile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """temp_profile plus a cached model, no Tesseract binary and closed server ports."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_hf_cache_repo(cache, "org/tiny-vlm")
    endpoints = "".join(
        f"  {key}:\n    base_url: http://127.0.0.1:{closed_port()}/v1\n"
        for key in ("vllm", "ollama", "llamacpp")
    )
    profile = tmp_path / "models_page.yaml"
    profile.write_text(
        f"extends: {temp_profile}\n"
        f"endpoints:\n{endpoints}"
        "models:\n"
        "  tiny_cached:\n"
        "    display_name: Tiny cached VLM\n"
        "    backend: transformers\n"
        "    task: both\n"
        "    source: org/tiny-vlm\n"
        "ocr:\n"
        "  tesseract:\n"
        f"    tesseract_cmd: {tmp_path / 'nowhere' / 'tesseract'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    return profile


def open_page(timeout: float = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def catalog(at: AppTest) -> dict[str, dict]:
    table = at.dataframe[0].value
    return {row["id"]: row for row in table.to_dict("records")}


def texts(elements) -> list[str]:
    return [shown(element.value) for element in elements]


def test_page_shows_every_entry_with_its_availability_and_fix(page_profile: Path) -> None:
    at = open_page()
    rows = catalog(at)
    config = load_config(page_profile).config
    assert set(rows) == set(config.models)
    assert rows["tiny_cached"]["ok"] == "✅" and rows["tiny_cached"]["size on disk"]
    assert rows["rapidocr"]["ok"] == "✅"
    assert rows["qwen2_vl_2b"]["ok"] == "⚠️"
    assert "python cli.py models download" in rows["qwen2_vl_2b"]["what to do"]
    assert rows["tesseract"]["ok"] == "⚠️" and "apt-get install" in rows["tesseract"]["what to do"]
    assert "endpoints.vllm" in rows["dots_ocr_vllm"]["what to do"]
    assert all(blank_when_missing(d) for d in at.dataframe)  # no latency: blank, not "None"
    # The first visit ran a check and kept it.
    assert read_status(config) is not None
    assert len(read_history(config)) == 1


def test_page_reads_the_last_status_instead_of_checking_again(page_profile: Path) -> None:
    open_page()
    config = load_config(page_profile).config
    open_page()
    assert len(read_history(config)) == 1


def test_check_now_runs_a_check_and_the_history_is_charted(page_profile: Path) -> None:
    at = open_page()
    config = load_config(page_profile).config
    assert not at.get("vega_lite_chart")
    at.button(key="check_now").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(read_history(config)) == 2
    assert history_path(config).read_text(encoding="utf-8").count("\n") == 2
    assert at.get("vega_lite_chart"), "no history chart after the second check"


def test_corrupt_status_file_is_moved_aside_and_the_page_renders(page_profile: Path) -> None:
    config = load_config(page_profile).config
    status_path(config).parent.mkdir(parents=True, exist_ok=True)
    status_path(config).write_text("{ not json", encoding="utf-8")
    at = open_page()
    assert any("corrupt" in message for message in texts(at.error))
    assert len(list((config.data_dir / ".corrupt").iterdir())) == 1
    assert read_status(config) is not None  # a fresh check replaced it
    assert "tiny_cached" in catalog(at)


def test_offline_download_says_so(page_profile: Path) -> None:
    at = open_page()
    assert any("HF_HUB_OFFLINE" in message for message in texts(at.info))
    at.button(key="download_model").click().run()
    assert not at.exception
    assert any("offline" in message for message in texts(at.error))


def test_a_finished_download_names_model_and_folder_as_plain_text(
    page_profile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "**weights**_[here](javascript:alert(1))"
    monkeypatch.setattr("utils.system.admin.download_model", lambda *args: folder)
    at = open_page()
    at.button(key="download_model").click().run()
    assert not at.exception, [e.value for e in at.exception]
    notices = [m.value for m in at.success]
    assert any(escape_markdown(folder) in notice for notice in notices), notices
    assert not any("**weights**" in notice for notice in notices)


def test_hardware_and_the_recommended_profile_are_shown(page_profile: Path) -> None:
    at = open_page()
    advice = recommend_profile(detect_hardware())
    shown = texts(at.success) + texts(at.info)
    assert any(f"`{advice.profile_file}`" in message for message in shown), shown
    hardware = next(frame.value for frame in at.dataframe if "what" in frame.value.columns)
    assert {"CPU", "RAM", "Apple MPS", "torch"} <= set(hardware["what"])


def test_cache_stats_and_clear(page_profile: Path) -> None:
    at = open_page()
    assert [m.label for m in at.metric] == ["Entries", "Size (MB)", "Hits", "Misses"]
    at.button(key="clear_cache").click().run()
    assert any("Removed 0 cached entries" in message for message in texts(at.success))


@pytest.mark.slow
def test_load_and_unload_a_tiny_model(chat_profile: Path) -> None:
    at = open_page(timeout=120)
    assert catalog(at)["tiny_qwen"]["ok"] == "✅"
    at.selectbox(key="load_choice").select("tiny_qwen").run()
    at.button(key="load_model").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Tiny Qwen2-VL is loaded" in message for message in texts(at.success))
    unload = [b for b in at.button if b.key and b.key.startswith("unload_tiny_qwen")]
    assert len(unload) == 1
    unload[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.key and b.key.startswith("unload_tiny_qwen")]


@pytest.mark.slow  # two OCR runs through RapidOCR
def test_cache_stats_count_what_the_ocr_page_just_did(temp_profile: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/ocr.py").run()
    scan = ("scan.png", encode(render_lines(["CACHED 42"], size=(400, 160))), "image/png")
    for _ in range(2):  # the second run comes from the cache
        at.file_uploader[0].set_value(scan).run()
        next(b for b in at.button if b.label == "Run OCR").click().run()
        assert not at.exception, [e.value for e in at.exception]
    at.switch_page("app_pages/models.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Hits"], metrics["Misses"]) == ("1", "1"), metrics
