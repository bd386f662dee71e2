"""What the browser tests and scripts/perf/load_sessions.py share: the app server in a
subprocess, headless Chromium, a watch on what the page does, and small UI steps.

Streamlit's DOM is driven through its ``data-testid`` attributes. After an action
we wait for what a person would wait for (a text, an image) rather than sleeping.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testkit.processes import log_tail, stop_process
from testkit.profiles import tiny_model_yaml, write_test_profile  # noqa: F401 (re-exported)

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHATVLM_CHROMIUM", "/usr/bin/chromium"))
# No GPU, no sandbox (containers), and none of the browser's own calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
SERVER_START_TIMEOUT_S = 60
# What the hostile model answers: each piece would run a script, open a dialog or
# reach another host if the app rendered it as HTML or followed its links.
REMOTE_HOST = "203.0.113.7"  # TEST-NET-3: any request to it is a leak
LONG_LINE = "L" * 5000
HOSTILE_CHUNKS = (
    "Here is your answer. ",
    "<script>window.__pwned=1</script> ",
    '<img src=x onerror="window.__pwned=2"> ',
    "[click](javascript:window.__pwned=3) ",
    f"![remote](http://{REMOTE_HOST}/pixel.png)\n\n",
    LONG_LINE,
)
HOSTILE_TEXT = "".join(HOSTILE_CHUNKS)
# Strings that reach the page from elsewhere than a model's answer: a server's model id,
# its error message, an uploaded file's name. Each is Markdown that loads a remote image.
HOSTILE_MODEL_ID = f"![m](http://{REMOTE_HOST}/model.png)"
HOSTILE_ERROR = f"![e](http://{REMOTE_HOST}/error.png) $\\rule{{900em}}{{900em}}$"
HOSTILE_FILE_NAME = f"![f](https:{REMOTE_HOST}).png"
# The first script run imports the app's services; models load on first use.
SLOW_MS = 120_000


def missing_browser_reason() -> str | None:
    """Why the browser tests cannot run here, with how to enable them; None if they can."""
    if not CHROMIUM.exists():
        return (
            f"no Chromium at {CHROMIUM}: install it with `sudo apt-get install -y chromium` "
            "(or `make system-deps` as root), or point CHATVLM_CHROMIUM at a Chromium binary"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -r requirements-dev.txt"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def write_profile(folder: Path, models_yaml: str = "", endpoints_yaml: str = "") -> Path:
    """A profile extending config.yaml with its data folders under ``folder``."""
    extra = ("endpoints:\n" + endpoints_yaml if endpoints_yaml else "") + (
        "models:\n" + models_yaml if models_yaml else ""
    )
    return write_test_profile(folder, extra, name="e2e_profile.yaml")


class AppServer:
    """``python serve.py`` (``streamlit run app.py`` and the start-up OCR engine load, as
    ``make run`` starts it) on a free loopback port, with ``profile`` active.

    ``secrets_file``: the only secrets.toml the server reads (``--secrets.files``), e.g.
    the ``[auth]`` of a test's OIDC provider; the repo's ``.streamlit/`` is left alone.
    ``extra_args``: more ``streamlit run`` options, appended last so they win.
    """

    def __init__(
        self,
        profile: Path,
        log_path: Path,
        port: int | None = None,
        *,
        secrets_file: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.profile = profile
        self.log_path = log_path
        self.port = port or free_port()
        self.secrets_file = secrets_file
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def __enter__(self) -> AppServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        env = dict(
            os.environ,
            CHATVLM_CONFIG=str(self.profile),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        command = [
            sys.executable, "serve.py",
            "--server.headless", "true",
            "--server.port", str(self.port),
            "--server.address", LOCAL_HOST,
            "--browser.gatherUsageStats", "false",
            # Watching the repo (and .venv) for edits costs CPU and overflows inotify.
            "--server.fileWatcherType", "none",
        ]  # fmt: skip
        if self.secrets_file is not None:
            command += ["--secrets.files", str(self.secrets_file)]
        command += self.extra_args
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the app exited at start; log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as reply:
                    if reply.read().strip() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the app did not answer in {timeout_s} s; log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return log_tail(self.log_path, chars)

    def stop(self) -> None:
        stop_process(self.process)


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless; Playwright gives it a fresh temporary profile."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@dataclass
class PageWatch:
    """What a page asked the network for and which dialogs it opened."""

    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def foreign_requests(self) -> list[str]:
        """Requests for anything but the loopback app (data: and blob: URLs stay local)."""
        return [url for url in self.requests if not is_local(url)]


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == LOCAL_HOST


def new_page(browser: Any, watch: PageWatch) -> tuple[Any, Any]:
    """A fresh context (its own Streamlit session) and page, watched.

    Every request for another host is recorded and aborted inside the browser, so
    a leak fails the test without a single packet leaving the machine.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(30_000)
    context.route("**/*", _keep_local)
    page = context.new_page()
    watch.attach(page)
    return context, page


def _keep_local(route: Any) -> None:
    if is_local(route.request.url):
        route.continue_()
    else:
        route.abort("blockedbyclient")


# -- UI steps ------------------------------------------------------------------


def open_page(page: Any, server: AppServer, path: str = "/") -> None:
    """Go to ``path`` and wait until its script has run: every page starts with a title."""
    page.goto(server.url + path)
    page.locator('h1, [data-testid="stException"]').first.wait_for(timeout=SLOW_MS)
    settle(page)


def settle(page: Any, timeout_ms: int = SLOW_MS) -> None:
    """Wait until the script run that an action started has finished.

    A click reaches the server a moment after it happens, so look once more after
    a short pause: the state may still read "notRunning" from the previous run.
    """
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    crash = page.locator('[data-testid="stException"]')
    if crash.count():
        raise AssertionError(f"the page shows an exception:\n{crash.first.inner_text()}")


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.get_by_role("combobox", name=label, exact=True)
    )
    pick_option(page, box, option)


def pick_option(page: Any, box: Any, option: str, tries: int = 3) -> None:
    """Open the dropdown of ``box`` and click ``option``. A rerun that lands while the
    list is open (a text field committing on blur) closes it: then open it again."""
    wanted = page.get_by_role("option", name=option).first
    for attempt in range(tries):
        box.get_by_role("button", name="Open").click()
        try:
            wanted.wait_for(timeout=5_000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried below
            if attempt == tries - 1:
                raise
            settle(page)
            continue
        wanted.click()
        settle(page)
        return


def multiselect(page: Any, label: str, options: Iterable[str], clear: bool = False) -> None:
    """Add ``options`` to the multiselect labelled ``label`` (after removing all, if asked)."""
    box = page.locator('[data-testid="stMultiSelect"]').filter(
        has=page.get_by_role("combobox", name=label, exact=True)
    )
    if clear:
        _clear_multiselect(page, box)
    for option in options:
        pick_option(page, box, option)
        page.keyboard.press("Escape")
        settle(page)


def _clear_multiselect(page: Any, box: Any) -> None:
    """Remove every chip of ``box``. Right after an expander opens the box may not be
    drawn yet, and counting its "Clear all" button then finds none: wait for the box
    first, and after the click for the chips to be gone."""
    from playwright.sync_api import expect

    box.wait_for(timeout=SLOW_MS)
    clear_all = box.get_by_role("button", name="Clear all")
    if clear_all.count():
        clear_all.click()
        expect(clear_all).to_have_count(0, timeout=SLOW_MS)
        settle(page)


def fill_number(page: Any, label: str, value: int) -> None:
    field_input = page.get_by_role("spinbutton", name=label)
    field_input.fill(str(value))
    field_input.press("Enter")
    settle(page)


def fill_text(page: Any, label: str, value: str) -> None:
    field_input = page.get_by_role("textbox", name=label, exact=True)
    field_input.fill(value)
    field_input.press("Enter")
    settle(page)


def click_button(page: Any, name: str, timeout_ms: int = SLOW_MS) -> None:
    page.get_by_role("button", name=name, exact=True).first.click()
    settle(page, timeout_ms)


def new_chat(page: Any) -> None:
    """Start a new conversation and wait until the page shows it, empty.

    "New chat" reruns the script twice (the click, then ``st.rerun``); on a busy
    machine ``settle`` can look between the two, so wait for what it must show.
    """
    from playwright.sync_api import expect

    click_button(page, "➕ New chat")
    expect(page.locator('[data-testid="stChatMessage"]')).to_have_count(0, timeout=SLOW_MS)
    settle(page)


def grid_with_column(page: Any, column: str) -> Any:
    """The ``st.dataframe`` grids that have a column headed ``column``."""
    return page.locator('[data-testid="stDataFrame"]').filter(
        # CSS, not get_by_role: the accessible table lives inside a canvas, which
        # role queries treat as hidden.
        has=page.locator('th[role="columnheader"]', has_text=re.compile(f"^{re.escape(column)}$"))
    )


def grid_rows(page: Any, grid: Any) -> list[list[str]]:
    """The cells of a ``st.dataframe``, row by row, header excluded.

    The grid is drawn on a canvas; Glide keeps an accessible table of the cells
    in view inside it, so scroll it through and collect rows by their index.
    """
    # A grid is drawn a moment after its element exists (longer on a busy machine,
    # e.g. while a fresh server loads its OCR engine): wait as long as a slow run may.
    grid.wait_for(state="visible", timeout=SLOW_MS)
    grid.scroll_into_view_if_needed()
    grid.locator('[role="gridcell"]').first.wait_for(state="attached")
    scroller = grid.locator(".dvn-scroller").first
    rows: dict[int, list[str]] = {}
    while True:
        for index, cells in grid.evaluate(_VISIBLE_ROWS_JS):
            rows[index] = cells
        at_end = scroller.evaluate("s => s.scrollTop + s.clientHeight >= s.scrollHeight - 1")
        if at_end:
            return [rows[index] for index in sorted(rows)]
        scroller.evaluate("s => { s.scrollTop += s.clientHeight / 2; }")
        page.wait_for_timeout(300)  # the grid redraws its accessible table after a scroll


_VISIBLE_ROWS_JS = """element => [...element.querySelectorAll('tr[role="row"]')]
    .map(row => [Number(row.getAttribute('aria-rowindex')),
                 [...row.querySelectorAll('[role="gridcell"]')].map(cell => cell.textContent)])
    .filter(([, cells]) => cells.length)"""


def download(page: Any, button: Any) -> bytes:
    """Click a download button and return the bytes the browser saved."""
    with page.expect_download() as info:
        button.click()
    path = info.value.path()
    return Path(path).read_bytes()


def chat_send(page: Any, text: str, files: list[dict] | None = None) -> None:
    """Type a question in the chat input, attaching ``files`` through its file chooser."""
    chat = page.locator('[data-testid="stChatInput"]')
    if files:
        with page.expect_file_chooser() as chooser:
            chat.locator('[data-testid="stChatInputFileUploadButton"]').click()
        chooser.value.set_files(files)
        page.wait_for_timeout(300)
    chat.locator("textarea").fill(text)
    chat.locator('[data-testid="stChatInputSubmitButton"]').click()


def png_payload(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": data}


def assert_page_was_harmless(browser_page: Any, watch: PageWatch) -> None:
    """No hostile script ran, no dialog opened, nothing left for another host."""
    assert pwned(browser_page) is None
    assert not watch.dialogs, watch.dialogs
    remote = [url for url in watch.requests if REMOTE_HOST in url]
    assert not remote, remote
    assert not watch.foreign_requests(), watch.foreign_requests()


def pwned(page: Any) -> Any:
    """What the hostile answer's scripts would have set; None while none of them ran."""
    return page.evaluate("() => window.__pwned ?? null")
