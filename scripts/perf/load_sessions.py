"""Five browser sessions at once: each one OCRs its own file and chats with a tiny model.

    python scripts/perf/load_sessions.py [--sessions 5] [--rounds 3]

Starts the app (`streamlit run`, a temp profile with a tiny random-weight Qwen2-VL
built here, no network) and headless Chromium (Debian's, as the e2e suite does).
Each round opens ``--sessions`` browser contexts (= Streamlit sessions) at once;
each uploads a receipt rendered with its own words, runs OCR, opens a new chat with
the tiny model and asks a question carrying its own tag. A session is correct when
its OCR result shows its own words and no other session's, and its chat page shows
its own question and no other session's (conversations are shared on disk by
design, one user and many tabs, so the check is what each tab shows).

Prints per round the wall time, how many sessions were correct and the server
process's RSS (psutil, children included); then whether the RSS after the last
round is within 10% of its level after the first round. Exit status 1 if any
session saw a wrong result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402

from testkit import e2e_harness as h  # noqa: E402
from testkit.render import encode, render_lines  # noqa: E402

WORDS = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL"]
SETTLE_MS = 300
TIMEOUT_MS = 180_000
MEMORY_TOLERANCE = 0.10
MAX_NEW_TOKENS = 16  # the tiny model's answers are noise: keep them short


@dataclass
class SessionResult:
    index: int
    ocr_ok: bool
    chat_ok: bool
    detail: str

    @property
    def ok(self) -> bool:
        return self.ocr_ok and self.chat_ok


def session_word(index: int) -> str:
    return f"{WORDS[index % len(WORDS)]} {1000 + index}"


def session_question(index: int, round_number: int) -> str:
    return f"Describe this receipt please, tag q{round_number}x{index}z"


def session_image(index: int) -> bytes:
    lines = [("LOAD TEST STORE", None), (session_word(index), None), ("TOTAL", f"{index}.50")]
    return encode(render_lines(lines, size=(900, 300)))


def rss_bytes(pid: int) -> int:
    process = psutil.Process(pid)
    return process.memory_info().rss + sum(
        child.memory_info().rss for child in process.children(recursive=True)
    )


# -- async browser steps (the e2e suite's steps, for many pages at once) ----------


async def settle(page) -> None:
    await page.wait_for_selector(h.IDLE, timeout=TIMEOUT_MS)
    await page.wait_for_timeout(SETTLE_MS)
    await page.wait_for_selector(h.IDLE, timeout=TIMEOUT_MS)


async def open_page(page, url: str) -> None:
    await page.goto(url)
    await page.locator("h1").first.wait_for(timeout=TIMEOUT_MS)
    await settle(page)


async def choose(page, label: str, option: str) -> None:
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.get_by_role("combobox", name=label, exact=True)
    )
    wanted = page.get_by_role("option", name=option).first
    for _ in range(3):
        await box.get_by_role("button", name="Open").click()
        try:
            await wanted.wait_for(timeout=5_000)
            break
        except Exception:  # noqa: BLE001 - a rerun closed the list: open it again
            await settle(page)
    await wanted.click()
    await settle(page)


async def ocr_step(page, url: str, index: int, words: list[str]) -> tuple[bool, str]:
    await open_page(page, url + "/ocr")
    await page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [h.png_payload(f"load-{index}.png", session_image(index))]
    )
    await settle(page)
    await page.get_by_role("button", name="Run OCR", exact=True).click()
    await page.get_by_text("1 of 1 file(s) read").wait_for(timeout=TIMEOUT_MS)
    await settle(page)
    await page.locator("summary", has_text=f"load-{index}.png").click()
    text = await page.locator('[data-testid="stText"]').first.inner_text(timeout=TIMEOUT_MS)
    own = session_word(index).split()[0]
    others = [w for i, w in enumerate(words) if i != index and w in text]
    return own in text and not others, f"ocr read {text.split()[:8]}"


async def chat_step(page, url: str, index: int, questions: list[str]) -> tuple[bool, str]:
    from playwright.async_api import expect

    await open_page(page, url + "/")
    await page.get_by_role("button", name="➕ New chat", exact=True).click()
    await settle(page)
    messages = page.locator('[data-testid="stChatMessage"]')
    try:  # under load the click's rerun may land after the settle
        await expect(messages).to_have_count(0, timeout=30_000)
    except AssertionError:
        return False, f"'New chat' still shows {await messages.count()} message(s)"
    await choose(page, "Model", "Tiny Qwen2-VL")
    tokens = page.get_by_role("spinbutton", name="Max new tokens")
    await tokens.fill(str(MAX_NEW_TOKENS))
    await tokens.press("Enter")
    await settle(page)
    chat = page.locator('[data-testid="stChatInput"]')
    await chat.locator("textarea").fill(questions[index])
    await chat.locator('[data-testid="stChatInputSubmitButton"]').click()
    await messages.filter(has_text=questions[index]).first.wait_for(timeout=TIMEOUT_MS)
    await messages.filter(has_text="tok/s").first.wait_for(timeout=TIMEOUT_MS)
    await settle(page)
    shown = await messages.all_inner_texts()
    others = [q for i, q in enumerate(questions) if i != index and q in " ".join(shown)]
    ok = len(shown) == 2 and questions[index] in shown[0] and "tok/s" in shown[1] and not others
    return ok, f"chat shows {len(shown)} message(s), {len(others)} foreign question(s)"


async def one_session(browser, url: str, index: int, round_number: int, count: int):
    words = [session_word(i).split()[0] for i in range(count)]
    questions = [session_question(i, round_number) for i in range(count)]
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = await context.new_page()
    foreign: list[str] = []
    page.on("request", lambda r: None if h.is_local(r.url) else foreign.append(r.url))
    try:
        ocr_ok, ocr_detail = await ocr_step(page, url, index, words)
        chat_ok, chat_detail = await chat_step(page, url, index, questions)
    except Exception as exc:  # noqa: BLE001 - report the session as failed, keep the others
        return SessionResult(index, False, False, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        await context.close()
    detail = f"{ocr_detail}; {chat_detail}" + (f"; foreign requests {foreign}" if foreign else "")
    return SessionResult(index, ocr_ok and not foreign, chat_ok, detail)


async def run_rounds(server: h.AppServer, sessions: int, rounds: int) -> bool:
    from playwright.async_api import async_playwright

    all_ok = True
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(h.CHROMIUM), args=h.CHROMIUM_ARGS
        )
        warm = await browser.new_page()
        await open_page(warm, server.url + "/")  # first run at the root (see test_navigation)
        await warm.close()
        before = rss_bytes(server.pid)
        print(f"server RSS before any session: {before / 2**20:8.1f} MiB")
        print(f"{'round':>5} {'seconds':>8} {'correct':>8} {'RSS MiB':>9}")
        after_first = None
        for round_number in range(1, rounds + 1):
            started = time.perf_counter()
            results = await asyncio.gather(
                *(
                    one_session(browser, server.url, i, round_number, sessions)
                    for i in range(sessions)
                )
            )
            seconds = time.perf_counter() - started
            rss = rss_bytes(server.pid)
            after_first = after_first or rss
            correct = sum(r.ok for r in results)
            print(
                f"{round_number:>5} {seconds:>8.1f} {correct:>5}/{sessions:<2} {rss / 2**20:>9.1f}"
            )
            for result in results:
                if not result.ok:
                    all_ok = False
                    print(f"      session {result.index} WRONG: {result.detail}")
        await browser.close()
    await asyncio.sleep(5)  # let sessions expire their state once the sockets are gone
    final = rss_bytes(server.pid)
    change = (final - after_first) / after_first
    print(f"server RSS after the sessions closed: {final / 2**20:8.1f} MiB")
    print(
        f"vs after the first round: {change:+.1%} -> within {MEMORY_TOLERANCE:.0%}: "
        f"{'yes' if abs(change) <= MEMORY_TOLERANCE else 'NO'}"
    )
    return all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = h.missing_browser_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    from testkit.tiny_vlms import TinyVlmFolders

    with tempfile.TemporaryDirectory(prefix="load_sessions_") as tmp:
        folder = Path(tmp)
        model = TinyVlmFolders(folder / "models")("qwen2_vl")
        profile = h.write_profile(folder, h.tiny_model_yaml("tiny_qwen", model))
        with h.AppServer(profile, folder / "server.log") as server:
            print(
                f"app on {server.url}, pid {server.pid}; {args.sessions} sessions x {args.rounds}"
            )
            ok = asyncio.run(run_rounds(server, args.sessions, args.rounds))
            if not ok:
                print(f"server log tail:\n{server.log_tail(2000)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
