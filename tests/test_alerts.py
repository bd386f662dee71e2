"""Alert rules: fire once, resolve once, no flood on flapping; state kept across
processes; benchmark runs reported once; webhooks that fail or hang stall nothing (#13)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from models.config import AppConfig, load_config
from models.monitoring import AlertRule, Webhook
from testkit.profiles import write_test_profile
from testkit.synthetic_runs import synthetic_manifest, write_run
from testkit.webhook_receiver import WebhookReceiver
from utils.bench.store import write_state
from utils.monitor import alerts as alerts_module
from utils.monitor.alert_rules import AlertEvent, RuleState, apply_server_rule
from utils.monitor.alerts import AlertEngine, firing, recent_events
from utils.monitor.points import ServerPoint
from utils.monitor.webhooks import WebhookSender, deliver, payload

LATENCY = AlertRule(name="slow", kind="latency_p95", threshold=2.0, for_checks=3)


def poll(at: float, endpoint: str = "vllm", up: bool = True, **values) -> ServerPoint:
    return ServerPoint(at=at, endpoint=endpoint, up=up, **values)


def run_rule(rule: AlertRule, readings: list) -> list[str]:
    """The events a series of polls gives (``None`` = server down)."""
    state, events = RuleState(), []
    for second, value in enumerate(readings):
        point = poll(second, up=value is not None, e2e_p95=value)
        state, event = apply_server_rule(rule, point, state)
        if event is not None:
            events.append(f"{event.state}@{second}")
    return events


def test_a_rule_fires_once_and_resolves_once() -> None:
    readings = [1.0, 2.5, 2.6, 2.7, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0]
    assert run_rule(LATENCY, readings) == ["fired@3", "resolved@8"]


def test_flapping_around_the_line_does_not_flood() -> None:
    # Above, inside the band (1.8-2.0), above, below... never 3 in a row either way.
    readings = [2.5, 1.9, 2.5, 2.5, 1.0, 2.5, 1.95, 2.1, 1.5, 2.2] * 5
    assert run_rule(LATENCY, readings) == []
    firing_then_flapping = [3.0, 3.0, 3.0] + [1.0, 1.9, 1.0, 2.5] * 10
    assert run_rule(LATENCY, firing_then_flapping) == ["fired@2"]


def test_no_reading_neither_fires_nor_resolves() -> None:
    rule = AlertRule(name="slow", kind="latency_p95", threshold=2.0, for_checks=2)
    state = RuleState(firing=True)
    for second in range(5):  # no requests in the window: p95 unknown
        state, event = apply_server_rule(rule, poll(second, e2e_p95=None), state)
        assert event is None and state.firing


def test_endpoint_down_after_n_failed_checks() -> None:
    rule = AlertRule(name="down", kind="endpoint_down", for_checks=2)
    assert run_rule(rule, [1.0, None, 1.0, None, None, None, 1.0, 1.0]) == ["fired@4", "resolved@7"]


def test_a_rule_needs_its_threshold_and_a_known_endpoint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs `threshold`"):
        AlertRule(name="x", kind="kv_cache")
    profile = write_test_profile(
        tmp_path, "alerts:\n  rules:\n    - {name: d, kind: endpoint_down, endpoint: nope}\n"
    )
    with pytest.raises(Exception, match="names no endpoint 'nope'"):
        load_config(profile)


def config_with(tmp_path: Path, rules: str, hooks: str = "") -> AppConfig:
    extra = f"alerts:\n  rules:\n{rules}" + (f"  webhooks:\n{hooks}" if hooks else "")
    return load_config(write_test_profile(tmp_path, extra)).config


KV_RULE = "    - {name: kv, kind: kv_cache, threshold: 0.9, for_checks: 2}\n"


def test_state_is_shared_by_engines_so_a_second_process_does_not_fire_again(
    tmp_path: Path,
) -> None:
    config = config_with(tmp_path, KV_RULE)
    first, second = AlertEngine(config), AlertEngine(config)  # two app processes
    assert first.on_points([poll(1, kv_cache=0.95)]) == []
    (event,) = second.on_points([poll(2, kv_cache=0.97)])
    assert event.state == "fired" and "95 %" not in event.message and "97 %" in event.message
    assert first.on_points([poll(3, kv_cache=0.99)]) == []  # already firing: no second event
    assert list(firing(config.data_dir)) == ["kv/vllm"]
    first.on_points([poll(4, kv_cache=0.2)])
    (resolved,) = second.on_points([poll(5, kv_cache=0.2)])
    assert resolved.state == "resolved" and firing(config.data_dir) == {}
    assert [e.state for e in recent_events(config.data_dir)] == ["resolved", "fired"]


def test_benchmark_runs_are_reported_once_and_old_ones_never(tmp_path: Path) -> None:
    rules = (
        "    - {name: bench-failed, kind: benchmark_failed}\n"
        "    - {name: bench-done, kind: benchmark_finished}\n"
    )
    config = config_with(tmp_path, rules)
    data_dir = config.data_dir
    synthetic_run(data_dir, "20260101T000000Z-aaaaaa", "failed")  # before the rules applied
    engine = AlertEngine(config)
    assert engine.on_points([]) == []
    synthetic_run(data_dir, "20260102T000000Z-bbbbbb", "failed")
    synthetic_run(data_dir, "20260102T000000Z-cccccc", "complete")
    events = engine.on_points([])
    assert sorted((e.rule, e.run_id) for e in events) == [
        ("bench-done", "20260102T000000Z-cccccc"),
        ("bench-failed", "20260102T000000Z-bbbbbb"),
    ]
    assert engine.on_points([]) == []


BENCH_RULES = (
    "    - {name: bench-failed, kind: benchmark_failed}\n"
    "    - {name: bench-done, kind: benchmark_finished}\n"
)


def test_a_poll_reads_only_the_run_states_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_with(tmp_path, BENCH_RULES)
    for n in range(5):
        synthetic_run(config.data_dir, f"20260101T00000{n}Z-aaaaaa", "complete")
    engine = AlertEngine(config)
    engine.on_points([])
    reads: list[str] = []
    real_read_state = alerts_module.read_state
    monkeypatch.setattr(
        alerts_module, "read_state", lambda d, rid: reads.append(rid) or real_read_state(d, rid)
    )
    assert engine.on_points([]) == [] and reads == []
    resumed = "20260101T000003Z-aaaaaa"
    write_state(config.data_dir, resumed, "running")
    assert engine.on_points([]) == [] and reads == [resumed]
    write_state(config.data_dir, resumed, "failed", "out of memory")
    (event,) = engine.on_points([])
    assert event.run_id == resumed and "out of memory" in event.message


def test_deleted_runs_are_forgotten_and_old_runs_stay_quiet_after_the_state_is_lost(
    tmp_path: Path,
) -> None:
    config = config_with(tmp_path, BENCH_RULES)
    kept, deleted = "20260101T000000Z-aaaaaa", "20260101T000001Z-bbbbbb"
    synthetic_run(config.data_dir, kept, "failed")
    synthetic_run(config.data_dir, deleted, "failed")
    engine = AlertEngine(config)
    engine.on_points([])
    shutil.rmtree(config.data_dir / "benchmarks" / deleted)
    engine.on_points([])
    state_file = config.data_dir / "alerts" / "state.json"
    assert deleted not in state_file.read_text() and kept in state_file.read_text()
    state_file.unlink()  # lost while this engine runs: it reads every run again
    assert engine.on_points([]) == []
    assert AlertEngine(config).on_points([]) == []  # a second process has nothing to report


def synthetic_run(data_dir: Path, run_id: str, status: str) -> None:
    write_run(data_dir, synthetic_manifest(run_id, 2, ["fake"], f"run {run_id[-6:]}"), [])
    write_state(data_dir, run_id, status, "engine crashed" if status == "failed" else None)


def test_webhooks_get_json_and_slack_payloads_with_a_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_TOKEN", "t0ken")
    with WebhookReceiver() as receiver:
        hooks = (
            f"    - {{url: '{receiver.url()}', token_env: ALERT_TOKEN}}\n"
            f"    - {{url: '{receiver.url('/slack')}', format: slack}}\n"
        )
        config = config_with(tmp_path, KV_RULE.replace("2}", "1}"), hooks)
        engine = AlertEngine(config)
        engine.on_points([poll(1, kv_cache=0.95)])
        assert engine.sender.wait_idle(10)
    (json_headers, json_body), (_, slack_body) = receiver.received
    assert json_headers["Authorization"] == "Bearer t0ken"
    assert json_body["rule"] == "kv" and json_body["state"] == "fired"
    assert slack_body == {"text": "🚨 ChatVLMLLM kv: server 'vllm' KV cache 95 % > 90 %"}


def test_a_failing_receiver_is_retried_and_its_url_secret_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = payload_event()
    with WebhookReceiver(mode="error") as receiver, caplog.at_level(logging.WARNING):
        hook = Webhook(url=receiver.url(), retries=2, timeout_s=2)
        assert deliver(event, hook, sleep=lambda s: None) is False
    assert len(receiver.received) == 3
    assert "HTTP 500" in caplog.text and "SECRET-PART" not in caplog.text


def test_a_hanging_receiver_does_not_stall_polling(tmp_path: Path) -> None:
    with WebhookReceiver(mode="hang", hang_s=20) as receiver:
        hooks = f"    - {{url: '{receiver.url()}', timeout_s: 1, retries: 0}}\n"
        config = config_with(tmp_path, KV_RULE.replace("2}", "1}"), hooks)
        engine = AlertEngine(config)
        started = time.monotonic()
        for second in range(6):  # fires, resolves, fires... each poll returns at once
            engine.on_points([poll(second, kv_cache=0.95 if second % 2 == 0 else 0.1)])
        assert time.monotonic() - started < 1.0
        assert engine.sender.wait_idle(30)
        assert engine.sender.failed >= 1


def payload_event() -> AlertEvent:
    return AlertEvent(at=1.0, rule="r", kind="endpoint_down", state="fired", message="r: down")


def test_a_queue_that_is_full_drops_without_blocking() -> None:
    sender = WebhookSender([Webhook(url="http://127.0.0.1:9/x", timeout_s=0.1, retries=0)])
    started = time.monotonic()
    sender.send([payload_event()] * 2000)
    assert time.monotonic() - started < 1.0
    assert payload(payload_event(), Webhook(url="http://x/", format="slack")) == (
        b'{"text": "\\ud83d\\udea8 ChatVLMLLM r: down"}'
    )


def test_cli_monitor_once_polls_fires_and_posts_then_defers_to_a_running_poller(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from cli import main
    from testkit.fake_openai_server import FakeOpenAIServer
    from testkit.fake_vllm_metrics import FakeVllmMetrics
    from utils.monitor.poller import MonitorThread

    page = FakeVllmMetrics()
    page.waiting = 40
    with FakeOpenAIServer(metrics=page) as vllm, WebhookReceiver() as receiver:
        extra = (
            f"endpoints:\n  vllm:\n    base_url: {vllm.base_url}\n"
            "alerts:\n  rules:\n    - {name: queue, kind: waiting, threshold: 10, for_checks: 1}\n"
            f"  webhooks:\n    - {{url: '{receiver.url()}'}}\n"
        )
        profile = write_test_profile(tmp_path, extra, monitor=True)
        assert main(["monitor", "--once", "--config", str(profile)]) == 0
        assert "vllm: up running 0.0 waiting 40.0" in capsys.readouterr().out
        assert [body["rule"] for _, body in receiver.received] == ["queue"]

        app_poller = MonitorThread(load_config(profile).config)
        assert app_poller.lead()
        try:
            assert main(["monitor", "--once", "--config", str(profile)]) == 0
        finally:
            app_poller.release()
        assert "another process" in capsys.readouterr().out


def test_cli_monitor_follows_the_profile_and_keeps_polling_through_a_broken_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from argparse import Namespace

    from cli_commands.monitor import _follow_profile
    from utils.monitor.poller import MonitorThread

    profile = write_test_profile(tmp_path, monitor=True)
    monitor = MonitorThread(load_config(profile).config)
    args = Namespace(config=str(profile))
    with profile.open("a", encoding="utf-8") as file:
        file.write("endpoints:\n  added:\n    base_url: http://127.0.0.1:9/v1\n")
    _follow_profile(monitor, args)
    assert "added" in monitor.poller.urls
    profile.write_text("endpoints: [not, a, mapping\n", encoding="utf-8")  # mid-edit
    _follow_profile(monitor, args)
    assert "added" in monitor.poller.urls
    assert "profile not reloaded, polling as before" in capsys.readouterr().out
