"""Sign-in and roles as the pages apply them, under AppTest with a seeded ``st.user``
(the real OpenID Connect round trip is in tests/e2e/test_sign_in.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT
from testkit.apptest import shown
from testkit.profiles import write_test_profile
from utils.auth import user_id_for
from utils.auth.audit import AuditLog

APP = str(REPO_ROOT / "app.py")
ISSUER = "http://127.0.0.1:9/idp"
ROLES = """\
auth:
  mode: oidc
  default_role: deny
  roles:
    admin: {emails: [ada@example.com]}
    member: {groups: [staff]}
    viewer: {emails: [vic@example.com]}
"""
AUTH_SECRETS = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "chatvlm",
        "client_secret": "not-a-secret",
        "server_metadata_url": f"{ISSUER}/.well-known/openid-configuration",
    }
}


@pytest.fixture
def team_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    profile = write_test_profile(tmp_path, ROLES)
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    return tmp_path / "results"


def app_as(claims: dict | None, secrets: dict | None = AUTH_SECRETS) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if secrets:
        at.secrets = secrets
    at.user = {"is_logged_in": False} if claims is None else {"is_logged_in": True, **claims}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def claims(sub: str, email: str, **more) -> dict:
    return {"iss": ISSUER, "sub": sub, "email": email, "email_verified": True, **more}


def buttons(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def test_a_visitor_sees_only_the_sign_in_button(team_profile: Path) -> None:
    at = app_as(None)
    assert "🔑 Sign in" in buttons(at)
    assert not at.chat_input and not at.dataframe and not at.tabs
    at.switch_page("app_pages/chat.py").run()  # a direct link to a page: still the sign-in
    assert "🔑 Sign in" in buttons(at) and not at.chat_input


def test_sign_in_without_settings_says_how_to_add_them(team_profile: Path) -> None:
    at = app_as(None, secrets=None)
    assert any("no sign-in settings" in shown(e.value) for e in at.error)
    assert any("cli.py auth init" in shown(c.value) for c in at.caption)


def test_a_viewer_gets_the_benchmarks_page_only_without_actions(team_profile: Path) -> None:
    at = app_as(claims("v1", "vic@example.com"))
    assert at.title[0].value.startswith("📊")
    assert not any("Start a run" in e.label for e in at.expander)
    assert "🚪 Sign out" in buttons(at)
    assert any("role: viewer" in shown(c.value) for c in at.sidebar.caption)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/chat.py")  # not in the viewer's navigation


def test_a_member_chats_but_gets_no_admin_tools(team_profile: Path) -> None:
    at = app_as(claims("m1", "max@example.com", groups=["staff"]))
    assert at.title[0].value.startswith("💬")
    at.switch_page("app_pages/models.py").run()
    labels = [tab.label for tab in at.tabs]
    assert "📜 Audit log" not in labels and "🧩 Loaded" not in labels
    assert "🔄 Check now" not in buttons(at) and "🧹 Clear cache" not in buttons(at)


def test_an_unverified_admin_address_is_not_an_admin(team_profile: Path) -> None:
    at = app_as({**claims("x1", "ada@example.com"), "email_verified": False})
    assert any("has no access" in shown(e.value) for e in at.error)


def test_an_admin_sees_the_audit_log_with_sign_ins_and_refusals(team_profile: Path) -> None:
    app_as(claims("nobody", "eve@example.com"))  # denied: logged
    at = app_as(claims("a1", "ada@example.com"))
    at.switch_page("app_pages/models.py").run()
    assert "📜 Audit log" in [tab.label for tab in at.tabs]
    entries = AuditLog(team_profile).recent()  # newest first
    assert [(e.event, e.outcome, e.user) for e in entries] == [
        ("check model status", "ok", "ada@example.com"),  # the page's first check
        ("sign-in", "ok", "ada@example.com"),
        ("sign-in", "denied", "eve@example.com"),
    ]
    assert entries[1].user_id == user_id_for(ISSUER, "a1")
    audit_table = at.dataframe[-1].value
    assert list(audit_table["event"]) == [e.event for e in entries]


def test_each_user_has_their_own_folder(team_profile: Path) -> None:
    app_as(claims("m1", "max@example.com", groups=["staff"]))
    account = team_profile / "users" / user_id_for(ISSUER, "m1") / "account.json"
    assert account.is_file()


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.10", ""])
def test_no_sign_in_on_a_network_address_is_refused(temp_profile: Path, address: str) -> None:
    streamlit_config.set_option("server.address", address or None)
    try:
        at = app_as(None, secrets=None)
    finally:
        streamlit_config.set_option("server.address", "127.0.0.1")
    assert any("refusing to serve without sign-in" in shown(e.value) for e in at.error)
    assert not at.chat_input and not at.title


def test_the_first_admin_to_sign_in_adopts_the_single_user_data(team_profile: Path) -> None:
    legacy = team_profile / "chats"
    legacy.mkdir(parents=True)
    (legacy / "0123456789abcdef0123456789abcdef.json").write_text("{}", encoding="utf-8")
    app_as(claims("m1", "max@example.com", groups=["staff"]))  # a member adopts nothing
    assert (legacy / "0123456789abcdef0123456789abcdef.json").exists()
    app_as(claims("a1", "ada@example.com"))
    mine = team_profile / "users" / user_id_for(ISSUER, "a1") / "chats"
    assert (mine / "0123456789abcdef0123456789abcdef.json").read_text() == "{}"
    assert not (legacy / "0123456789abcdef0123456789abcdef.json").exists()


def test_the_server_monitor_polls_shared_servers_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member's own server stays theirs: the process's poller (one for everybody) never
    polls it, while a server added to the shared profile is polled from the next run on."""
    import ui
    from models.config import load_config, user_overrides_path

    profile = write_test_profile(tmp_path, ROLES, monitor=True)
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    data_dir = load_config(profile).config.data_dir
    own = data_dir / "users" / user_id_for(ISSUER, "m1") / "overrides.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("endpoints:\n  mine:\n    base_url: http://127.0.0.1:9/mine/v1\n")
    try:
        at = app_as(claims("m1", "max@example.com", groups=["staff"]))
        at.run()  # the tab's user is known before the profile is read
        monitor = ui._monitor(str(data_dir), None)  # this process's, made by the app
        assert "mine" not in monitor.poller.urls and "vllm" in monitor.poller.urls
        user_overrides_path(data_dir).write_text(
            "endpoints:\n  shared:\n    base_url: http://127.0.0.1:9/shared/v1\n"
        )
        at.run()
        assert "shared" in monitor.poller.urls and "mine" not in monitor.poller.urls
        at.switch_page("app_pages/models.py").run()
        assert not at.exception, [e.value for e in at.exception]
        notes = [shown(c.value) for c in at.caption]
        assert any(n.startswith("Not monitored: your own server(s) mine.") for n in notes), notes
        assert any(n.startswith("http://127.0.0.1:9/shared/v1") for n in notes), notes
    finally:
        ui._monitor(str(data_dir), None).close()
        ui._monitor.clear()
