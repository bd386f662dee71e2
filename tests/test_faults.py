"""Faults: a process killed mid-work, damaged data and cache files, a misbehaving model server.

- SIGKILL during an OCR batch (the page's run recorder, driven by a child process) and
  during a chat answer (`cli.py chat` against a slow OpenAI-compatible fake server):
  every data file parses and validates with its model afterwards, and at most the item
  in flight is missing.
- A cache over its cap with damaged entries, and damaged OCR runs, conversations,
  benchmark files and the model status file: every page renders, the app says what it
  moved aside, OCR still works, and the cache stats count the rejected entries.
- An OpenAI-compatible server that hangs, fails with HTTP 500 or drops the stream: the
  Chat page shows and saves the partial answer with the error, and the next question
  is answered.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT, load_config
from testkit.apptest import shown
from testkit.fake_openai_server import Drop, Fail, FakeOpenAIServer, Hang, Reply
from testkit.faults import refuse_writes_under
from testkit.profiles import fake_server_model_yaml, write_test_profile
from testkit.render import encode, render_lines
from utils.bench.engines import Prediction
from utils.bench.plan import BenchRequest
from utils.bench.records import ItemRecord, Manifest, Summary
from utils.bench.runner import run_benchmark
from utils.bench.store import RunState
from utils.cache import DiskCache, open_cache
from utils.chat.conversation import Conversation
from utils.chat.store import ChatStore
from utils.errors import ModelUnavailable
from utils.ocr import pipeline as ocr_pipeline
from utils.ocr.pipeline import OcrSettings, document_limits, ocr_file
from utils.ocr.runs import OcrRun, list_ocr_runs, load_run, save_run
from utils.storage import CORRUPT_DIR_NAME, list_corrupt, new_run_id, read_json, read_jsonl
from utils.system.model_status import StatusReport

APP = str(REPO_ROOT / "app.py")
CHILD_ENV = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def start_child(args: list[str], profile: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        env={**CHILD_ENV, "CHATVLM_CONFIG": str(profile)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_when(child: subprocess.Popen[bytes], ready: bytes, timeout_s: float = 60) -> bytes:
    """Read the child's stdout until ``ready`` appears, then SIGKILL it; return all it wrote."""
    assert child.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout_s
    while ready not in seen:
        chunk = os.read(child.stdout.fileno(), 4096)
        if not chunk or time.monotonic() > deadline:
            child.kill()
            stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
            pytest.fail(f"the child never wrote {ready!r}; it wrote {seen!r}\n{stderr[-2000:]}")
        seen += chunk
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    return seen + child.stdout.read()


# --- SIGKILL mid-work --------------------------------------------------------------------

# The OCR page's batch loop without Streamlit: the same RunRecorder, saving after each file.
OCR_BATCH_CHILD = """
import sys
from pathlib import Path
from models.config import load_config
from utils.ocr.runs import RunRecorder
from utils.ocr.pipeline import OcrSettings, ocr_file

config = load_config(sys.argv[1]).config
settings = OcrSettings(engine="rapidocr")
recorder = RunRecorder(config, settings.model_dump())
print("run", recorder.run.run_id, flush=True)
for path in sys.argv[2:]:
    data = Path(path).read_bytes()
    recorder.add(ocr_file(data, Path(path).name, settings, config), data)
    print("saved", len(recorder.run.documents), flush=True)
"""


def test_kill_mid_ocr_batch_keeps_every_finished_file(tmp_path: Path) -> None:
    profile = write_test_profile(tmp_path)
    files = []
    for number in range(8):
        path = tmp_path / f"page{number}.png"
        path.write_bytes(encode(render_lines([f"PAGE {number}"], size=(360, 100), font_size=40)))
        files.append(str(path))
    child = start_child([sys.executable, "-c", OCR_BATCH_CHILD, str(profile), *files], profile)

    output = kill_when(child, b"saved 2\n").decode()

    run_id = output.split()[1]
    announced = output.count("saved ")
    config = load_config(profile).config
    run = load_run(config, run_id)
    assert run is not None, "the run file did not survive the kill"
    # Saved after each file: everything announced is there, at most one more finished
    # between the last line and the kill, and the kill came before the end.
    assert announced <= len(run.documents) <= announced + 1 < len(files)
    assert all(document.ok for document in run.documents)
    assert [d.file for d in run.documents] == [Path(f).name for f in files[: len(run.documents)]]
    assert_data_files_valid(config.data_dir)


def test_kill_mid_chat_answer_keeps_the_question(tmp_path: Path) -> None:
    chunks = tuple(f"word{n} " for n in range(40))
    with FakeOpenAIServer() as server:
        server.script(Reply(chunks=chunks, chunk_delay_s=0.1))
        profile = write_test_profile(tmp_path, fake_server_model_yaml(server.base_url))
        child = start_child(
            [sys.executable, "cli.py", "chat", "--model", "fake_vlm", "What is it?"], profile
        )
        output = kill_when(child, b"word1 ")
        assert b"word39" not in output  # killed mid-answer

        config = load_config(profile).config
        assert_data_files_valid(config.data_dir)
        store = ChatStore(config.data_dir / "chats", document_limits(config))
        (summary,) = store.list()
        conversation = store.load(summary.id)
        assert conversation is not None
        # The question is saved before the answer starts; the answer in flight is lost.
        assert [(m.role, m.text) for m in conversation.messages] == [("user", "What is it?")]

        # Restarted, the same conversation takes the next turn.
        server.script(Reply(chunks=("fine",)))
        again = subprocess.run(
            [sys.executable, "cli.py", "chat", "--conversation", summary.id, "And now?"],
            cwd=REPO_ROOT,
            env={**CHILD_ENV, "CHATVLM_CONFIG": str(profile)},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        conversation = store.load(summary.id)
        assert [m.role for m in conversation.messages] == ["user", "user", "assistant"]
        assert conversation.messages[-1].text == "fine"


# The data files and the model each must validate with.
JSON_MODELS = {
    "ocr": OcrRun,
    "chats": Conversation,
    "manifest.json": Manifest,
    "summary.json": Summary,
    "state.json": RunState,
    "model_status.json": StatusReport,
}


def assert_data_files_valid(data_dir: Path) -> None:
    """Every JSON data file parses and validates (nothing is moved aside by reading)."""
    checked = 0
    for path in data_dir.rglob("*.json"):
        if CORRUPT_DIR_NAME in path.parts or "datasets" in path.parts:
            continue
        model = JSON_MODELS.get(path.name) or JSON_MODELS.get(path.parent.name)
        assert model is not None, f"no model known for {path}"
        read_json(path, model)
        checked += 1
    for path in data_dir.rglob("items.jsonl"):
        assert read_jsonl(path, ItemRecord).skipped == 0
    assert checked, "no data files were written"
    assert not list_corrupt(data_dir / CORRUPT_DIR_NAME)


# --- damaged cache and data files --------------------------------------------------------


class EchoEngine:
    """A benchmark engine that answers with the ground truth (instant, deterministic)."""

    name = "echo"
    backend = "test"
    concurrency = 1

    def run(self, item) -> Prediction:
        return Prediction(text=item.text or "", seconds=0.01)


def make_benchmark_runs(profile: Path, folder: Path) -> list[str]:
    folder.mkdir()
    for stem in ("a", "b"):
        (folder / f"{stem}.png").write_bytes(encode(render_lines([stem.upper()], (120, 60), 20)))
        (folder / f"{stem}.txt").write_text(stem.upper(), encoding="utf-8")
    loaded = load_config(profile)
    request = BenchRequest(dataset=str(folder), engines=["echo"])
    return [
        run_benchmark(loaded, request, engine_factory=lambda name, config: EchoEngine()).run_id
        for _ in range(2)
    ]


def fill_cache(root: Path, megabytes: int) -> None:
    """Entries written under a larger cap: this many MB, more than the profile allows."""
    big = DiskCache(root, max_mb=megabytes * 4)
    for number in range(megabytes * 4):
        big.set(f"filler{number}", os.urandom(256 * 1024))


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    else:
        path.write_bytes(b"\x00garbage{not json")


@pytest.fixture
def damaged_profile(tmp_path: Path) -> tuple[Path, bytes]:
    """A profile whose cache is over its 1 MB cap and whose data files are partly damaged.

    Returns the profile and an image whose cached OCR result was damaged.
    """
    profile = write_test_profile(tmp_path, "cache:\n  max_mb: 1\n")
    config = load_config(profile).config
    fill_cache(config.cache_dir, 3)
    image = encode(render_lines(["DAMAGED CACHE 77"], size=(500, 100), font_size=40))
    settings = OcrSettings(engine="rapidocr")
    # Under the roomier cap so it survives the filler; then damaged on disk.
    result = ocr_file(image, "first.png", settings, config, DiskCache(config.cache_dir, 50))
    assert result.ok
    (entry,) = [p for p in config.cache_dir.glob("*.pkl") if not p.name.startswith("filler")]
    damage(entry, "flip")

    for number in range(2):
        run = OcrRun(run_id=f"20240101T00000{number}Z-abcdef", created_at="x", documents=[result])
        path = config.data_dir / "ocr" / f"{run.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run.model_dump_json(), encoding="utf-8")
    damage(path, "truncate")

    store = ChatStore(config.data_dir / "chats", document_limits(config))
    conversations = [store.new("fake_vlm", settings_params()) for _ in range(2)]
    for conversation in conversations:
        store.save(conversation)
    damage(store.root / f"{conversations[1].id}.json", "garbage")

    first, second = make_benchmark_runs(profile, tmp_path / "set")
    runs = config.data_dir / "benchmarks"
    damage(runs / first / "summary.json", "truncate")
    with (runs / first / "items.jsonl").open("ab") as items:
        items.write(b'{"schema_version": 1, "torn":\n')
    damage(runs / second / "manifest.json", "garbage")
    (config.data_dir / "model_status.json").write_bytes(b'{"schema_version": 1, "models": [')
    return profile, image


def settings_params():
    from models.chat.types import GenerationParams

    return GenerationParams()


def sidebar_warnings(at: AppTest) -> str:
    return " ".join(shown(warning.value) for warning in at.sidebar.warning)


def test_damaged_files_are_moved_aside_reported_and_the_app_works(damaged_profile, monkeypatch):
    profile, image = damaged_profile
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    config = load_config(profile).config

    at = AppTest.from_file(APP, default_timeout=180)
    at.run()  # the Chat page lists conversations: the damaged one is moved aside
    assert not at.exception, [e.value for e in at.exception]
    assert "1 damaged data file(s) were moved aside" in sidebar_warnings(at)
    for page in ("app_pages/ocr.py", "app_pages/benchmark.py", "app_pages/models.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])

    moved = {path.name.split(".")[0] for path in list_corrupt(config.data_dir / CORRUPT_DIR_NAME)}
    assert {"summary", "manifest", "model_status", "20240101T000001Z-abcdef"} <= moved
    assert len(moved) == 5  # ... and the damaged conversation
    # (AppTest drops app.py's own sidebar after switch_page; a new session shows it.)
    notice = sidebar_warnings(AppTest.from_file(APP, default_timeout=180).run())
    assert "5 damaged data file(s) were moved aside" in notice, notice
    assert "model_status." in notice and "manifest." in notice

    # The OCR page reads the image whose cache entry was damaged: a rejected entry, a
    # miss, a fresh result, and the cache back under its cap.
    at.switch_page("app_pages/ocr.py").run()
    at.file_uploader[0].set_value([("again.png", image, "image/png")]).run()
    next(b for b in at.button if b.label == "Run OCR").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("DAMAGED CACHE 77" in t.value.upper() for t in at.text)
    stats = open_cache(config.cache_dir, config.cache).stats()
    assert stats.rejected == 1 and stats.misses >= 1
    assert stats.size_bytes <= stats.max_bytes and stats.evictions > 0

    at.switch_page("app_pages/models.py").run()
    assert any("1 rejected" in shown(c.value) for c in at.caption)
    # What is left parses; the damaged items.jsonl line is skipped, not fatal.
    for path in (config.data_dir / "benchmarks").rglob("*.json"):
        read_json(path, JSON_MODELS[path.name])


# --- a misbehaving model server ----------------------------------------------------------


def chat_turn(at: AppTest, question: str) -> None:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]


def saved_messages(profile: Path) -> list[dict]:
    (saved,) = (profile.parent / "results" / "chats").glob("*.json")
    return json.loads(saved.read_text(encoding="utf-8"))["messages"]


def test_hang_500_and_dropped_stream_show_the_error_and_the_next_question_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer() as server:
        profile = write_test_profile(tmp_path, fake_server_model_yaml(server.base_url, timeout_s=1))
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        next(s for s in at.sidebar.selectbox if s.label == "Model").set_value("fake_vlm").run()
        server.script(Hang(5), Fail(500, "CUDA error: out of memory"), Drop(after_chunks=2))

        # Answers that failed before their first token are left out of the next prompt
        # and the questions around them merged (utils.chat.prompt.to_prompt), so the echo
        # of the third question carries the first two as well.
        expectations = [
            ("first?", "", "did not answer within 1 s"),
            ("second?", "", "HTTP 500"),
            ("third?", "echo: first?\nsecond?\nthird?", "closed the stream mid-answer"),
        ]
        for number, (question, partial, error) in enumerate(expectations):
            chat_turn(at, question)
            answer = saved_messages(profile)[-1]
            assert answer["role"] == "assistant" and answer["interrupted"]
            assert answer["text"] == partial and error in answer["error"]
            message = at.chat_message[2 * number + 1]
            assert any(error in shown(e.value) for e in message.error), [
                shown(e.value) for e in message.error
            ]
            if partial:
                assert "third?" in message.markdown[0].value

        chat_turn(at, "fourth?")
        answer = saved_messages(profile)[-1]
        assert answer["error"] is None and not answer["interrupted"]
        assert answer["text"].startswith("echo: fourth?")
        assert len(at.chat_message) == 8
        assert len(server.chat_requests) == 4  # no retries: 500 and a drop are not retried


# --- an OCR batch that reads no file -----------------------------------------------------


def test_ocr_batch_whose_engine_fails_leaves_no_empty_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = write_test_profile(tmp_path)
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))

    def unusable_engine(*_, **__):
        raise ModelUnavailable("rapidocr failed to load", hint="reinstall rapidocr")

    # The page script runs in this process, so its batch meets this engine.
    monkeypatch.setattr(ocr_pipeline, "create_ocr_engine", unusable_engine)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/ocr.py").run()
    at.file_uploader[0].set_value([("a.png", encode(render_lines(["A"])), "image/png")]).run()
    next(button for button in at.button if button.label == "Run OCR").click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert [shown(e.value) for e in at.error] == ["rapidocr failed to load"]
    assert not at.warning  # no "that run could not be read" for a run never saved
    assert not list((tmp_path / "results" / "ocr").glob("*.json"))
    # An empty run saved by an older version is not offered for reopening either.
    config = load_config(profile).config
    save_run(config, OcrRun(run_id=new_run_id(), created_at="2026-01-01T00:00:00+00:00"))
    assert list_ocr_runs(config) == []


# --- a cache that cannot be used never stops the work (issue 14) -------------------------


def cli_main(*args: str) -> int:
    import cli  # the CLI in this process, so the cache's folder can be made to misbehave

    return cli.main(list(args))


def two_pages(folder: Path) -> list[str]:
    paths = []
    for number in (1, 2):
        path = folder / f"page{number}.png"
        path.write_bytes(encode(render_lines([f"CACHE FAULT {number}"], (420, 100), 40)))
        paths.append(str(path))
    return paths


def ocr_texts(out: str) -> list[str]:
    """The text of each file that `cli.py ocr --format json` printed, "" for a failed one."""
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [" ".join(page["text"] for page in result["pages"]).upper() for result in results]


def test_stats_file_not_utf8_breaks_neither_ocr_nor_cache_stats(tmp_path: Path, capsys) -> None:
    profile = write_test_profile(tmp_path)
    cache_dir = load_config(profile).config.cache_dir
    DiskCache(cache_dir).flush_stats()
    (cache_dir / "stats.json").write_bytes(b'{"schema_version": 1, "hits": "\xff\xfe"}')

    assert cli_main("ocr", "--config", str(profile), "--format", "json", *two_pages(tmp_path)) == 0
    assert ["CACHE FAULT" in text for text in ocr_texts(capsys.readouterr().out)] == [True, True]
    assert cli_main("cache", "stats", "--config", str(profile)) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["misses"]) == (2, 2)


@pytest.mark.parametrize("error", [errno.EROFS, errno.ENOSPC], ids=["read-only", "full"])
def test_unwritable_cache_keeps_every_result_and_the_batch_going(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    profile = write_test_profile(tmp_path)
    cache_dir = load_config(profile).config.cache_dir
    DiskCache(cache_dir).flush_stats()  # secret, lock and stats exist; then the disk turns
    pages = two_pages(tmp_path)
    refuse_writes_under(monkeypatch, cache_dir, error)

    assert cli_main("ocr", "--config", str(profile), "--format", "json", *pages) == 0

    assert ["CACHE FAULT" in text for text in ocr_texts(capsys.readouterr().out)] == [True, True]
    assert sorted(path.name for path in cache_dir.iterdir()) == [".lock", ".secret", "stats.json"]


def test_cache_clear_in_a_shared_folder_removes_only_cache_entries(tmp_path: Path, capsys) -> None:
    shared = tmp_path / "shared"
    profile = write_test_profile(tmp_path, name="base.yaml")
    profile.write_text(profile.read_text().replace(str(tmp_path / "cache"), str(shared)))
    others = {"data.pkl": b"\x80\x04another program's pickle", "notes.txt": b"mine"}
    shared.mkdir()
    for name, data in others.items():
        (shared / name).write_bytes(data)
    cache = DiskCache(shared)
    for number in range(3):
        cache.set(f"entry{number}", number)

    assert cli_main("cache", "clear", "--config", str(profile)) == 0

    assert "removed 3 cached entries" in capsys.readouterr().out
    assert {name: (shared / name).read_bytes() for name in others} == others


def test_secret_that_is_a_folder_leaves_ocr_working_uncached(tmp_path: Path, capsys) -> None:
    profile = write_test_profile(tmp_path)
    (load_config(profile).config.cache_dir / ".secret").mkdir(parents=True)

    assert cli_main("ocr", "--config", str(profile), "--format", "json", *two_pages(tmp_path)) == 0
    assert ["CACHE FAULT" in text for text in ocr_texts(capsys.readouterr().out)] == [True, True]
    assert cli_main("cache", "stats", "--config", str(profile)) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0


def test_config_check_refuses_a_cache_cap_of_zero(tmp_path: Path, capsys) -> None:
    profile = write_test_profile(tmp_path, "cache:\n  max_mb: 0\n")

    assert cli_main("config", "check", str(profile)) == 1

    err = capsys.readouterr().err
    assert "cache.max_mb" in err and "greater than 0" in err


# --- a read-only data folder in the UI ---------------------------------------------------


def test_read_only_results_chat_keeps_the_typed_question_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer() as server:
        profile = write_test_profile(tmp_path, fake_server_model_yaml(server.base_url))
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        results = profile.parent / "results"
        results.mkdir(exist_ok=True)
        refuse_writes_under(monkeypatch, results, errno.EROFS)
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        next(s for s in at.sidebar.selectbox if s.label == "Model").set_value("fake_vlm").run()
        at.chat_input[0].set_value("Is my question kept?").run()

        assert not at.exception, [e.value for e in at.exception]
        errors = [shown(e.value) for e in at.error]
        assert any(f"the folder {results}" in e and "read-only" in e for e in errors), errors
        assert at.chat_input[0].value == "Is my question kept?"  # back in the input
        assert not server.chat_requests  # nothing was asked that could not be kept


def test_read_only_results_ocr_page_shows_the_text_and_says_the_run_was_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = write_test_profile(tmp_path)
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    results = profile.parent / "results"
    results.mkdir(exist_ok=True)
    refuse_writes_under(monkeypatch, results, errno.EROFS)
    at = AppTest.from_file(str(REPO_ROOT / "app_pages" / "ocr.py"), default_timeout=120)
    at.run()
    image = encode(render_lines(["READ ONLY 42"], size=(420, 160), font_size=28))
    at.file_uploader[0].set_value(("scan.png", image, "image/png")).run()
    next(b for b in at.button if b.label == "Run OCR").click().run()

    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert any(f"{results}" in e and "read-only" in e.lower() for e in errors), errors
    assert any("not kept" in shown(w.value) for w in at.warning)
    assert "READ ONLY 42" in " ".join(text.value for text in at.text)  # the result is shown
