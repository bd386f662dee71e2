"""Sign-in end to end: a real OpenID Connect provider (oidc-provider-mock) on 127.0.0.1,
the app with ``auth.mode: oidc`` and Streamlit's own ``st.login``, driven in headless
Chromium through the provider's authorize page, the code exchange and the signed
identity cookie.

One provider and one app server serve the whole module; every test signs in through
fresh browser contexts (a context is one browser: its own cookies, its own sessions).
The accounts and what the profile gives them:

- alice, bob: members by e-mail. Alice chats and runs OCR once (``alice_work``); bob
  must see none of it, whichever way he asks.
- vera: a viewer by group (``groups`` claim): benchmark results only.
- mallory: named by no rule, and ``default_role: deny``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testkit import e2e_harness as h
from testkit.oidc import PROVIDER_PAGE_ASSETS, OidcProvider, write_auth_secrets
from testkit.profiles import fake_server_model_yaml, write_test_profile
from testkit.synthetic_runs import synthetic_manifest, write_run
from tests.e2e.conftest import save_failure_artifacts
from tests.e2e.test_pages import receipt_png
from utils.auth.identity import user_id_for
from utils.auth.user_data import CHATS_DIR_NAME, OCR_DIR_NAME, user_root_by_id
from utils.bench import store
from utils.bench.records import ItemRecord
from utils.bench.scoring import build_summary, score_prediction
from utils.storage import utc_now_iso

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Account:
    sub: str
    email: str
    groups: tuple[str, ...] = ()

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {"email": self.email, "email_verified": True}
        if self.groups:
            claims["groups"] = list(self.groups)
        return claims


ALICE = Account("alice", "alice@example.test")
BOB = Account("bob", "bob@example.test")
VERA = Account("vera", "vera@example.test", groups=("auditors",))
MALLORY = Account("mallory", "mallory@example.test")
ACCOUNTS = (ALICE, BOB, VERA, MALLORY)

AUTH_YAML = f"""auth:
  mode: oidc
  roles:
    member:
      emails: [{ALICE.email}, {BOB.email}]
    viewer:
      groups: [auditors]
  default_role: deny
"""
ALICE_QUESTION = "Alice's private question about the quarterly figures (e2e-sign-in)"
BENCH_RUN_ID = "20250101T000000Z-5e1f00"
BENCH_RUN_NAME = "alice's team run"
AUTH_COOKIE = "_streamlit_user"  # Streamlit's signed identity cookie
NAV_LINK = '[data-testid="stSidebarNavLink"]'
CHAT_INPUT = '[data-testid="stChatInput"]'
SIGNED_IN_OR_REFUSED = re.compile(r"Signed in as|has no access")
# What would change something on the Benchmarks page; a viewer must get none of it.
CHANGING_BUTTONS = ("Start", "Rename", "Resume", "Delete for good", "🔁 Re-score")
CHANGING_EXPANDERS = ("Start a run", "Rename, delete or resume a run")


@dataclass(frozen=True)
class AliceWork:
    conversation_id: str
    ocr_run_id: str


# -- servers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def oidc_provider(
    e2e_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProvider]:
    folder = tmp_path_factory.mktemp("e2e_oidc")
    with OidcProvider(folder / "oidc.log") as provider:
        for account in ACCOUNTS:
            provider.register_user(account.sub, account.claims())
        yield provider


@pytest.fixture(scope="module")
def chat_model_server(e2e_ready: None) -> Iterator[Any]:
    from testkit.fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer(models=("fake-vlm",)) as server:  # answers "echo: <question> ..."
        yield server


@pytest.fixture(scope="module")
def auth_server(
    tmp_path_factory: pytest.TempPathFactory,
    oidc_provider: OidcProvider,
    chat_model_server: Any,
    browser: Any,
) -> Iterator[h.AppServer]:
    """The app with sign-in on, a chat model on the fake server, and one benchmark run
    that alice owns (what vera may read)."""
    folder = tmp_path_factory.mktemp("e2e_sign_in")
    profile = write_test_profile(
        folder, fake_server_model_yaml(chat_model_server.base_url) + AUTH_YAML
    )
    seed_benchmark_run(folder / "results", user_id_for(oidc_provider.issuer, ALICE.sub))
    port = h.free_port()
    secrets = write_auth_secrets(
        folder / "secrets.toml", f"http://{h.LOCAL_HOST}:{port}", oidc_provider
    )
    server = h.AppServer(profile, folder / "server.log", port=port, secrets_file=secrets)
    with server:
        # The first run of a fresh server must be the root URL (see test_navigation.py).
        context, page = h.new_page(browser, h.PageWatch())
        h.open_page(page, server, "/")
        context.close()
        yield server


def seed_benchmark_run(data_dir: Path, owner_id: str) -> None:
    """A finished one-item run of alice's, written as the runner leaves one."""
    manifest = synthetic_manifest(BENCH_RUN_ID, 1, ["rapidocr"], BENCH_RUN_NAME).model_copy(
        update={"owner_id": owner_id, "owner": ALICE.email}
    )
    metrics, correct = score_prediction("TOTAL 10.00", {}, "TOTAL 10.00", None, False)
    record = ItemRecord(
        run_id=BENCH_RUN_ID,
        engine="rapidocr",
        item_id="receipt",
        status="ok",
        prediction="TOTAL 10.00",
        truth_text="TOTAL 10.00",
        metrics=metrics,
        fields_correct=correct,
        seconds=0.5,
        pages=1,
        finished_at=utc_now_iso(),
    )
    write_run(data_dir, manifest, [record])
    store.write_summary(data_dir, build_summary(manifest, [record]))


def data_dir(server: h.AppServer) -> Path:
    return server.profile.parent / "results"


# -- browser sessions ------------------------------------------------------------


@pytest.fixture
def new_session(
    browser: Any, auth_server: h.AppServer, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Any]]:
    """Opens a fresh browser context and page per call. After the test: a screenshot
    of each page if it failed, and no page may have reached a host but 127.0.0.1."""
    opened: list[tuple[Any, Any, h.PageWatch]] = []

    def open_session() -> Any:
        watch = h.PageWatch()
        context, page = h.new_page(browser, watch)
        opened.append((context, page, watch))
        return page

    yield open_session
    failed = getattr(request.node, "rep_call", None)
    for index, (context, page, watch) in enumerate(opened):
        if failed is not None and failed.failed:
            save_failure_artifacts(f"{request.node.name}-{index}", page, auth_server)
        context.close()
        assert_stayed_local(watch)


def assert_stayed_local(watch: h.PageWatch) -> None:
    """Nothing but the provider's own stylesheet was asked of a host beyond 127.0.0.1."""
    foreign = [url for url in watch.foreign_requests() if url not in PROVIDER_PAGE_ASSETS]
    assert not foreign, f"a page made requests beyond 127.0.0.1: {foreign[:10]}"


def sign_in(page: Any, server: h.AppServer, account: Account) -> None:
    """Through the sign-in page and the provider's authorize form, back to the app."""
    h.open_page(page, server, "/")
    page.get_by_role("button", name="🔑 Sign in").click()  # leaves the app for the provider
    page.locator('input[name="sub"]').fill(account.sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.get_by_text(SIGNED_IN_OR_REFUSED).first.wait_for(timeout=h.SLOW_MS)
    h.settle(page)


def sign_out(page: Any) -> None:
    """The app's Sign out; then the provider's end-session page, which asks to confirm."""
    page.get_by_role("button", name="🚪 Sign out").click()
    page.get_by_role("button", name="End session").click()
    page.get_by_role("button", name="🔑 Sign in").wait_for(timeout=h.SLOW_MS)
    h.settle(page)


def expect_sign_in_page(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="🔑 Sign in")).to_be_visible()
    expect(page.locator(NAV_LINK)).to_have_count(0)
    expect(page.get_by_text("Signed in as")).to_have_count(0)
    expect(page.locator(CHAT_INPUT)).to_have_count(0)


def nav_names(page: Any) -> list[str]:
    return [" ".join(link.split()) for link in page.locator(NAV_LINK).all_inner_texts()]


# -- alice's data ------------------------------------------------------------------


@pytest.fixture(scope="module")
def alice_work(browser: Any, auth_server: h.AppServer) -> Iterator[AliceWork]:
    """Alice signs in, asks one question and reads one receipt, as a member does."""
    watch = h.PageWatch()
    context, page = h.new_page(browser, watch)
    try:
        sign_in(page, auth_server, ALICE)
        conversation_id = ask(page, ALICE_QUESTION)
        ocr_run_id = read_receipt(page, auth_server)
    except Exception:
        save_failure_artifacts("alice_work", page, auth_server)
        raise
    finally:
        context.close()
    assert_stayed_local(watch)
    yield AliceWork(conversation_id, ocr_run_id)


def ask(page: Any, question: str) -> str:
    """Send ``question`` in a new chat; returns the conversation id the URL names."""
    h.choose(page, "Model", "Fake VLM")
    h.chat_send(page, question)
    answer = page.locator('[data-testid="stChatMessage"]').filter(has_text="echo: ")
    answer.first.wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    page.wait_for_url(re.compile(r"[?&]c=[^&]+"))
    return re.search(r"[?&]c=([^&]+)", page.url).group(1)


def read_receipt(page: Any, server: h.AppServer) -> str:
    """One OCR run of a rendered receipt; returns the run id the page shows."""
    h.open_page(page, server, "/ocr")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [h.png_payload("receipt.png", receipt_png())]
    )
    h.settle(page)
    h.click_button(page, "Run OCR")
    page.get_by_text("1 of 1 file(s) read").wait_for(timeout=h.SLOW_MS)
    heading = page.get_by_role("heading", name=re.compile(r"^Run \S+$")).inner_text()
    return heading.split()[-1]


# -- tests -----------------------------------------------------------------------


def test_anonymous_visitor_reaches_no_page(
    new_session: Callable[[], Any], auth_server: h.AppServer, alice_work: AliceWork
) -> None:
    page = new_session()
    # "/" is every test's first step; app.py stops before any page exists, whatever the URL.
    for path in (f"/chat?c={alice_work.conversation_id}", "/ocr", "/models"):
        h.open_page(page, auth_server, path)
        expect_sign_in_page(page)
        assert ALICE_QUESTION not in page.locator("body").inner_text(), path
        assert not page.get_by_role("button", name="Run OCR").count(), path


def test_members_see_only_their_own_conversations_and_ocr_runs(
    new_session: Callable[[], Any],
    auth_server: h.AppServer,
    oidc_provider: OidcProvider,
    alice_work: AliceWork,
) -> None:
    from playwright.sync_api import expect

    alice_id = user_id_for(oidc_provider.issuer, ALICE.sub)
    alice_root = user_root_by_id(data_dir(auth_server), alice_id)
    assert (alice_root / CHATS_DIR_NAME / f"{alice_work.conversation_id}.json").is_file()
    assert (alice_root / OCR_DIR_NAME / f"{alice_work.ocr_run_id}.json").is_file()
    assert not list(data_dir(auth_server).glob(f"chats/{alice_work.conversation_id}*"))

    bob = new_session()
    sign_in(bob, auth_server, BOB)
    expect(bob.get_by_text(f"Signed in as {BOB.email} · role: member")).to_be_visible()
    expect(bob.get_by_text(ALICE_QUESTION)).to_have_count(0)

    h.open_page(bob, auth_server, f"/?c={alice_work.conversation_id}")
    expect(bob.get_by_text("There is no conversation")).to_be_visible()
    expect(bob.get_by_text(ALICE_QUESTION)).to_have_count(0)
    expect(bob.get_by_role("button", name=re.compile("quarterly figures"))).to_have_count(0)

    h.open_page(bob, auth_server, "/ocr")
    expect(bob.get_by_role("heading", name="Previous runs")).to_have_count(0)
    assert alice_work.ocr_run_id not in bob.locator("body").inner_text()

    # The same links work for alice herself: what bob missed is there to be missed.
    alice = new_session()
    sign_in(alice, auth_server, ALICE)
    h.open_page(alice, auth_server, f"/?c={alice_work.conversation_id}")
    expect(alice.get_by_text(ALICE_QUESTION, exact=True)).to_be_visible()
    h.open_page(alice, auth_server, "/ocr")
    expect(alice.get_by_role("heading", name="Previous runs")).to_be_visible()


def test_viewer_reads_benchmarks_and_can_change_nothing(
    new_session: Callable[[], Any], auth_server: h.AppServer
) -> None:
    from playwright.sync_api import expect

    page = new_session()
    sign_in(page, auth_server, VERA)
    expect(page.get_by_text(f"Signed in as {VERA.email} · role: viewer")).to_be_visible()
    # One page: Streamlit may show no menu at all; either way nothing but Benchmarks.
    assert set(nav_names(page)) <= {"📊 Benchmarks"}, nav_names(page)
    expect(page.get_by_role("heading", name="📊 Benchmarks")).to_be_visible()
    runs = h.grid_rows(page, h.grid_with_column(page, "name").first)
    assert any(BENCH_RUN_NAME in row for row in runs), runs
    # Alice's run is open below (its numbers, its items): what a re-score would act on.
    expect(page.get_by_role("heading", name="One run")).to_be_visible()
    expect(page.get_by_role("heading", name="One item")).to_be_visible()
    for name in CHANGING_BUTTONS:
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    for title in CHANGING_EXPANDERS:
        expect(page.locator("summary", has_text=title)).to_have_count(0)

    h.open_page(page, auth_server, "/chat")  # not in a viewer's navigation
    expect(page.locator(CHAT_INPUT)).to_have_count(0)


def test_sign_out_ends_access(new_session: Callable[[], Any], auth_server: h.AppServer) -> None:
    page = new_session()
    sign_in(page, auth_server, BOB)
    sign_out(page)
    expect_sign_in_page(page)
    assert AUTH_COOKIE not in {cookie["name"] for cookie in page.context.cookies()}
    page.reload()
    page.locator("h1").first.wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    expect_sign_in_page(page)


def test_tampered_identity_cookie_means_signed_out(
    new_session: Callable[[], Any], auth_server: h.AppServer
) -> None:
    from playwright.sync_api import expect

    page = new_session()
    sign_in(page, auth_server, BOB)
    h.open_page(page, auth_server, "/")  # a new session: the intact cookie signs it in
    expect(page.get_by_text(f"Signed in as {BOB.email}")).to_be_visible()

    context = page.context
    cookie = next(c for c in context.cookies() if c["name"] == AUTH_COOKIE)
    context.add_cookies([{**cookie, "value": flip_middle(cookie["value"])}])
    h.open_page(page, auth_server, "/")
    expect_sign_in_page(page)


def test_account_without_a_role_has_no_access(
    new_session: Callable[[], Any], auth_server: h.AppServer
) -> None:
    from playwright.sync_api import expect

    page = new_session()
    sign_in(page, auth_server, MALLORY)
    expect(page.get_by_text("has no access")).to_be_visible()
    expect(page.locator(NAV_LINK)).to_have_count(0)
    expect(page.locator(CHAT_INPUT)).to_have_count(0)
    page.goto(auth_server.url + "/ocr")
    page.get_by_text("has no access").wait_for(timeout=h.SLOW_MS)
    h.settle(page)
    expect(page.get_by_role("button", name="Run OCR")).to_have_count(0)


# -- helpers -----------------------------------------------------------------------


def flip_middle(value: str) -> str:
    """``value`` with a few characters in its middle changed (same alphabet and length),
    so the signature no longer matches what it signs."""
    middle = len(value) // 2
    changed = "".join("B" if char == "A" else "A" for char in value[middle : middle + 4])
    return value[:middle] + changed + value[middle + 4 :]
