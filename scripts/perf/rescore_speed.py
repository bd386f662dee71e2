"""How fast a stored benchmark run is rescored (metrics recomputed from saved predictions).

    python scripts/perf/rescore_speed.py [--items 100000] [--error-rate 0.03] [--seed 11]

Writes, in a temp data folder, one run of ``--items`` receipt-like records
(manifest + items.jsonl): ground truths of a few hundred characters over a dozen
lines, predictions with about ``--error-rate`` of their characters substituted,
dropped or doubled, and the receipt fields. The stored metrics are left empty,
as after a metric change, so the rescore recomputes and rewrites every record.

Prints items/s and total seconds for:

- ``rescore`` — read items.jsonl, recompute, rewrite items and summary (end to end);
- ``rescored`` over the records in memory plus ``build_summary`` — the CPU-bound part.
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
from utils.bench.records import ItemRecord  # noqa: E402
from utils.bench.runs import rescore  # noqa: E402
from utils.bench.scoring import build_summary, rescored  # noqa: E402
from utils.storage import utc_now_iso  # noqa: E402

RUN_ID = "20250101T000000Z-0a0b0c"
SHOPS = ["SUNRISE BAKERY SDN BHD", "KEDAI RUNCIT AH SENG", "MAJU MART ENTERPRISE"]
STREETS = ["NO 12, JALAN SS 15/4,", "LOT 8, JALAN BUNGA RAYA,", "NO 45, JALAN IPOH,"]
TOWNS = ["47500 SUBANG JAYA, SELANGOR.", "75100 MELAKA.", "51200 KUALA LUMPUR."]
GOODS = [
    "BUTTER CROISSANT",
    "CHICKEN PIE",
    "ICED COFFEE",
    "TEH TARIK",
    "NASI LEMAK AYAM",
    "SUGAR 1KG",
    "SARDINE CAN",
    "GARDENIA BREAD",
    "COOKING OIL 2KG",
]
CONFUSABLE = "0O1IL5S8B2Z "
"""Characters OCR typically swaps in; a space splits a word (WER sees it too)."""


def receipt(rng: random.Random) -> tuple[str, dict[str, str]]:
    """A receipt's text (about 250-400 characters) and its ground-truth fields."""
    shop, street, town = rng.choice(SHOPS), rng.choice(STREETS), rng.choice(TOWNS)
    date = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2024"
    lines = [shop, street, town, f"TEL: 03-{rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"]
    lines += [f"RECEIPT NO: CS{rng.randint(0, 10**8):08d}", f"DATE: {date} TIME: 09:41"]
    total = 0.0
    for _ in range(rng.randint(3, 6)):
        amount = rng.randint(100, 5000) / 100
        total += amount
        lines.append(f"{rng.randint(1, 3)} {rng.choice(GOODS)} {amount:.2f}")
    lines += [f"TOTAL {total:.2f}", f"CASH {total + 10:.2f}", "CHANGE 10.00", "THANK YOU"]
    fields = {"company": shop, "date": date, "address": f"{street} {town}", "total": f"{total:.2f}"}
    return "\n".join(lines), fields


def misread(text: str, error_rate: float, rng: random.Random) -> str:
    """``text`` with about ``error_rate`` of its characters substituted, dropped or doubled."""
    chars = list(text)
    for position in rng.sample(range(len(chars)), k=round(len(chars) * error_rate)):
        edit = rng.random()
        if edit < 0.6:
            chars[position] = rng.choice(CONFUSABLE)
        elif edit < 0.8:
            chars[position] = ""
        else:
            chars[position] *= 2
    return "".join(chars)


def fake_records(items: int, error_rate: float, rng: random.Random) -> list[ItemRecord]:
    records = []
    for index in range(items):
        truth, fields = receipt(rng)
        predicted = {
            name: misread(value, error_rate, rng) if rng.random() < 0.2 else value
            for name, value in fields.items()
        }
        records.append(
            ItemRecord(
                run_id=RUN_ID,
                engine="fake",
                item_id=f"item{index:06d}",
                status="ok",
                template="receipt",
                prediction=misread(truth, error_rate, rng),
                predicted_fields=predicted,
                truth_text=truth,
                truth_fields=fields,
                seconds=rng.uniform(0.1, 2.0),
                pages=1,
                finished_at=utc_now_iso(),
            )
        )
    return records


def report(label: str, items: int, seconds: float) -> None:
    print(f"{label:<36} {items / seconds:>10,.0f} items/s   {seconds:8.2f} s total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--error-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    manifest = synthetic_manifest(RUN_ID, args.items, ["fake"], "rescore speed")
    started = time.perf_counter()
    records = fake_records(args.items, args.error_rate, rng)
    mean_chars = sum(len(r.truth_text or "") for r in records) / len(records)
    with tempfile.TemporaryDirectory(prefix="rescore-speed-") as tmp:
        data_dir = Path(tmp)
        write_run(data_dir, manifest, records)
        print(
            f"wrote {args.items:,} records (truth {mean_chars:.0f} chars on average) "
            f"in {time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        in_memory = [rescored(record) for record in records]
        summary = build_summary(manifest, in_memory)
        report("rescored + build_summary (memory):", args.items, time.perf_counter() - started)

        started = time.perf_counter()
        outcome = rescore(data_dir, RUN_ID)
        report("rescore (read, score, rewrite):", outcome.records, time.perf_counter() - started)

    metrics = summary.engines[0].metrics
    print("means: " + ", ".join(f"{name} {m.value:.4f}" for name, m in sorted(metrics.items())))


if __name__ == "__main__":
    main()
