"""`python cli.py`: config check, cache stats/clear and ocr, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from models.config import REPO_ROOT
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.profiles import fake_server_model_yaml, write_test_profile
from testkit.render import RECEIPT_LINES, accented_page, encode, pdf_bytes, render_lines

PROFILES = ["config.yaml", "config_optimized.yaml", "config_blackwell_optimized.yaml"]


@pytest.mark.parametrize("name", PROFILES)
def test_config_check_prints_the_resolved_profile(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["config", "check", str(REPO_ROOT / name)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# profile: {REPO_ROOT / name}")
    assert "qwen2_5_vl_7b:" in out and "templates:" in out


def test_config_check_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {REPO_ROOT / 'config.yaml'}\ncache:\n  max_mb: huge\n")
    assert cli.main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml: cache.max_mb" in err and "'huge'" in err


def test_cache_stats_and_clear(temp_profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cache", "stats"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 0" in capsys.readouterr().out


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ocr"])
    assert exit_info.value.code == 2


def _run_cli(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CHATVLM_CONFIG": str(profile), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow
def test_ocr_json_lines_one_per_file_and_failures_reported(
    temp_profile: Path, tmp_path: Path
) -> None:
    good = tmp_path / "receipt.png"
    good.write_bytes(encode(render_lines(RECEIPT_LINES)))
    bad = tmp_path / "fake.png"
    bad.write_text("not an image")
    proc = _run_cli(
        "ocr",
        "--format",
        "json",
        "--template",
        "receipt",
        str(bad),
        str(good),
        profile=temp_profile,
    )
    assert proc.returncode == 1, proc.stderr
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert set(first) == {"file", "engine", "pages", "fields", "fields_per", "records", "error"}
    assert first["file"] == "fake.png" and "fake.png" in first["error"]
    assert second["error"] is None and second["engine"] == "rapidocr"
    (page,) = second["pages"]
    assert set(page) == {"page", "status", "text", "lines", "seconds"}
    assert page["status"] == "ok" and "TOTAL" in page["text"].upper()
    assert set(page["lines"][0]) == {"text", "box", "confidence"}
    assert second["fields"]["total"] == {
        "value": "10.00",
        "confidence": second["fields"]["total"]["confidence"],
        "line": second["fields"]["total"]["line"],
        "page": 1,
    }
    assert second["records"] == [{"page": None, "fields": second["fields"]}]


@pytest.mark.slow
def test_ocr_text_success_exit_0_without_torch(temp_profile: Path, tmp_path: Path) -> None:
    good = tmp_path / "hello.png"
    good.write_bytes(encode(render_lines(["HELLO WORLD 2024"])))
    probe = (
        "import runpy, sys; sys.argv = ['cli.py', 'ocr', sys.argv[1]];\n"
        "try:\n    runpy.run_path('cli.py', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print('EXIT', e.code, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "CHATVLM_CONFIG": str(temp_profile)}
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(good)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert "==> hello.png <==" in proc.stdout and "HELLO" in proc.stdout.upper()
    assert proc.stdout.strip().endswith("EXIT 0 False False"), proc.stdout + proc.stderr


SECOND_RECEIPT = [("MOONLIGHT STORES SDN BHD", None), ("TEA", "3.00"), ("TOTAL", "7.25")]


def test_ocr_fields_per_page_or_per_document(
    temp_profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PDF of two receipts: a record per page keeps each total; the default reads
    the file as one document and says which page each field came from."""
    pdf = tmp_path / "receipts.pdf"
    pdf.write_bytes(pdf_bytes([render_lines(RECEIPT_LINES), render_lines(SECOND_RECEIPT)]))
    args = ["ocr", "--template", "receipt", "--no-cache", str(pdf)]
    assert cli.main([*args, "--format", "json", "--fields-per", "page"]) == 0
    per_page = json.loads(capsys.readouterr().out)
    assert per_page["fields_per"] == "page" and per_page["fields"] == {}
    records = per_page["records"]
    assert [(r["page"], r["fields"]["total"]["value"]) for r in records] == [
        (1, "10.00"),
        (2, "7.25"),
    ]
    assert records[1]["fields"]["total"]["page"] == 2

    assert cli.main([*args, "--fields-per", "page"]) == 0
    text = capsys.readouterr().out
    assert "-- page 1 --" in text and "-- page 2 --" in text and "total: 7.25" in text

    assert cli.main(args) == 0  # one record per document, the default
    text = capsys.readouterr().out
    assert "company: SUNRISE TRADING SDN BHD (page 1)" in text


def test_ocr_reads_accents_when_asked(
    temp_profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "cafe.png"
    image.write_bytes(encode(accented_page()))
    assert cli.main(["ocr", "--no-cache", str(image)]) == 0
    assert "SETIA ALAM" in capsys.readouterr().out
    assert cli.main(["ocr", "--no-cache", "--characters", "all", str(image)]) == 0
    assert "SETIA ÁLAM" in capsys.readouterr().out


def test_unknown_template_is_a_clear_error(
    temp_profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(encode(render_lines(["X"])))
    assert cli.main(["ocr", "--template", "menu", str(image)]) == 1
    assert "no template 'menu'" in capsys.readouterr().err


@pytest.mark.slow
def test_chat_streams_to_the_terminal_and_keeps_the_turn(
    chat_profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "page.png"
    image.write_bytes(encode(render_lines(["HELLO"], size=(240, 120), font_size=20)))
    code = cli.main(
        ["chat", "--model", "tiny_qwen", "--image", str(image), "--max-tokens", "6", "What is it?"]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "[tiny_qwen · " in err and "tokens" in err
    conversation_id = err.rsplit("conversation ", 1)[1].split("]")[0]
    saved = json.loads(
        (chat_profile.parent / "results" / "chats" / f"{conversation_id}.json").read_text()
    )
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][0]["images"][0]["name"] == "page.png"
    # A follow-up in the same conversation.
    assert (
        cli.main(["chat", "--conversation", conversation_id, "And now?", "--max-tokens", "4"]) == 0
    )


def test_chat_with_an_unknown_model_fails_clearly(
    temp_profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["chat", "--model", "nope", "hi"]) == 1
    assert "no chat model 'nope'" in capsys.readouterr().err


# fake_vlm's own sampling settings, and a second model switched off in the profile.
CHAT_SETTINGS_YAML = """\
    max_new_tokens: 7
    temperature: 0.5
    top_p: 0.9
  switched_off_vlm:
    display_name: Switched off
    backend: openai
    task: chat
    endpoint: fake
    served_name: fake-vlm
    enabled: false
"""


def _sampling(request) -> tuple[int, float, float]:
    return request.body["max_tokens"], request.body["temperature"], request.body["top_p"]


def test_chat_takes_the_models_own_settings_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer() as server:
        yaml_text = fake_server_model_yaml(server.base_url) + CHAT_SETTINGS_YAML
        monkeypatch.setenv("CHATVLM_CONFIG", str(write_test_profile(tmp_path, yaml_text)))
        assert cli.main(["chat", "--model", "fake_vlm", "first?"]) == 0
        conversation_id = capsys.readouterr().err.rsplit("conversation ", 1)[1].split("]")[0]
        assert cli.main(["chat", "--model", "fake_vlm", "--max-tokens", "3", "new?"]) == 0
        assert (
            cli.main(["chat", "--conversation", conversation_id, "--temperature", "0", "again?"])
            == 0
        )
        sent = [_sampling(request) for request in server.chat_requests]
    assert sent == [(7, 0.5, 0.9), (3, 0.5, 0.9), (7, 0.0, 0.9)]
    saved = json.loads(
        (tmp_path / "results" / "chats" / f"{conversation_id}.json").read_text(encoding="utf-8")
    )
    assert saved["params"] == {"max_new_tokens": 7, "temperature": 0.5, "top_p": 0.9}
    assert [m["text"] for m in saved["messages"] if m["role"] == "user"] == ["first?", "again?"]


def test_chat_refuses_a_model_disabled_in_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer() as server:
        yaml_text = fake_server_model_yaml(server.base_url) + CHAT_SETTINGS_YAML
        monkeypatch.setenv("CHATVLM_CONFIG", str(write_test_profile(tmp_path, yaml_text)))
        assert cli.main(["chat", "--model", "switched_off_vlm", "hi"]) == 1
        assert cli.main(["chat", "--model", "fake_vlm", "--max-tokens", "0", "hi"]) == 1
        assert not server.chat_requests
    err = capsys.readouterr().err
    assert "the chat model 'switched_off_vlm' is disabled in the profile" in err
    assert "enabled: true" in err and "fake_vlm" in err
    assert "bad sampling option (max_new_tokens:" in err
    assert not list((tmp_path / "results").glob("chats/*.json"))  # nothing was kept
