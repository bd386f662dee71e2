"""Does the Chat page still open fast for one user when the server holds many users?

    python scripts/perf/chat_users_scale.py [--users 100] [--conversations 200] [--runs 7]

Builds, in a temp folder, ``--users`` signed-in users with ``--conversations``
conversations each (one to three question/answer turns), written with the chat store's
own API into ``<data_dir>/users/<user id>/chats`` as the app writes them; the local
operator (sign-in off) gets as many in ``<data_dir>/chats``. Then times what opening the
Chat page costs one user (goal: under 0.3 s):

- the store: ``ChatStore(chats_dir(data_dir, user), limits).list()`` on a new store object
  (no parsed conversation cached in the process: a server that just started), best and
  median of ``--runs``, and the same call again on that store (every later rerun);
- the page: ``app.py`` under Streamlit's AppTest with a profile whose data folder is the
  one built (sign-in off, so the page lists the local operator's conversations), Streamlit's
  caches cleared before each open, next to the same page over an empty data folder: the
  difference is what listing the conversations adds to opening the page (the goal's
  figure; the page's own work, model checks included, is the same in both). Then later
  visits with the store cached. The first open also pays imports.

The operating system's file cache is warm in every run (the files were just written).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from models.chat.types import GenerationParams, Usage  # noqa: E402
from testkit.profiles import write_test_profile  # noqa: E402
from utils.auth import LOCAL_USER, User, user_id_for  # noqa: E402
from utils.auth.user_data import chats_dir  # noqa: E402
from utils.chat.conversation import StoredMessage  # noqa: E402
from utils.chat.store import ChatStore  # noqa: E402
from utils.documents.limits import DocumentLimits  # noqa: E402

GOAL_S = 0.3
ISSUER = "https://id.example.org/realms/team"
_WORDS = [
    "total", "invoice", "receipt", "date", "vendor", "item", "price", "tax", "subtotal",
    "paid", "card", "address", "table", "row", "value", "page", "header", "because",
]  # fmt: skip


def prose(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(word) + 1 for word in words) < chars:
        words.append(rng.choice(_WORDS))
    return " ".join(words).capitalize()[:chars]


def conversation_messages(rng: random.Random) -> list[StoredMessage]:
    """One to three turns: a question of a few hundred characters, an answer of one to two
    thousand with its usage record, as the Chat page stores them."""
    usage = Usage(model_id="m", backend="openai", prompt_tokens=900, completion_tokens=300)
    messages = []
    for _ in range(rng.randint(1, 3)):
        messages.append(StoredMessage(role="user", text=prose(rng, rng.randint(60, 400))))
        answer = prose(rng, rng.randint(500, 2000))
        messages.append(StoredMessage(role="assistant", text=answer, usage=usage))
    return messages


def fill_user(job: tuple[Path, User, int, int]) -> None:
    """Write ``count`` conversations for one user (runs in a worker process)."""
    data_dir, user, count, seed = job
    rng = random.Random(seed)
    store = ChatStore(chats_dir(data_dir, user), DocumentLimits())
    for _ in range(count):
        conversation = store.new("m", GenerationParams(max_new_tokens=1024))
        conversation.messages = conversation_messages(rng)
        store.save(conversation)


def team(size: int) -> list[User]:
    return [User(user_id=user_id_for(ISSUER, f"user-{n}"), role="member") for n in range(size)]


def build(data_dir: Path, users: list[User], count: int, workers: int) -> float:
    jobs = [(data_dir, user, count, seed) for seed, user in enumerate(users)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(fill_user, jobs):
            pass
    return time.perf_counter() - started


def time_store_list(data_dir: Path, user: User, expected: int, runs: int) -> None:
    cold, warm = [], []
    for _ in range(runs):
        store = ChatStore(chats_dir(data_dir, user), DocumentLimits())
        cold.append(timed_list(store, expected))
        warm.append(timed_list(store, expected))
    report(f"store.list(), new store, {expected} conversations", cold)
    report(f"store.list(), same store again, {expected} conversations", warm)
    verdict(f"store.list() cold median {statistics.median(cold):.3f} s", statistics.median(cold))


def timed_list(store: ChatStore, expected: int) -> float:
    started = time.perf_counter()
    listed = store.list()
    elapsed = time.perf_counter() - started
    if len(listed) != expected:
        raise SystemExit(f"listed {len(listed)} conversations, expected {expected}")
    return elapsed


def time_page(base: Path, expected: int, runs: int) -> None:
    """The Chat page opened under AppTest, over the built folder and over an empty one."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def open_page(profile: Path, *, restart: bool = True) -> float:
        os.environ["CHATVLM_CONFIG"] = str(profile)
        if restart:  # a fresh server process: no store, no profile cached
            st.cache_resource.clear()
            st.cache_data.clear()
        at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
        started = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - started
        if at.exception:
            raise SystemExit(f"the page failed: {[e.value for e in at.exception]}")
        listed = [box for box in at.sidebar.selectbox if box.label == "Open"]
        count = len(listed[0].options) if listed else 0
        if count != (expected if profile.parent != empty else 0):
            raise SystemExit(f"the page listed {count} conversations")
        return elapsed

    # Outside a server, clearing caches and running pages warn on every open.
    logging.disable(logging.WARNING)
    empty = base / "empty"
    empty.mkdir()
    full_profile = write_test_profile(base)  # its data folder is base/results
    empty_profile = write_test_profile(empty)
    first = open_page(full_profile)
    print(f"page, first open (imports the app): {first:.3f} s")
    # Interleaved, so a busy moment of the machine hits both series alike.
    full, bare = [], []
    for _ in range(runs):
        full.append(open_page(full_profile))
        bare.append(open_page(empty_profile))
    warm = [open_page(full_profile, restart=False) for _ in range(runs)]
    report(f"page, {expected} conversations, caches cleared", full)
    report("page, no conversations, caches cleared", bare)
    report(f"page, {expected} conversations, a later visit (store cached)", warm)
    added = statistics.median(full) - statistics.median(bare)
    verdict(f"the page lists {expected} conversations in {added:.3f} s more (medians)", added)


def report(what: str, seconds: list[float]) -> None:
    print(f"{what}: best {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s")


def verdict(what: str, seconds: float) -> None:
    print(f"{'PASS' if seconds < GOAL_S else 'FAIL'}: {what} (goal < {GOAL_S} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--no-page", action="store_true", help="skip the AppTest timing")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="chat_users_scale_"))
    try:
        print(f"data folder: {base / 'results'}")
        data_dir = base / "results"
        users = team(args.users)
        seconds = build(data_dir, [*users, LOCAL_USER], args.conversations, args.workers)
        total = (args.users + 1) * args.conversations
        print(
            f"built {args.users} users + the local operator x {args.conversations} "
            f"conversations ({total:,} files) in {seconds:.1f} s with {args.workers} workers"
        )
        time_store_list(data_dir, users[len(users) // 2], args.conversations, args.runs)
        if not args.no_page:
            time_page(base, args.conversations, args.runs)
    finally:
        # The endpoint monitor the page started keeps appending under results/monitor
        # from its own thread until this process ends: a file it adds mid-removal makes
        # one pass fail, so try a few.
        for _ in range(5):
            shutil.rmtree(base, ignore_errors=True)
            if not base.exists():
                break
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
