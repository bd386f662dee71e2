"""The Benchmarks page under AppTest: a small run on the built-in sample set with a
fake engine registered by the test, then the runs table, comparison and drill-down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT
from models.ocr.base import OcrLine
from utils.bench.datasets import LabelledItem
from utils.bench.runner import Prediction, register_bench_engine, unregister_bench_engine

APP = str(REPO_ROOT / "app.py")


class EchoEngine:
    """Reads the truth back with its last word dropped: known, non-trivial scores."""

    name, backend, concurrency = "echo", "fake", 1

    def run(self, item: LabelledItem) -> Prediction:
        words = (item.text or "").split()
        return Prediction(
            text=" ".join(words[:-1]),
            fields=dict(item.fields or {}),
            seconds=0.01,
            lines=[OcrLine(text="x", box=(10, 10, 60, 30), confidence=1.0)],
        )


@pytest.fixture
def echo_engine() -> Iterator[None]:
    register_bench_engine("echo", lambda config: EchoEngine())
    yield
    unregister_bench_engine("echo")


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


def test_run_compare_and_drill_down(temp_profile: Path, echo_engine: None) -> None:
    at = _bench_page()
    assert any("No runs yet" in i.value for i in at.info)
    _start_run(at, limit=3)
    assert any("complete" in s.value for s in at.success), [s.value for s in at.success]
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
    assert len(at.get("image")) == 1  # the item's page with its boxes
    saved = list((temp_profile.parent / "results" / "benchmarks").glob("*/items.jsonl"))
    assert len(saved) == 2
