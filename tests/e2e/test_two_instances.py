"""Two app servers on one data folder (issue #13, "several app instances").

Two ``streamlit run`` processes on two ports share one profile, so one ``results/``
and one ``cache/``, as two replicas behind a proxy do. Each test drives them from two
browser contexts, one per server, and then reads the files both wrote:

- a conversation edited in both: the later, stale edit is refused, nothing is lost;
- an OCR run in each at once: two run files, and each picker offers one entry per run;
- a benchmark started in one is listed, with its status, by the other;
- the server monitor: of the two processes only one polls, the other takes over
  when the first goes away; the Servers tab shows new numbers without a click.

One pair of servers serves the whole module. Sign-in is off (the local user).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import e2e_harness as h
from testkit.fake_openai_server import FakeOpenAIServer, Reply
from testkit.fake_vllm_metrics import FakeVllmMetrics
from testkit.profiles import fake_server_model_yaml, write_test_profile
from tests.e2e.conftest import save_failure_artifacts
from tests.e2e.test_pages import receipt_png, start_benchmark
from utils.auth.user_data import CHATS_DIR_NAME, OCR_DIR_NAME
from utils.bench import store
from utils.chat.conversation import Conversation
from utils.monitor.history import MetricsHistory
from utils.storage.locks import lock_path_for

pytestmark = pytest.mark.e2e

ANSWER = "Fixed answer from the fake model."
ANSWER_CHUNKS = ("Fixed answer ", "from the fake ", "model.")
FIRST_QUESTION = "First question, asked in instance A (e2e-two-instances)"
SECOND_QUESTION = "Second question, asked in instance A (e2e-two-instances)"
CHANGED_ELSEWHERE = re.compile("This conversation changed since it was shown")
BENCH_RUN_NAME = "run started in instance A"
MESSAGES = '[data-testid="stChatMessage"]'
MONITOR_YAML = "monitor:\n  enabled: true\n  interval_s: 1\n"
POLL_WINDOW_S = 6.0
FAKE_ENDPOINT = "fake"  # fake_server_model_yaml's endpoint key
PROC_LOCKS = Path("/proc/locks")  # the kernel's table of file locks and their holders

Pair = tuple[h.AppServer, h.AppServer]


# -- servers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_server(e2e_ready: None) -> Iterator[FakeOpenAIServer]:
    """The chat model of both apps, with vLLM's /metrics for the monitor to poll."""
    with FakeOpenAIServer(
        models=("fake-vlm",), default=Reply(chunks=ANSWER_CHUNKS), metrics=FakeVllmMetrics()
    ) as server:
        yield server


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, model_server: FakeOpenAIServer, browser: Any
) -> Iterator[Pair]:
    """Instances A and B: one profile, so one results/ and one cache/."""
    folder = tmp_path_factory.mktemp("e2e_two_instances")
    extra = fake_server_model_yaml(model_server.base_url, timeout_s=30) + MONITOR_YAML
    profile = write_test_profile(folder, extra, monitor=True)
    first = h.AppServer(profile, folder / "server_a.log")
    second = h.AppServer(profile, folder / "server_b.log")
    with first, second:
        for server in (first, second):
            first_visit(browser, server)
        yield first, second


def first_visit(browser: Any, server: h.AppServer) -> None:
    """The first run of a fresh server must be the root URL (see test_navigation.py);
    it also starts the server's monitor thread."""
    context, page = h.new_page(browser, h.PageWatch())
    try:
        h.open_page(page, server, "/")
    finally:
        context.close()


def data_dir(pair: Pair) -> Path:
    return pair[0].profile.parent / "results"


@pytest.fixture
def open_on(
    browser: Any, pair: Pair, request: pytest.FixtureRequest
) -> Iterator[Callable[[h.AppServer], Any]]:
    """Opens a fresh browser context and page per call (one per instance). After the
    test: a screenshot of each page if it failed; no page may reach beyond 127.0.0.1."""
    opened: list[tuple[Any, Any, h.PageWatch, h.AppServer]] = []

    def open_session(server: h.AppServer) -> Any:
        watch = h.PageWatch()
        context, page = h.new_page(browser, watch)
        opened.append((context, page, watch, server))
        return page

    yield open_session
    failed = getattr(request.node, "rep_call", None)
    for index, (context, page, watch, server) in enumerate(opened):
        if failed is not None and failed.failed:
            save_failure_artifacts(f"{request.node.name}-{index}", page, server)
        context.close()
        foreign = watch.foreign_requests()
        assert not foreign, f"a page made requests beyond 127.0.0.1: {foreign[:10]}"


# -- chat ------------------------------------------------------------------------


def ask(page: Any, question: str, turns_after: int) -> None:
    """Send ``question`` and wait until the page shows ``turns_after`` messages, the
    last one the fake model's answer."""
    from playwright.sync_api import expect

    h.chat_send(page, question)
    messages = page.locator(MESSAGES)
    expect(messages).to_have_count(turns_after, timeout=h.SLOW_MS)
    expect(messages.last).to_contain_text(ANSWER, timeout=h.SLOW_MS)
    h.settle(page)


def conversation_id(page: Any) -> str:
    page.wait_for_url(re.compile(r"[?&]c=[^&]+"))
    return re.search(r"[?&]c=([^&]+)", page.url).group(1)


def stored_turns(pair: Pair, conversation: str) -> list[tuple[str, str]]:
    path = data_dir(pair) / CHATS_DIR_NAME / f"{conversation}.json"
    stored = Conversation.model_validate_json(path.read_text(encoding="utf-8"))
    return [(message.role, message.text) for message in stored.messages]


def requests_asking(server: FakeOpenAIServer, question: str) -> int:
    """Chat requests whose last message is ``question``: one per answer generated to it."""
    count = 0
    for request in server.chat_requests:
        last = (request.body or {}).get("messages", [{}])[-1]
        content = last.get("content")
        texts = [content] if isinstance(content, str) else [p.get("text") for p in content or []]
        count += question in texts
    return count


def test_a_stale_edit_in_one_instance_is_refused_and_loses_nothing(
    pair: Pair, open_on: Callable[[h.AppServer], Any], model_server: FakeOpenAIServer
) -> None:
    from playwright.sync_api import expect

    server_a, server_b = pair
    a = open_on(server_a)
    h.open_page(a, server_a, "/")
    h.new_chat(a)
    h.choose(a, "Model", "Fake VLM")
    ask(a, FIRST_QUESTION, turns_after=2)
    chat = conversation_id(a)

    # B reads the conversation A wrote, without a restart: its link is enough.
    b = open_on(server_b)
    h.open_page(b, server_b, f"/?c={chat}")
    expect(b.locator(MESSAGES)).to_have_count(2)
    expect(b.get_by_text(FIRST_QUESTION, exact=True)).to_be_visible()

    ask(a, SECOND_QUESTION, turns_after=4)
    # B still shows the first turn only; its Regenerate acts on that revision.
    expect(b.locator(MESSAGES)).to_have_count(2)
    b.get_by_role("button", name="🔁 Regenerate").click()
    expect(b.get_by_text(CHANGED_ELSEWHERE)).to_be_visible(timeout=h.SLOW_MS)
    h.settle(b)

    expected = [
        ("user", FIRST_QUESTION),
        ("assistant", ANSWER),
        ("user", SECOND_QUESTION),
        ("assistant", ANSWER),
    ]
    assert stored_turns(pair, chat) == expected
    assert requests_asking(model_server, SECOND_QUESTION) == 1  # B generated nothing

    b.reload()
    h.settle(b)
    expect(b.locator(MESSAGES)).to_have_count(4)
    expect(b.get_by_text(SECOND_QUESTION, exact=True)).to_be_visible()
    expect(b.get_by_text(CHANGED_ELSEWHERE)).to_have_count(0)
    assert stored_turns(pair, chat) == expected


# -- OCR -------------------------------------------------------------------------


def upload_receipt(page: Any, server: h.AppServer) -> None:
    h.open_page(page, server, "/ocr")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [h.png_payload("receipt.png", receipt_png())]
    )
    h.settle(page)


def finished_run_id(page: Any) -> str:
    page.get_by_text("1 of 1 file(s) read").wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    heading = page.get_by_role("heading", name=re.compile(r"^Run \S+$")).inner_text()
    return heading.split()[-1]


def previous_run_labels(page: Any) -> list[str]:
    """What the "Previous runs" picker offers, one label per run."""
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.get_by_role("combobox", name="Reopen", exact=True)
    )
    open_dropdown(page, box)
    labels = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return labels


def stored_run_labels(pair: Pair) -> list[str]:
    """The label the picker gives each run file on disk: to the second, with the run id's
    suffix, so the two runs here read differently and each must be offered once."""
    labels = []
    for path in (data_dir(pair) / OCR_DIR_NAME).glob("*.json"):
        run = json.loads(path.read_text(encoding="utf-8"))
        engine = run["settings"]["engine"]
        labels.append(
            f"{run['created_at'][:19]} · {len(run['documents'])} file(s) · {engine}"
            f" · {run['run_id'][-6:]}"
        )
    return labels


def open_dropdown(page: Any, box: Any, tries: int = 3) -> None:
    """Open the selectbox ``box``'s list. The first click after a reload may be lost
    (the list stays shut; seen in headless Chromium): then click again."""
    for attempt in range(tries):
        box.get_by_role("button", name="Open").click()
        try:
            page.get_by_role("option").first.wait_for(timeout=5_000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried below
            if attempt == tries - 1:
                raise
            continue
        return


def test_an_ocr_run_in_each_instance_at_once(
    pair: Pair, open_on: Callable[[h.AppServer], Any]
) -> None:
    pages = [open_on(server) for server in pair]
    for page, server in zip(pages, pair, strict=True):
        upload_receipt(page, server)
    for page in pages:  # both start before either is waited for
        page.get_by_role("button", name="Run OCR", exact=True).click()
    run_ids = {finished_run_id(page) for page in pages}
    assert len(run_ids) == 2, run_ids

    stored = sorted(path.stem for path in (data_dir(pair) / OCR_DIR_NAME).glob("*.json"))
    assert stored == sorted(run_ids)
    expected = sorted(stored_run_labels(pair))
    for page in pages:
        page.reload()
        h.settle(page)
        assert sorted(previous_run_labels(page)) == expected


# -- benchmarks ----------------------------------------------------------------


def test_a_benchmark_started_in_one_instance_is_listed_by_the_other(
    pair: Pair, open_on: Callable[[h.AppServer], Any]
) -> None:
    server_a, server_b = pair
    b = open_on(server_b)
    h.open_page(b, server_b, "/benchmark")  # open before the run exists
    a = open_on(server_a)
    h.open_page(a, server_a, "/benchmark")
    start_benchmark(a, 1, BENCH_RUN_NAME, engines=["rapidocr"])
    done = a.get_by_text(re.compile(r"Run \S+: complete")).inner_text()
    run_id = re.search(r"Run (\S+): complete", done).group(1)

    b.reload()
    h.settle(b)
    # The runs table by a column only it has: the item table below it has "status" too,
    # and may draw its header first.
    rows = h.grid_rows(b, h.grid_with_column(b, "owner").first)
    listed = [row for row in rows if BENCH_RUN_NAME in row]
    assert len(listed) == 1, rows
    assert run_id in listed[0] and "complete" in listed[0] and "1/1" in listed[0], listed

    data = data_dir(pair)
    runs = [r for r in store.list_bench_runs(data) if r.name == BENCH_RUN_NAME]
    assert [r.run_id for r in runs] == [run_id]
    items = store.read_items(data, run_id)
    assert len(items.records) == 1 and items.duplicates == 0 and items.bad_lines == 0


# -- server monitor --------------------------------------------------------------


def poll_times(pair: Pair, since: float) -> list[float]:
    history = MetricsHistory(data_dir(pair), max_bytes=2**30)
    return [point.at for point in history.read(FAKE_ENDPOINT, since=since)]


def poller_lock_holder(pair: Pair) -> int | None:
    """The pid holding the data folder's poller lock, from the kernel's lock table."""
    inode = lock_path_for(data_dir(pair) / "monitor" / "poller").stat().st_ino
    for line in PROC_LOCKS.read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF"; a waiter's line has "->".
        if "->" not in fields and len(fields) >= 6 and fields[5].endswith(f":{inode}"):
            return int(fields[4])
    return None


def wait_for_poll_after(pair: Pair, moment: float, timeout_s: float) -> list[float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if later := poll_times(pair, moment):
            return later
        time.sleep(0.25)
    return []


def test_the_servers_tab_follows_the_server_without_a_click(
    pair: Pair, open_on: Callable[[h.AppServer], Any], model_server: FakeOpenAIServer
) -> None:
    """The tab re-reads the poller's history every interval on its own (a fragment)."""
    from playwright.sync_api import expect

    page = open_on(pair[0])
    h.open_page(page, pair[0], "/models")
    page.get_by_role("tab", name="📈 Servers").click()
    running = page.locator('[data-testid="stMetric"]').filter(has_text="Running / waiting")
    for now_running, now_waiting in ((7, 3), (9, 1)):
        model_server.metrics.running, model_server.metrics.waiting = now_running, now_waiting
        expect(running).to_contain_text(f"{now_running}.0 / {now_waiting}.0", timeout=15_000)
    model_server.metrics.running = model_server.metrics.waiting = 0


def test_one_process_polls_the_servers_and_the_other_takes_over(pair: Pair, browser: Any) -> None:
    started = time.time()
    time.sleep(POLL_WINDOW_S)
    polls = [at for at in poll_times(pair, started) if at <= started + POLL_WINDOW_S]
    # One poller every 1 s gives about 6; two would give about 12.
    assert POLL_WINDOW_S / 2 <= len(polls) <= POLL_WINDOW_S + 2, polls

    if not PROC_LOCKS.is_file():
        pytest.skip(f"the take-over check reads the lock holder from {PROC_LOCKS} (Linux)")
    holder = poller_lock_holder(pair)
    leader = next((server for server in pair if server.pid == holder), None)
    assert leader is not None, f"the poller lock is held by pid {holder}, not by an app"
    leader.stop()
    try:
        stopped = time.time()
        # The other process retries the lock every interval and polls once it has it.
        assert wait_for_poll_after(pair, stopped + 0.5, timeout_s=10), "nobody polls"
        assert poller_lock_holder(pair) == next(s.pid for s in pair if s is not leader)
    finally:
        leader.start()  # the module's pair stays whole for any test after this one
        first_visit(browser, leader)
