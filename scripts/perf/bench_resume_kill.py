"""Kill `cli.py bench run` at random points, resume it, and check nothing is lost or doubled.

    python scripts/perf/bench_resume_kill.py [--kills 20] [--items 300] [--engine killfake|rapidocr]

In a temp data folder (a profile that ``extends`` the repository's config.yaml,
made active with $CHATVLM_CONFIG) and on a generated pairs set, it:

1. runs the benchmark once without interruption (the reference);
2. starts the same benchmark under a fixed run id as a subprocess, SIGKILLs it
   at a random moment, and starts it again with the same --run-id — ``--kills``
   times — then lets it finish;
3. checks every (engine, item) is recorded exactly once in items.jsonl, with no
   unreadable line, and that the summary equals the reference's (latency too
   with the fake engine, which reports a fixed time; memory is per process).

The default engine, ``killfake``, is registered by this module when the CLI
imports it through $CHATVLM_BENCH_ENGINES: it sleeps $CHATVLM_KILLFAKE_DELAY
seconds per item (default 0.03) and returns a slightly wrong copy of the truth.
``--engine rapidocr`` uses the real built-in engine on rendered lines instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from testkit.profiles import write_test_profile  # noqa: E402
from utils.bench.runner import Prediction, register_bench_engine  # noqa: E402

PLUGIN_MODULE = "scripts.perf.bench_resume_kill"
DELAY_ENV_VAR = "CHATVLM_KILLFAKE_DELAY"
RUN_ID = "20250101T000000Z-0c0ffe"
REFERENCE_RUN_ID = "20250101T000000Z-0000a0"
WORDS = ["TOTAL", "CASH", "CHANGE", "COFFEE", "BREAD", "TEA", "RICE", "12.50", "RM", "4.00"]


class KillFakeEngine:
    """Sleeps, then answers the truth with the last character of every line wrong."""

    name = "killfake"
    backend = "fake"
    concurrency = 1

    def __init__(self) -> None:
        self.delay = float(os.environ.get(DELAY_ENV_VAR, "0.03"))

    def run(self, item) -> Prediction:
        time.sleep(self.delay)
        lines = (item.text or "").splitlines()
        text = "\n".join(line[:-1] + "#" for line in lines if line)
        fields = {k: v for k, v in (item.fields or {}).items() if k != "date"}
        return Prediction(text=text, fields=fields, seconds=self.delay)


register_bench_engine("killfake", lambda config: KillFakeEngine())


# --------------------------------------------------------------------------- set-up


def write_dataset(folder: Path, items: int, rendered: bool) -> None:
    """Pairs layout: small images (drawn text for a real engine) + .txt + .json."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(11)
    folder.mkdir()
    font = ImageFont.load_default(size=22)
    for index in range(items):
        lines = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(3)]
        image = Image.new("RGB", (420, 130) if rendered else (8, 8), "white")
        if rendered:
            draw = ImageDraw.Draw(image)
            for row, line in enumerate(lines):
                draw.text((12, 10 + row * 38), line, fill="black", font=font)
        stem = folder / f"doc{index:04d}"
        image.save(stem.with_suffix(".png"))
        stem.with_suffix(".txt").write_text("\n".join(lines), encoding="utf-8")
        fields = {"total": f"{rng.randint(1, 99)}.50", "date": "01/02/2019"}
        stem.with_suffix(".json").write_text(json.dumps(fields), encoding="utf-8")


def bench_command(dataset: Path, engine: str, run_id: str) -> list[str]:
    return [
        sys.executable,
        "cli.py",
        "bench",
        "run",
        "--dataset",
        str(dataset),
        "--engine",
        engine,
        "--template",
        "receipt",
        "--run-id",
        run_id,
        "--json",
    ]


def cli_env(profile: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CHATVLM_CONFIG": str(profile),
        "CHATVLM_BENCH_ENGINES": PLUGIN_MODULE,
        "HF_HUB_OFFLINE": "1",
        "OMP_THREAD_LIMIT": "1",
    }


# --------------------------------------------------------------------------- kill loop


def run_to_end(command: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def items_file(tmp: Path, run_id: str) -> Path:
    return tmp / "results" / "benchmarks" / run_id / "items.jsonl"


def count_lines(path: Path) -> tuple[int, bool]:
    """Complete record lines in the file, and whether it ends in a torn line."""
    if not path.exists():
        return 0, False
    data = path.read_bytes()
    return data.count(b"\n"), bool(data) and not data.endswith(b"\n")


def kill_loop(
    command: list[str], env: dict[str, str], kills: int, window: tuple[float, float], tmp: Path
) -> dict[str, int]:
    rng = random.Random(2024)
    stats = Counter()
    for _ in range(kills):
        before, _ = count_lines(items_file(tmp, RUN_ID))
        proc = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(*window))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            stats["killed mid-run"] += 1
        else:
            stats["finished before the kill"] += 1
        proc.wait()
        after, torn = count_lines(items_file(tmp, RUN_ID))
        stats["torn tails left by a kill"] += torn
        stats["kills that left no new record"] += after == before
    return dict(stats)


def check_records(path: Path) -> dict[str, int]:
    keys: Counter[tuple[str, str]] = Counter()
    bad = 0
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            keys[(record["engine"], record["item_id"])] += 1
        except (ValueError, KeyError):
            bad += 1
    return {
        "records": sum(keys.values()),
        "distinct (engine, item)": len(keys),
        "recorded more than once": sum(1 for n in keys.values() if n > 1),
        "unreadable lines": bad,
    }


def comparable(summary: dict, with_speed: bool) -> list[dict]:
    memory = {"peak_rss_bytes", "peak_vram_bytes"}
    speed = {
        "latency_mean_s",
        "latency_p50_s",
        "latency_p95_s",
        "pages_per_minute",
        "tokens_out",
        "output_tokens_per_s",
    }
    drop = memory if with_speed else memory | speed
    return [{k: v for k, v in e.items() if k not in drop} for e in summary["engines"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--engine", default="killfake", help="killfake (default) or rapidocr")
    parser.add_argument("--delay", type=float, default=0.03, help="killfake seconds per item")
    args = parser.parse_args()
    fake = args.engine == "killfake"
    with tempfile.TemporaryDirectory(prefix="bench-kill-") as name:
        tmp = Path(name)
        dataset = tmp / "set"
        write_dataset(dataset, args.items, rendered=not fake)
        env = {**cli_env(write_test_profile(tmp)), DELAY_ENV_VAR: str(args.delay)}
        started = time.perf_counter()
        reference = run_to_end(bench_command(dataset, args.engine, REFERENCE_RUN_ID), env)
        clean_s = time.perf_counter() - started
        started = time.perf_counter()
        run_to_end(bench_command(dataset, args.engine, REFERENCE_RUN_ID), env)  # nothing left
        startup_s = time.perf_counter() - started
        # Kills from the start-up (manifest not yet written) into the work, spread so that
        # together they leave part of the items for the final resume.
        share = 0.6 * max(0.0, clean_s - startup_s) / args.kills
        window = (0.05, startup_s + 2 * share)
        stats = kill_loop(bench_command(dataset, args.engine, RUN_ID), env, args.kills, window, tmp)
        lines_before_finish, _ = count_lines(items_file(tmp, RUN_ID))
        final = run_to_end(bench_command(dataset, args.engine, RUN_ID), env)
        checks = check_records(items_file(tmp, RUN_ID))
    same = comparable(final["summary"], fake) == comparable(reference["summary"], fake)
    print(
        f"engine {args.engine}, {args.items} items, clean run {clean_s:.1f} s, "
        f"start-up {startup_s:.2f} s, kills {window[0]:.2f}-{window[1]:.2f} s after start"
    )
    for key, value in {**stats, **checks}.items():
        print(f"  {key}: {value}")
    print(f"  recorded before the last resume: {lines_before_finish}/{args.items}")
    print(f"  recorded by the last resume: {final['recorded_now']}")
    print(f"  summary equals the uninterrupted run's: {same}")
    ok = (
        same
        and checks["distinct (engine, item)"] == args.items
        and checks["records"] == args.items
        and checks["unreadable lines"] == 0
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
