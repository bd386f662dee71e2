"""`python cli.py bench ...`: tables, --json, exit codes; in-process with fake engines,
plus one real subprocess run with a profile engine served by the fake OpenAI server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

import cli
import cli_commands.bench
from models.config import REPO_ROOT, AppConfig
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.profiles import write_test_profile
from testkit.render import encode
from testkit.served_engine import served_ocr_yaml
from utils.bench.datasets import LabelledItem
from utils.bench.engines import BenchEngine, Prediction, create_bench_engine
from utils.bench.runner import run_benchmark

TRUTH = {"a": "HELLO WORLD", "b": "GOOD MORNING", "c": "ONE TWO THREE FOUR"}


class HalfRightEngine:
    """Drops the last word of every item's text."""

    name = "halfright"
    backend = "fake"
    concurrency = 1

    def run(self, item: LabelledItem) -> Prediction:
        words = (item.text or "").split()
        return Prediction(text=" ".join(words[:-1]), fields={"total": "1.00"}, seconds=0.5)


class PerfectEngine(HalfRightEngine):
    name = "perfect"

    def run(self, item: LabelledItem) -> Prediction:
        return Prediction(text=item.text or "", fields=dict(item.fields or {}), seconds=0.25)


@pytest.fixture(scope="module")
def pairs_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-set")
    for item_id, text in TRUTH.items():
        (folder / f"{item_id}.png").write_bytes(encode(Image.new("RGB", (16, 16), "white")))
        (folder / f"{item_id}.txt").write_text(text, encoding="utf-8")
        (folder / f"{item_id}.json").write_text(json.dumps({"total": "1.00"}), encoding="utf-8")
    return folder


FAKE_ENGINES = {"halfright": HalfRightEngine, "perfect": PerfectEngine}


def fake_or_catalog_engine(name: str, config: AppConfig) -> BenchEngine:
    fake = FAKE_ENGINES.get(name)
    return fake() if fake is not None else create_bench_engine(name, config)


@pytest.fixture(autouse=True)
def fake_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's runs in this process get the fake engines (any other name: the catalog)."""
    with_fakes = partial(run_benchmark, engine_factory=fake_or_catalog_engine)
    monkeypatch.setattr(cli_commands.bench, "run_benchmark", with_fakes)


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["bench", *args])
    out, err = capsys.readouterr()
    return code, out, err


def start_run(capsys, pairs_set: Path, engine: str, *extra: str) -> dict:
    code, out, _ = bench(
        capsys, "run", "--dataset", str(pairs_set), "--engine", engine, "--json", *extra
    )
    assert code == 0
    return json.loads(out)


def test_run_json_then_resume_with_run_id(
    temp_profile: Path, pairs_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = start_run(capsys, pairs_set, "halfright,perfect", "--template", "receipt")
    assert result["status"] == "complete" and result["recorded_now"] == 6
    engines = {e["engine"]: e for e in result["summary"]["engines"]}
    assert engines["perfect"]["metrics"]["cer"]["value"] == 0.0
    assert engines["halfright"]["metrics"]["word_f1"]["value"] == pytest.approx(
        (2 / 3 + 2 / 3 + 6 / 7) / 3
    )
    code, out, err = bench(capsys, "run", "--run-id", result["run_id"], "--json")
    assert code == 0 and json.loads(out)["recorded_now"] == 0
    assert "[6/6]" in err  # the progress line


def test_run_prints_a_table(
    temp_profile: Path, pairs_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = bench(capsys, "run", "--dataset", str(pairs_set), "--engine", "perfect")
    assert code == 0
    assert "complete" in out and "perfect" in out and "CER" in out and "P50 S" in out
    assert "3/3 items (complete)" in out


def test_list_show_compare_rescore_rename_delete(
    temp_profile: Path, pairs_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = start_run(capsys, pairs_set, "halfright")["run_id"]
    second = start_run(capsys, pairs_set, "perfect")["run_id"]

    code, out, _ = bench(capsys, "list", "--json")
    listed = json.loads(out)
    assert code == 0 and {r["run_id"] for r in listed} == {first, second}
    assert all(r["status"] == "complete" and r["items_total"] == 3 for r in listed)
    code, out, _ = bench(capsys, "list")
    assert code == 0 and first in out and "3/3" in out

    code, out, _ = bench(capsys, "show", first)
    assert code == 0 and "halfright" in out and "status    complete" in out
    code, out, _ = bench(capsys, "show", first, "--json")
    shown = json.loads(out)
    assert "items" not in shown and shown["summary"]["items_recorded"] == 3
    code, out, _ = bench(capsys, "show", first, "--json", "--items")
    assert [i["item_id"] for i in json.loads(out)["items"]] == ["a", "b", "c"]

    code, out, _ = bench(capsys, "compare", first, second, "--json")
    rows = {row["key"]: row for row in json.loads(out)["rows"]}
    assert code == 0 and rows["cer"]["cells"][1]["better"] is True
    code, out, _ = bench(capsys, "compare", first, second)
    assert code == 0 and "cer" in out and "better" in out

    code, out, _ = bench(capsys, "rescore", first)
    assert code == 0 and "0 changed" in out

    assert bench(capsys, "rename", first, "baseline")[0] == 0
    code, out, _ = bench(capsys, "list", "--json")
    assert {r["run_id"]: r["name"] for r in json.loads(out)}[first] == "baseline"
    assert bench(capsys, "delete", first)[0] == 0
    code, out, _ = bench(capsys, "list", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [second]


def test_sample_writes_the_builtin_set(
    temp_profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = bench(capsys, "sample", str(tmp_path / "sample"))
    assert code == 0 and "wrote" in out
    pngs = list((tmp_path / "sample").glob("*.png"))
    assert pngs and all(p.with_suffix(".txt").is_file() for p in pngs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "../../etc"], "not a benchmark run id"),
        (["show", "20250101T000000Z-123456"], "no benchmark run"),
        (["compare", "20250101T000000Z-123456", "x/.."], "not a benchmark run id"),
        (["delete", "20250101T000000Z-123456"], "no benchmark run"),
        (["run", "--engine", "nope"], "not an OCR engine"),
        (["run", "--dataset", "/nonexistent/set", "--engine", "perfect"], "does not exist"),
        (["rename", "20250101T000000Z-123456", "x"], "no benchmark run"),
    ],
)
def test_failures_exit_1_with_a_message(
    temp_profile: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = bench(capsys, *args)
    assert code == 1 and message in err and out == ""


def test_run_without_an_engine_says_so(
    temp_profile: Path, pairs_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = bench(capsys, "run", "--dataset", str(pairs_set))
    assert code == 1 and "no engine chosen" in err


def test_list_when_empty(temp_profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench(capsys, "list")[1].startswith("no benchmark runs yet")
    assert json.loads(bench(capsys, "list", "--json")[1]) == []


def test_subprocess_run_with_a_served_engine(temp_profile: Path, pairs_set: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CHATVLM_CONFIG": str(temp_profile),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "cli.py", "bench", "run", "--dataset", str(pairs_set)]
    with FakeOpenAIServer() as server:
        served = write_test_profile(
            temp_profile.parent, served_ocr_yaml(server.base_url), name="served.yaml"
        )
        proc = subprocess.run(
            [*command, "--engine", "served_ocr", "--json"],
            cwd=REPO_ROOT,
            env={**env, "CHATVLM_CONFIG": str(served)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["items_recorded"] == 3
    assert len(server.chat_requests) == 3
    proc = subprocess.run(
        [*command, "--engine", "served_ocr"],  # not an engine of the plain profile
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and "not an OCR engine" in proc.stderr


def test_rescore_drops_a_record_with_infinity_and_writes_the_summary(
    temp_profile: Path, pairs_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI reads any folder its user names: pairs_set is outside the dataset roots.
    run_id = start_run(capsys, pairs_set, "halfright")["run_id"]
    run_folder = temp_profile.parent / "results" / "benchmarks" / run_id
    items = run_folder / "items.jsonl"
    first, *rest = items.read_text(encoding="utf-8").splitlines()
    record = json.loads(first)
    record["seconds"] = "INF"
    line = json.dumps(record).replace('"INF"', "Infinity")
    items.write_text("\n".join([line, *rest]) + "\n", encoding="utf-8")

    code, out, _ = bench(capsys, "rescore", run_id)

    assert code == 0 and "2 records rescored" in out and "1 unreadable line(s) dropped" in out
    summary = json.loads((run_folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["items_recorded"] == 2
    assert "Infinity" not in items.read_text(encoding="utf-8")
