"""How the benchmark page's data calls scale with many stored runs.

    python scripts/perf/bench_page_scale.py [--runs 1000] [--items 100] [--big 1000]

Creates, in a temp data folder, ``--runs`` runs holding ``--items`` records each
(100,000 records by default) plus one run of ``--big`` items, then times:

- ``list_bench_runs`` — what the page calls to open (target: under 2 s);
- ``open_run`` on the big run — opening one run (target: under 1 s);
- ``compare_runs`` on two runs.

Each timing is the best of a few tries after one warm-up (file cache warm, as on
a server that has shown the page before); the first, cold call is printed too.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from testkit.synthetic_runs import synthetic_manifest, write_run  # noqa: E402
from utils.bench import store  # noqa: E402
from utils.bench.compare import compare_runs  # noqa: E402
from utils.bench.environment import package_versions  # noqa: E402
from utils.bench.records import (  # noqa: E402
    ItemRecord,
)
from utils.bench.runs import open_run  # noqa: E402
from utils.bench.scoring import build_summary, score_prediction  # noqa: E402
from utils.storage import utc_now_iso  # noqa: E402

WORDS = [
    "TOTAL",
    "CASH",
    "CHANGE",
    "COFFEE",
    "BREAD",
    "SDN",
    "BHD",
    "JALAN",
    "DATE",
    "12.50",
    "4.00",
    "RM",
    "TAX",
]


def fake_records(run_id: str, engine: str, items: int, rng: random.Random) -> list[ItemRecord]:
    records = []
    for index in range(items):
        truth = " ".join(rng.choice(WORDS) for _ in range(30))
        prediction = " ".join(w if rng.random() > 0.1 else "X" for w in truth.split())
        fields_truth = {"total": "12.50", "date": "01/02/2019"}
        fields_predicted = {"total": "12.50", "date": rng.choice(["01/02/2019", None])}
        metrics, correct = score_prediction(prediction, fields_predicted, truth, fields_truth, True)
        records.append(
            ItemRecord(
                run_id=run_id,
                engine=engine,
                item_id=f"item{index:05d}",
                status="ok",
                template="receipt",
                prediction=prediction,
                predicted_fields=fields_predicted,
                truth_text=truth,
                truth_fields=fields_truth,
                metrics=metrics,
                fields_correct=correct,
                seconds=rng.uniform(0.1, 2.0),
                pages=1,
                peak_rss_bytes=500_000_000,
                finished_at=utc_now_iso(),
            )
        )
    return records


def make_run(data_dir: Path, index: int, items: int, rng: random.Random) -> str:
    run_id = f"2025{index // 100 + 1:02d}{index % 28 + 1:02d}T000000Z-{index:06x}"
    manifest = synthetic_manifest(
        run_id, items, ["fake"], f"scale test {run_id}", versions=package_versions()
    )
    records = fake_records(run_id, "fake", items, rng)
    write_run(data_dir, manifest, records)
    store.write_summary(data_dir, build_summary(manifest, records))
    return run_id


def timed(function, tries: int = 3) -> tuple[float, float]:
    """(first call seconds, best of the next ``tries``)."""
    started = time.perf_counter()
    function()
    first = time.perf_counter() - started
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return first, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--big", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        run_ids = [make_run(data_dir, i, args.items, rng) for i in range(args.runs - 1)]
        big = make_run(data_dir, args.runs - 1, args.big, rng)
        total_items = (args.runs - 1) * args.items + args.big
        print(
            f"created {args.runs} runs, {total_items} item records "
            f"in {time.perf_counter() - started:.1f} s"
        )
        cold, best = timed(lambda: store.list_bench_runs(data_dir))
        count = len(store.list_bench_runs(data_dir))
        print(f"list_bench_runs ({count} runs): first {cold:.3f} s, best {best:.3f} s  (< 2 s)")
        cold, best = timed(lambda: open_run(data_dir, big))
        print(f"open_run ({args.big} items):    first {cold:.3f} s, best {best:.3f} s  (< 1 s)")
        cold, best = timed(lambda: compare_runs(data_dir, [big, run_ids[0]]))
        print(f"compare_runs (2 runs):         first {cold:.3f} s, best {best:.3f} s")


if __name__ == "__main__":
    main()
