"""Who is using this browser tab: sign-in, the refusal of a denied account, sign-out.

``auth.mode: none``: the local operator, no sign-in. ``auth.mode: oidc``: Streamlit's
own ``st.login`` (any OpenID Connect provider; settings and secrets in
``.streamlit/secrets.toml``). The identity cookie is signed with the cookie secret;
Streamlit treats a tampered one as signed out.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

import ui
from models.config import AppConfig
from utils.auth import LOCAL_USER, Action, User, can, user_from_claims, user_id_for
from utils.auth.accounts import remember_account
from utils.auth.adoption import adopt_single_user_data
from utils.auth.audit import AuditLog
from utils.errors import AppError

_SEEN_KEY = "auth_sign_in_recorded"  # the sign-in this session already logged


def signed_in_user(config: AppConfig) -> User:
    """The user of this tab; shows the sign-in page (and stops the run) until there is one."""
    if config.auth.mode == "none":
        return LOCAL_USER
    if not _auth_secrets_present():
        _stop_unconfigured()
    if not st.user.is_logged_in:
        _stop_at_sign_in(config)
    claims = st.user.to_dict()
    try:
        user = user_from_claims(claims, config.auth)
    except ValueError as exc:
        _stop_denied(f"The sign-in did not say who you are ({ui.untrusted(exc)}).")
    _record_sign_in(config, claims, user)
    if user is None:
        _stop_denied(
            f"Your account ({ui.untrusted(claims.get('email') or claims.get('sub'))}) has no "
            "access to this app. Ask an admin to give it a role."
        )
    return user


def show_account(user: User) -> None:
    """The sidebar's who-am-I line and, with sign-in on, the sign-out button."""
    if user.is_local:
        return
    st.caption(f"Signed in as {ui.untrusted(user.label)} · role: {user.role}")
    if st.button("🚪 Sign out", key="auth_sign_out"):
        AuditLog(ui.profile().config.data_dir).record(user, "sign-out")
        st.session_state.pop(_SEEN_KEY, None)
        st.logout()


def _auth_secrets_present() -> bool:
    try:
        return "auth" in st.secrets
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return False


def _stop_unconfigured() -> None:
    st.error("Sign-in is on (auth.mode: oidc) but this server has no sign-in settings.")
    st.caption(
        "What to do: run `python cli.py auth init --client-id ID --server-metadata-url URL "
        "--redirect-uri URL` on the server (it writes .streamlit/secrets.toml), then restart."
    )
    st.stop()


def _stop_at_sign_in(config: AppConfig) -> None:
    st.title("📄 " + ui.untrusted(config.app.title))
    st.write("Sign in with your organisation's account to use this app.")
    if st.button("🔑 Sign in", key="auth_sign_in", type="primary"):
        st.login()
    st.stop()


def _stop_denied(message: str) -> None:
    st.error(message)
    if st.button("🚪 Sign out", key="auth_sign_out_denied"):
        st.session_state.pop(_SEEN_KEY, None)
        st.logout()
    st.stop()


def _record_sign_in(config: AppConfig, claims: dict[str, Any], user: User | None) -> None:
    """Log each sign-in once (a new ID token), not every rerun or every new tab."""
    token_time = (str(config.data_dir), claims.get("iss"), claims.get("sub"), claims.get("iat"))
    if st.session_state.get(_SEEN_KEY) == token_time or token_time in _sign_ins_logged():
        st.session_state[_SEEN_KEY] = token_time
        return
    st.session_state[_SEEN_KEY] = token_time
    _sign_ins_logged().add(token_time)
    audit = AuditLog(config.data_dir)
    if user is None:
        user_id = user_id_for(str(claims["iss"]), str(claims["sub"]))
        label = str(claims.get("email") or claims.get("sub"))
        audit.record_refused_account(user_id, label, "the profile gives this account no role")
        return
    remember_account(config.data_dir, claims, config.auth.groups_claim)
    audit.record(user, "sign-in")
    if can(user, Action.ADOPT_DATA):
        _adopt_single_user_data(config, user)


def _adopt_single_user_data(config: AppConfig, admin: User) -> None:
    """The first admin to sign in takes over the conversations and OCR runs the app kept
    before sign-in was on (moved, never copied; a second call is a no-op)."""
    try:
        result = adopt_single_user_data(config.data_dir, admin)
    except AppError as exc:
        ui.show_error(exc)
        return
    if result.moved or result.conflicts:
        st.toast(
            f"Your account took over {len(result.moved)} file(s) the app kept before sign-in "
            "(conversations, OCR runs)."
        )


@st.cache_resource(show_spinner=False)
def _sign_ins_logged() -> set[tuple[Any, ...]]:
    """The sign-ins this server process has logged (shared by every tab)."""
    return set()
