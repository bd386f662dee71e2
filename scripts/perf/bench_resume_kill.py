"""Kill `cli.py bench run` at random points, resume it, and check nothing is lost or doubled.

    python scripts/perf/bench_resume_kill.py [--kills 20] [--items 300] [--engine served|rapidocr]

In a temp data folder (a profile that ``extends`` the repository's config.yaml,
made active with $CHATVLM_CONFIG) and on a generated pairs set, it:

1. runs the benchmark once without interruption (the reference);
2. starts the same benchmark under a fixed run id as a subprocess, SIGKILLs it
   at a random moment, and starts it again with the same --run-id — ``--kills``
   times — then lets it finish;
3. checks every (engine, item) is recorded exactly once in items.jsonl, with no
   unreadable line, and that the summary equals the reference's (speed and memory
   left out: they are measured, per process).

The default engine, ``served``, is a catalog entry of the profile served by the
fake OpenAI server (testkit/fake_openai_server.py) running in this script: it
answers each page after ``--delay`` seconds (default 0.03), with up to
``--concurrency`` items in flight, so kills land mid-request as with a real
server. ``--engine rapidocr`` uses the real built-in engine on rendered lines.
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

from testkit.fake_openai_server import FakeOpenAIServer, Hang  # noqa: E402
from testkit.profiles import write_test_profile  # noqa: E402
from testkit.served_engine import served_ocr_yaml  # noqa: E402

SERVED_ENGINE = "served"
RUN_ID = "20250101T000000Z-0c0ffe"
REFERENCE_RUN_ID = "20250101T000000Z-0000a0"
PROBE_RUN_ID = "20250101T000000Z-0000b0"
WORDS = ["TOTAL", "CASH", "CHANGE", "COFFEE", "BREAD", "TEA", "RICE", "12.50", "RM", "4.00"]


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


def first_record_seconds(command: list[str], env: dict[str, str], items: Path) -> float:
    """Seconds from starting a run until its first record is on disk: the start-up
    (imports, dataset, engine and client set-up) a kill must outlast to hit real work."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while count_lines(items)[0] == 0 and proc.poll() is None:
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    proc.kill()
    proc.wait()
    return seconds


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


MEASURED = {
    "latency_mean_s",
    "latency_p50_s",
    "latency_p95_s",
    "pages_per_minute",
    "tokens_out",
    "output_tokens_per_s",
    "peak_rss_bytes",
    "peak_vram_bytes",
}


def comparable(summary: dict) -> list[dict]:
    """Per-engine results without what is measured (time, memory), which differs per run."""
    return [{k: v for k, v in e.items() if k not in MEASURED} for e in summary["engines"]]


def write_profile(tmp: Path, engine: str, server: FakeOpenAIServer, concurrency: int) -> Path:
    """The test profile; with the served engine, its catalog entry pointing at ``server``."""
    if engine != SERVED_ENGINE:
        return write_test_profile(tmp)
    extra = served_ocr_yaml(server.base_url, model_id=SERVED_ENGINE, concurrency=concurrency)
    return write_test_profile(tmp, extra)


def kill_and_resume(args: argparse.Namespace, tmp: Path, server: FakeOpenAIServer) -> dict:
    """The reference run, the kill loop and the final resume; what to report."""
    dataset = tmp / "set"
    write_dataset(dataset, args.items, rendered=args.engine != SERVED_ENGINE)
    env = cli_env(write_profile(tmp, args.engine, server, args.concurrency))
    started = time.perf_counter()
    reference = run_to_end(bench_command(dataset, args.engine, REFERENCE_RUN_ID), env)
    clean_s = time.perf_counter() - started
    probe = bench_command(dataset, args.engine, PROBE_RUN_ID)
    startup_s = first_record_seconds(probe, env, items_file(tmp, PROBE_RUN_ID))
    # Kills from the start-up (manifest not yet written) into the work, spread so that
    # together they leave part of the items for the final resume.
    share = 0.6 * max(0.0, clean_s - startup_s) / args.kills
    window = (0.05, startup_s + 2 * share)
    stats = kill_loop(bench_command(dataset, args.engine, RUN_ID), env, args.kills, window, tmp)
    lines_before_finish, _ = count_lines(items_file(tmp, RUN_ID))
    final = run_to_end(bench_command(dataset, args.engine, RUN_ID), env)
    return {
        "clean_s": clean_s,
        "startup_s": startup_s,
        "window": window,
        "stats": stats,
        "checks": check_records(items_file(tmp, RUN_ID)),
        "lines_before_finish": lines_before_finish,
        "recorded_now": final["recorded_now"],
        "same": comparable(final["summary"]) == comparable(reference["summary"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--engine", default=SERVED_ENGINE, help="served (default) or rapidocr")
    parser.add_argument("--delay", type=float, default=0.03, help="served: seconds per answer")
    parser.add_argument("--concurrency", type=int, default=4, help="served: items in flight")
    args = parser.parse_args()
    server = FakeOpenAIServer(default=Hang(args.delay))
    with server, tempfile.TemporaryDirectory(prefix="bench-kill-") as name:
        result = kill_and_resume(args, Path(name), server)
    window, checks = result["window"], result["checks"]
    print(
        f"engine {args.engine}, {args.items} items, clean run {result['clean_s']:.1f} s, "
        f"first record after {result['startup_s']:.2f} s, "
        f"kills {window[0]:.2f}-{window[1]:.2f} s after start"
    )
    for key, value in {**result["stats"], **checks}.items():
        print(f"  {key}: {value}")
    print(f"  recorded before the last resume: {result['lines_before_finish']}/{args.items}")
    print(f"  recorded by the last resume: {result['recorded_now']}")
    print(f"  summary equals the uninterrupted run's: {result['same']}")
    ok = (
        result["same"]
        and checks["distinct (engine, item)"] == args.items
        and checks["records"] == args.items
        and checks["unreadable lines"] == 0
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
