"""The benchmark runner's own cost per item, with an engine that costs nothing.

    python scripts/perf/bench_overhead.py [--items 300]

Builds a pairs dataset of tiny images with receipt-sized ground truth (about 30
lines) in a temp folder, hands ``run_benchmark`` an engine that returns a slightly
wrong copy of the truth at once: what remains is
scoring, the durable append of each record (fsync), progress and bookkeeping.
Prints the overhead per item (target: under 5 ms), with the durable append
measured on its own.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from PIL import Image  # noqa: E402

from models.config import load_config  # noqa: E402
from testkit.profiles import write_test_profile  # noqa: E402
from utils.bench import store  # noqa: E402
from utils.bench.datasets import load_dataset  # noqa: E402
from utils.bench.engines import Prediction  # noqa: E402
from utils.bench.plan import BenchRequest  # noqa: E402
from utils.bench.runner import run_benchmark  # noqa: E402
from utils.storage import append_jsonl  # noqa: E402

WORDS = ["TOTAL", "CASH", "CHANGE", "COFFEE", "BREAD", "SDN", "BHD", "JALAN", "12.50", "RM"]


class InstantEngine:
    """Answers at once with the truth, one word in ten replaced."""

    name = "instant"
    backend = "fake"
    concurrency = 1

    def run(self, item) -> Prediction:
        words = (item.text or "").split(" ")
        text = " ".join("X" if i % 10 == 0 else w for i, w in enumerate(words))
        return Prediction(text=text, fields=dict(item.fields or {}), seconds=0.0)


def write_dataset(folder: Path, items: int) -> None:
    rng = random.Random(3)
    folder.mkdir()
    image = Image.new("RGB", (8, 8), "white")
    for index in range(items):
        stem = folder / f"doc{index:04d}"
        image.save(stem.with_suffix(".png"))
        lines = [" ".join(rng.choice(WORDS) for _ in range(4)) for _ in range(30)]
        stem.with_suffix(".txt").write_text("\n".join(lines), encoding="utf-8")
        stem.with_suffix(".json").write_text(json.dumps({"total": "12.50", "date": "01/02/2019"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as name:
        tmp = Path(name)
        write_dataset(tmp / "set", args.items)
        loaded = load_config(write_test_profile(tmp))
        started = time.perf_counter()
        load_dataset(tmp / "set")
        load_s = time.perf_counter() - started
        request = BenchRequest(dataset=str(tmp / "set"), engines=["instant"], template="receipt")
        stamps: list[float] = []
        started = time.perf_counter()
        outcome = run_benchmark(
            loaded,
            request,
            progress=lambda *_: stamps.append(time.perf_counter()),
            engine_factory=lambda name, config: InstantEngine(),
        )
        run_s = time.perf_counter() - started
        assert outcome.summary.items_recorded == args.items
        record = store.read_items(loaded.config.data_dir, outcome.run_id).records[0]
        started = time.perf_counter()
        for _ in range(100):
            append_jsonl(tmp / "append-only.jsonl", record)
        append_ms = (time.perf_counter() - started) * 10
    # stamps[0] is the report before the first item; stamps[i] follows item i's append.
    steady_ms = (stamps[-1] - stamps[1]) / (len(stamps) - 2) * 1000
    amortised_ms = (run_s - load_s) / args.items * 1000
    print(f"items: {args.items}; whole run {run_s:.2f} s, of which dataset load {load_s:.2f} s")
    print(f"runner overhead per item, steady state: {steady_ms:.2f} ms  (target < 5 ms)")
    print(f"  amortised with set-up and summary: {amortised_ms:.2f} ms")
    print(f"  of which the durable append (flock + write + fsync) alone: {append_ms:.2f} ms")


if __name__ == "__main__":
    main()
