"""What the app's server monitor costs: CPU of polling N vLLM servers every few seconds.

    python scripts/perf/monitor_polling.py [--servers 10] [--interval 5] [--polls 12] [--runs 2000]

Starts ``--servers`` fake vLLM servers (real metric names and buckets, a page of a real
page's size, counters moving as if under load) in a separate process, so their CPU is
not counted. Then polls them the way the app's background poller does (fetch
``/metrics``, parse with prometheus_client, rates and percentiles, append to the
history files, apply alert rules) every ``--interval`` seconds, ``--polls`` times, and
prints the poller's CPU seconds per poll and as a share of one core (goal: < 2 %).
``--runs`` finished benchmark runs are kept in the data folder, watched by the two
benchmark rules, as a team that keeps every run has them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from models.config import load_config  # noqa: E402
from testkit.profiles import write_test_profile  # noqa: E402
from testkit.synthetic_runs import synthetic_manifest, write_run  # noqa: E402
from utils.bench.store import write_state  # noqa: E402
from utils.monitor.alerts import AlertEngine  # noqa: E402
from utils.monitor.poller import ServerPoller  # noqa: E402

GOAL_PCT = 2.0
SERVERS_SCRIPT = """
import json, random, sys, threading, time
sys.path.insert(0, {repo!r})
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.fake_vllm_metrics import FakeVllmMetrics
pages = [FakeVllmMetrics(model_name=f"model-{{i}}") for i in range({n})]
servers = [FakeOpenAIServer(metrics=page).__enter__() for page in pages]
print(json.dumps([s.base_url for s in servers]), flush=True)
while True:  # traffic: every page's counters and histograms keep moving
    for page in pages:
        page.running, page.waiting = random.randint(0, 8), random.randint(0, 4)
        page.kv_cache = random.random()
        page.observe_request(random.randint(50, 2000), random.randint(10, 500),
                             random.uniform(0.02, 0.5), random.uniform(0.5, 8.0))
    time.sleep(0.2)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--polls", type=int, default=12)
    parser.add_argument("--runs", type=int, default=2000, help="stored benchmark runs")
    args = parser.parse_args()
    script = SERVERS_SCRIPT.format(repo=str(REPO_ROOT), n=args.servers)
    servers = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        urls = json.loads(servers.stdout.readline())
        with tempfile.TemporaryDirectory() as folder:
            measure(Path(folder), urls, args)
    finally:
        servers.kill()


def measure(folder: Path, urls: list[str], args: argparse.Namespace) -> None:
    endpoints = "".join(f"  s{i}:\n    base_url: {url}\n" for i, url in enumerate(urls))
    rules = "".join(
        f"    - {{name: {kind}, kind: {kind}, threshold: {limit}}}\n"
        for kind, limit in (("latency_p95", 5), ("kv_cache", 0.9), ("waiting", 3))
    )
    rules += "    - {name: down, kind: endpoint_down}\n"
    rules += "    - {name: run-failed, kind: benchmark_failed}\n"
    rules += "    - {name: run-done, kind: benchmark_finished}\n"
    extra = f"endpoints:\n{endpoints}alerts:\n  rules:\n{rules}"
    config = load_config(write_test_profile(folder, extra, monitor=True)).config
    store_runs(config.data_dir, args.runs)
    poller, engine = ServerPoller(config), AlertEngine(config)
    cpu_per_poll, wall_per_poll = [], []
    for _ in range(args.polls):
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        engine.on_points(poller.poll_once())
        cpu_per_poll.append(time.process_time() - started_cpu)
        wall_per_poll.append(time.perf_counter() - started_wall)
        time.sleep(max(0.0, args.interval - wall_per_poll[-1]))
    page_kb = len(open_page(urls[0])) / 1024
    mean_cpu = statistics.mean(cpu_per_poll[1:])  # the first poll imports and warms up
    share = 100 * mean_cpu / args.interval
    print(
        f"{args.servers} servers, /metrics page {page_kb:.0f} KB each, every {args.interval:g} s; "
        f"{args.runs} benchmark runs stored"
    )
    print(
        f"CPU per poll: mean {1000 * mean_cpu:.1f} ms, max {1000 * max(cpu_per_poll[1:]):.1f} ms; "
        f"wall per poll: median {1000 * statistics.median(wall_per_poll):.0f} ms"
    )
    verdict = "PASS" if share < GOAL_PCT else "FAIL"
    print(f"share of one core: {share:.2f} % (goal < {GOAL_PCT:g} %) {verdict}")


def store_runs(data_dir: Path, count: int) -> None:
    for n in range(count):
        run_id = f"20260101T{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}Z-{n:06x}"
        write_run(data_dir, synthetic_manifest(run_id, 2, ["fake"], f"run {n}"), [])
        write_state(data_dir, run_id, "failed" if n % 10 == 0 else "complete", None)


def open_page(base_url: str) -> str:
    import urllib.request

    from utils.monitor.scrape import metrics_url

    with urllib.request.urlopen(metrics_url(base_url), timeout=5) as response:  # noqa: S310
        return response.read().decode()


if __name__ == "__main__":
    main()
