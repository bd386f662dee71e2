"""The Benchmarks page under AppTest: a small run on the built-in sample set with an
engine of the profile served by the fake OpenAI server, then the runs table, comparison
and drill-down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT, load_config
from testkit.apptest import shown
from testkit.fake_openai_server import FakeOpenAIServer, Reply
from testkit.profiles import write_test_profile
from testkit.render import encode, render_lines
from testkit.served_engine import served_ocr_yaml
from utils.bench.datasets import builtin_dataset
from utils.bench.plan import builtin_root

APP = str(REPO_ROOT / "app.py")


@pytest.fixture
def echo_profile(temp_profile: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test profile plus engine "echo", a served model that reads each item's truth
    back with its last word dropped: known, non-trivial scores. Items are read one at a
    time in dataset order, so the scripted answers line up with the two runs below
    (the first 3 items, then the first 2)."""
    with FakeOpenAIServer() as server:
        profile = write_test_profile(
            temp_profile.parent,
            served_ocr_yaml(server.base_url, model_id="echo", concurrency=1),
            name="echo_profile.yaml",
        )
        items = builtin_dataset(builtin_root(load_config(profile).config)).items
        answers = [(item.text or "").rsplit(maxsplit=1)[0] for item in items[:3] + items[:2]]
        server.script(*(Reply(chunks=(answer,)) for answer in answers))
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        yield profile


def _bench_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/benchmark.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _start_run(at: AppTest, limit: int) -> None:
    engines = next(m for m in at.multiselect if m.label == "Engines and models")
    engines.set_value(["echo"])
    next(n for n in at.number_input if n.label.startswith("Limit")).set_value(limit)
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_run_compare_and_drill_down(temp_profile: Path, echo_profile: Path) -> None:
    at = _bench_page()
    assert any("No runs yet" in shown(i.value) for i in at.info)
    _start_run(at, limit=3)
    assert any("complete" in shown(s.value) for s in at.success), [
        shown(s.value) for s in at.success
    ]
    _start_run(at, limit=2)

    runs = at.dataframe[0].value
    assert list(runs["engine"]) == ["echo", "echo"] and set(runs["status"]) == {"complete"}
    assert runs["word_f1"].between(0.5, 0.999).all()  # one word short: imperfect, not zero
    assert set(runs["items"]) == {"3/3", "2/2"}

    compare = next(m for m in at.multiselect if m.label.startswith("Runs"))
    compare.set_value(list(runs["run"])).run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [d.value for d in at.dataframe]
    table = next(t for t in labels if "metric" in t.columns)
    assert "word_f1" in " ".join(table["metric"]) or "word F1" in " ".join(table["metric"])
    assert len(at.get("vega_lite_chart")) >= 2

    diff = next(t for t in labels if list(t.columns) == ["change", "truth", "prediction"])
    assert "missing" in set(diff["change"])  # the dropped last word
    assert len(at.get("image")) == 1  # the item's page (a served VLM draws no boxes on it)
    saved = list((temp_profile.parent / "results" / "benchmarks").glob("*/items.jsonl"))
    assert len(saved) == 2


def _start_on_folder(at: AppTest, folder: str) -> None:
    next(r for r in at.radio if r.label == "Dataset").set_value("Folder on the server").run()
    next(t for t in at.text_input if t.label == "Folder").set_value(folder)
    next(m for m in at.multiselect if m.label == "Engines and models").set_value(["echo"]).run()
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_the_page_reads_folders_inside_the_dataset_roots_only(
    temp_profile: Path, echo_profile: Path
) -> None:
    data_dir = temp_profile.parent / "results"
    root = data_dir / "datasets"
    outside = temp_profile.parent / "elsewhere"
    outside.mkdir()
    (outside / "x.png").write_bytes(b"not read")
    at = _bench_page()

    for folder in (str(outside), f"{root}/../../elsewhere", "/etc"):
        _start_on_folder(at, folder)
        errors = " ".join(shown(e.value) for e in at.error)
        assert "is not inside a dataset folder the web page may read" in errors, folder
    assert str(root) in " ".join(shown(c.value) for c in at.caption)  # the page names its roots
    assert not (data_dir / "benchmarks").exists()

    _start_on_folder(at, str(root / "missing"))  # inside: on to the dataset reader
    assert "does not exist" in " ".join(shown(e.value) for e in at.error)


def test_the_folder_option_is_hidden_when_no_roots_are_configured(
    temp_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = write_test_profile(
        temp_profile.parent, "benchmark:\n  dataset_roots: []\n", name="no_roots.yaml"
    )
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    at = _bench_page()

    assert not [r for r in at.radio if r.label == "Dataset"]
    assert not [t for t in at.text_input if t.label == "Folder"]
    captions = " ".join(shown(c.value) for c in at.caption)
    assert "Reading folders on the server is off" in captions
    assert "benchmark.dataset_roots" in captions


def test_an_item_message_quoting_a_dataset_file_is_text(
    temp_profile: Path, echo_profile: Path
) -> None:
    root = temp_profile.parent / "results" / "datasets"
    folder = root / "hostile"
    folder.mkdir(parents=True)
    hostile = "![x](http:203.0.113.7)"
    (folder / f"{hostile}.png").write_bytes(encode(render_lines(["TOTAL 1.00"])))
    (folder / f"{hostile}.txt").write_bytes(b"\xff\xfe not utf-8 \x80")  # a broken label
    at = _bench_page()
    _start_on_folder(at, str(folder))

    texts = " ".join(text.value for text in at.text)
    assert hostile in texts  # the drill-down shows the skipped item's message as plain text
    assert not [m for m in at.markdown if hostile in m.value]
