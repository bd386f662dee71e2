"""The Models page's live server view under AppTest, fed by a fake vLLM (#13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT, load_config
from testkit.apptest import shown
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.fake_vllm_metrics import FakeVllmMetrics
from testkit.profiles import write_test_profile
from utils.monitor.poller import ServerPoller

APP = str(REPO_ROOT / "app.py")


@pytest.fixture
def vllm_page():
    page = FakeVllmMetrics()
    page.running, page.waiting, page.kv_cache = 3, 2, 0.61
    with FakeOpenAIServer(metrics=page) as server:
        yield server, page


def test_the_page_shows_live_numbers_and_a_server_without_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vllm_page
) -> None:
    server, page = vllm_page
    with FakeOpenAIServer() as ollama:
        extra = (
            "monitor:\n  interval_s: 3600\n"  # the page test polls by hand, not the thread
            f"endpoints:\n  vllm:\n    base_url: {server.base_url}\n"
            f"  ollama:\n    base_url: {ollama.base_url}\n"
        )
        profile = write_test_profile(tmp_path, extra, monitor=True)
        monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()  # starts the app's poller, which polls once, then waits an hour
        poller = ServerPoller(load_config(profile).config)
        poller.poll_once()
        for _ in range(10):
            page.observe_request(200, 50, 0.08, 1.6)
        poller.poll_once()
        at.switch_page("app_pages/models.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Running / waiting"] == "3.0 / 2.0"
    assert metrics["KV cache"] == "61 %"
    assert metrics["TTFT p50 · p95"].startswith("0.0") and metrics["Latency p50 · p95"] != "– · –"
    captions = [shown(c.value) for c in at.caption]
    assert any("publishes no Prometheus metrics" in c for c in captions)
    assert any(server.base_url in c and c.endswith("up") for c in captions)


def test_a_firing_alert_is_a_banner_on_every_page_and_listed_on_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from utils.monitor.alerts import AlertEngine
    from utils.monitor.points import ServerPoint

    extra = (
        "endpoints:\n  gpu-box:\n    base_url: http://127.0.0.1:9/v1\n"
        "alerts:\n  rules:\n    - {name: '[down](http://x)', kind: endpoint_down, for_checks: 1}\n"
    )
    with pytest.raises(Exception, match="name"):  # rule names are identifiers, never Markdown
        load_config(write_test_profile(tmp_path, extra))
    extra = extra.replace("'[down](http://x)'", "down")
    profile = write_test_profile(tmp_path, extra)
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    AlertEngine(load_config(profile).config).on_points(
        [ServerPoint(at=1.0, endpoint="gpu-box", up=False, error="unreachable: refused")]
    )
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert any("1 alert(s) firing: down/gpu-box" in shown(w.value) for w in at.warning)
    at.switch_page("app_pages/models.py").run()
    assert any("down/gpu-box" in str(frame.value) for frame in at.dataframe)
    assert not at.exception
