"""Server metrics: parsing vLLM's page, rates and percentiles, the history files, the
poller against a fake vLLM on 127.0.0.1, and one poller per data folder (#13)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models.config import load_config
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.fake_vllm_metrics import FakeVllmMetrics
from testkit.profiles import write_test_profile
from utils.monitor.history import MetricsHistory
from utils.monitor.points import RawSample, SampleWindow, ServerPoint
from utils.monitor.poller import MonitorThread, ServerPoller
from utils.monitor.rates import counter_rate, histogram_increase, quantile
from utils.monitor.scrape import metrics_url
from utils.monitor.vllm import Histogram, VllmMetrics, parse_vllm_metrics


def served(requests: list[tuple[int, int, float, float]], **gauges) -> FakeVllmMetrics:
    metrics = FakeVllmMetrics()
    for key, value in gauges.items():
        setattr(metrics, key, value)
    for request in requests:
        metrics.observe_request(*request)
    return metrics


def test_vllm_page_is_read_with_real_names_and_buckets() -> None:
    page = served([(100, 20, 0.05, 1.2), (300, 40, 0.3, 2.2)], running=3, waiting=1, kv_cache=0.42)
    metrics = parse_vllm_metrics(page.render())
    assert (metrics.running, metrics.waiting, metrics.kv_cache) == (3, 1, 0.42)
    assert (metrics.prompt_tokens, metrics.generation_tokens) == (400, 60)
    assert metrics.ttft.total == 2 and metrics.ttft.sum == pytest.approx(0.35)
    assert metrics.e2e.bounds[:3] == [0.3, 0.5, 0.8] and metrics.e2e.counts[-1] == 2


def test_the_v0_kv_cache_name_and_missing_families() -> None:
    page = '# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name="m"} 0.5\n'
    metrics = parse_vllm_metrics(page)
    assert metrics.kv_cache == 0.5
    assert metrics.running is None and metrics.ttft is None and metrics.prompt_tokens is None


def test_several_models_on_one_server_are_summed() -> None:
    page = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="a"} 2\n'
        'vllm:num_requests_running{model_name="b"} 5\n'
    )
    assert parse_vllm_metrics(page).running == 7


def test_a_broken_page_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_vllm_metrics("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{ 1\n")


def test_counter_rates_never_go_negative_across_a_restart() -> None:
    assert counter_rate(150, 100, 5) == 10
    assert counter_rate(30, 1000, 5) == 6  # restarted: 30 counted since
    assert counter_rate(None, 100, 5) is None and counter_rate(1, 0, 0) is None


def test_quantiles_interpolate_like_prometheus() -> None:
    # 10 requests: 4 under 1 s, 4 more under 2 s, 2 under 4 s.
    histogram = Histogram(bounds=[1.0, 2.0, 4.0], counts=[4, 8, 10], total=10)
    assert quantile(histogram, 0.5) == pytest.approx(1.25)  # rank 5: a quarter into (1, 2]
    assert quantile(histogram, 0.95) == pytest.approx(3.5)
    beyond = Histogram(bounds=[1.0], counts=[1], total=10)
    assert quantile(beyond, 0.95) == 1.0  # past the last finite bound: that bound
    assert quantile(Histogram(bounds=[1.0], counts=[0], total=0), 0.5) is None


def test_histogram_increase_after_a_restart_is_what_came_since() -> None:
    old = Histogram(bounds=[1.0, 2.0], counts=[5, 9], total=9)
    new = Histogram(bounds=[1.0, 2.0], counts=[1, 2], total=2)
    assert histogram_increase(new, old) == new
    grown = Histogram(bounds=[1.0, 2.0], counts=[6, 12], total=12, sum=3.0)
    assert histogram_increase(grown, old).counts == [1, 3]


def test_a_window_point_has_rates_and_window_percentiles() -> None:
    window = SampleWindow(seconds=300)
    page = FakeVllmMetrics()
    window.add(RawSample(1000.0, parse_vllm_metrics(page.render())))
    for _ in range(20):
        page.observe_request(100, 10, 0.05, 0.9)
    page.running = 4
    window.add(RawSample(1005.0, parse_vllm_metrics(page.render())))
    point = window.point("vllm")
    assert point.running == 4
    assert point.prompt_tps == 400 and point.generation_tps == 40
    assert 0.04 <= point.ttft_p50 <= 0.06 and 0.8 <= point.e2e_p95 <= 1.0
    page.restart()  # the server restarted: counters start again from zero
    page.observe_request(50, 5, 0.05, 0.9)
    window.add(RawSample(1010.0, parse_vllm_metrics(page.render())))
    after = window.point("vllm")
    assert after.prompt_tps == 10 and after.generation_tps == 1


def test_history_rotates_and_keeps_one_older_file(tmp_path: Path) -> None:
    history = MetricsHistory(tmp_path, max_bytes=2_000)
    for second in range(100):
        history.append(ServerPoint(at=float(second), endpoint="vllm", up=True, running=1.0))
    files = sorted(p.name for p in (tmp_path / "monitor").glob("*.jsonl"))
    assert files == ["vllm.1.jsonl", "vllm.jsonl"]
    kept = history.read("vllm")
    assert kept[-1].at == 99 and len(kept) < 100  # bounded, newest kept, in order
    assert [p.at for p in kept] == sorted(p.at for p in kept)
    assert [p.at for p in history.read("vllm", since=95)] == [95, 96, 97, 98, 99]
    with pytest.raises(ValueError):
        history.path("../etc")


def test_metrics_url_is_beside_the_api() -> None:
    assert metrics_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/metrics"
    assert metrics_url("http://gpu-box:8000/v1/") == "http://gpu-box:8000/metrics"
    assert metrics_url("http://proxy/vllm/v1") == "http://proxy/vllm/metrics"


def profile_with(tmp_path: Path, servers: dict[str, str], interval_s: float = 5.0):
    endpoints = "".join(f"  {key}:\n    base_url: {url}\n" for key, url in servers.items())
    extra = f"monitor:\n  interval_s: {interval_s}\n  timeout_s: 1\nendpoints:\n{endpoints}"
    return load_config(write_test_profile(tmp_path, extra, monitor=True)).config


def test_poller_reads_a_fake_vllm_and_says_which_servers_have_no_metrics(tmp_path: Path) -> None:
    page = served([], running=2, kv_cache=0.3)
    with (
        FakeOpenAIServer(metrics=page) as vllm,
        FakeOpenAIServer() as ollama,
    ):
        closed = FakeOpenAIServer()
        with closed:
            gone = closed.base_url  # nothing listens there once it is closed
        config = profile_with(
            tmp_path, {"vllm": vllm.base_url, "ollama": ollama.base_url, "gone": gone}
        )
        poller = ServerPoller(config)
        points = {p.endpoint: p for p in poller.poll_once()}
    assert points["vllm"].up and points["vllm"].running == 2 and points["vllm"].kv_cache == 0.3
    assert points["ollama"].up and not points["ollama"].exposes_metrics
    assert not points["gone"].up and "unreachable" in points["gone"].error
    assert [p.running for p in poller.history.read("vllm")] == [2]


def test_one_poller_per_data_folder_and_a_successor_takes_over(tmp_path: Path) -> None:
    with FakeOpenAIServer(metrics=served([])) as vllm:
        config = profile_with(tmp_path, {"vllm": vllm.base_url}, interval_s=1)
        first = MonitorThread(config).start()
        second = MonitorThread(config).start()
        time.sleep(3.5)
        assert first.leading != second.leading
        leader, follower = (first, second) if first.leading else (second, first)
        polls = len(leader.poller.history.read("vllm"))
        assert 3 <= polls <= 5  # one poller: one point per second, not two
        leader.close()
        time.sleep(2.5)
        assert follower.leading
        follower.close()
        assert len(follower.poller.history.read("vllm")) > polls


def test_the_monitor_follows_servers_connected_while_it_runs(tmp_path: Path) -> None:
    with (
        FakeOpenAIServer(metrics=served([], running=1)) as first,
        FakeOpenAIServer(metrics=served([], running=3)) as added,
    ):
        config = profile_with(tmp_path, {"first": first.base_url})
        hooked: list[list[str]] = []

        def hook_for(profile):
            servers = sorted(profile.endpoints)
            return lambda points: hooked.append(servers)

        monitor = MonitorThread(config, hook_for=hook_for)
        assert monitor.lead()
        assert "first" in {p.endpoint for p in monitor.poll()}  # with config.yaml's own
        kept = monitor.poller.windows["first"]
        monitor.follow(profile_with(tmp_path, {"first": first.base_url}))  # same servers
        assert monitor.poller.windows["first"] is kept and len(hooked) == 1

        monitor.follow(profile_with(tmp_path, {"first": first.base_url, "added": added.base_url}))
        points = {p.endpoint: p for p in monitor.poll()}
        monitor.release()
    assert points["added"].up and points["added"].running == 3
    assert monitor.poller.windows["first"] is kept  # its rates go on from the earlier sample
    assert len(hooked) == 2 and "added" in hooked[1] and "added" not in hooked[0]  # new rules
    assert [p.running for p in monitor.poller.history.read("added")] == [3]


def test_empty_window_point_from_one_sample_has_gauges_only() -> None:
    window = SampleWindow(seconds=60)
    window.add(RawSample(5.0, VllmMetrics(running=1.0, prompt_tokens=10.0)))
    point = window.point("x")
    assert point.running == 1 and point.prompt_tps is None and point.ttft_p95 is None
