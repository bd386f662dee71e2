"""The Benchmarks page under AppTest: a small run on the built-in sample set with an
engine of the profile served by the fake OpenAI server, then the runs table, comparison
and drill-down."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT, load_config
from testkit.apptest import blank_when_missing, shown
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


def test_unavailable_engines_fold_into_one_line(temp_profile: Path) -> None:
    at = _bench_page()

    assert not [c for c in at.caption if shown(c.value).startswith("Unavailable")]
    folded = [e for e in at.expander if e.label.endswith("unavailable — why")]
    assert [e.label for e in folded] == ["8 engines unavailable — why"]
    reasons = " ".join(shown(c.value) for c in folded[0].caption)
    assert "qwen2_vl_2b" in reasons and "not in the local Hugging Face" in reasons
    assert "rapidocr" not in reasons  # usable engines stay in the picker only


def test_the_drill_down_picks_runs_by_name_and_blank_cells_stay_blank(
    temp_profile: Path, echo_profile: Path
) -> None:
    at = _bench_page()
    next(t for t in at.text_input if t.label == "Run name (optional)").set_value("first try")
    _start_run(at, limit=2)

    run_id = at.dataframe[0].value["run"].iloc[0]
    drill = next(s for s in at.selectbox if s.key == "drill_run")
    assert len(drill.options) == 1 and drill.options[0].startswith("first try · ")
    assert run_id not in drill.options[0]
    items = next(d for d in at.dataframe if "message" in d.value.columns)
    assert items.value["message"].isna().all()  # nothing to say about scored items...
    assert all(blank_when_missing(d) for d in at.dataframe)  # ...shown as blank cells


def test_a_stopped_run_offers_resume_on_the_next_run_and_cancel_goes_when_done(
    temp_profile: Path, echo_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A click while a run is going stops the page's script (Streamlit reruns it): here
    the second item raises what Streamlit raises then."""
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from utils.bench import runner

    calls = []
    process_item = runner.process_item

    def stop_on_the_second_item(*args):
        calls.append(args)
        if len(calls) == 2:
            raise StopException
        return process_item(*args)

    monkeypatch.setattr(runner, "process_item", stop_on_the_second_item)
    at = _bench_page()
    _start_run(at, limit=3)
    at.run()  # the page's next script run, as after the Cancel click

    warnings = " ".join(shown(w.value) for w in at.warning)
    assert "stopped with 1 of 3 items recorded" in warnings
    assert list(at.dataframe[0].value["status"]) == ["cancelled"]
    manage = next(e for e in at.expander if e.label == "Rename, delete or resume a run")
    assert manage.proto.expanded
    next(b for b in at.button if b.label == "Resume").click().run()
    assert not at.exception, [e.value for e in at.exception]

    assert any("complete, 2 items recorded now" in shown(s.value) for s in at.success)
    assert not [b for b in at.button if "Cancel" in b.label]
    assert list(at.dataframe[0].value["status"]) == ["complete"]


@pytest.fixture
def two_engine_profile(temp_profile: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Engines "echo" and "echo2", both served by one fake server that reads the truth
    back (first word of each item dropped): one run, two engines."""
    with FakeOpenAIServer() as server:
        yaml = served_ocr_yaml(server.base_url, model_id="echo", concurrency=1) + (
            "  echo2:\n"
            "    display_name: Second served fake OCR\n"
            "    backend: openai\n"
            "    task: ocr\n"
            "    endpoint: fake_ocr\n"
            "    served_name: fake-vlm\n"
        )
        profile = write_test_profile(temp_profile.parent, yaml, name="two_engines.yaml")
        items = builtin_dataset(builtin_root(load_config(profile).config)).items[:2]
        answers = [(item.text or "").split(maxsplit=1)[-1] for item in items * 2]
        server.script(*(Reply(chunks=(answer,)) for answer in answers))
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        yield profile


def test_one_run_shows_every_number_per_engine_rescores_and_compares_its_engines(
    two_engine_profile: Path,
) -> None:
    at = _bench_page()
    engines = next(m for m in at.multiselect if m.label == "Engines and models")
    engines.set_value(["echo", "echo2"])
    next(n for n in at.number_input if n.label.startswith("Limit")).set_value(2)
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception, [e.value for e in at.exception]

    numbers = next(d.value for d in at.dataframe if "quantity" in d.value.columns)
    assert list(numbers.columns) == ["quantity", "better", "echo", "echo2"]
    by_quantity = numbers.set_index("quantity")
    for quantity in ("cer", "word_f1", "latency mean (s)", "latency p50 (s)", "latency p95 (s)"):
        assert by_quantity.loc[quantity, "echo"], quantity
    assert re.fullmatch(r"[\d.]+ \[[\d.]+, [\d.]+\] \(n=2\)", by_quantity.loc["cer", "echo"])
    assert re.fullmatch(r"[\d.]+ (MiB|GiB)", by_quantity.loc["peak RSS", "echo"])
    assert "pages / minute" in by_quantity.index and "output tokens / s" in by_quantity.index
    assert not numbers.astype(str).apply(lambda c: c.str.contains(r"e\+")).any().any()

    manifest = next(d.value for d in at.dataframe if list(d.value.columns) == ["what", "value"])
    facts = dict(zip(manifest["what"], manifest["value"], strict=True))
    assert facts["profile SHA-256"] == load_config(two_engine_profile).sha256
    assert len(facts["dataset hash"]) >= 16 and facts["CPU cores"].isdigit()
    assert any(key.startswith("version of ") for key in facts)

    next(b for b in at.button if b.label == "🔁 Re-score").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Re-scored 4 records: 0 changed" in shown(s.value) for s in at.success)

    runs = at.dataframe[0].value
    assert runs["line_cer"].notna().all()  # the order-robust CER next to CER
    captions = " ".join(shown(c.value) for c in at.caption)
    assert "line_cer: CER with lines paired regardless of their order" in captions
    run_id = runs["run"].iloc[0]
    next(m for m in at.multiselect if m.label.startswith("Runs")).set_value([run_id]).run()
    compared = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert "line_cer" in set(compared["metric"])
    assert any(c.endswith("· echo2") and c.startswith("Δ") for c in compared.columns)
    memory = compared.set_index("metric").loc["peak RSS"]
    assert all(re.search(r"(MiB|GiB)", cell) for cell in memory.iloc[1:])
