"""Alerts in the app: a banner on every page while a rule fires, a toast for each new
event, and the Models page's list. Everything here reads the alert files the
background monitor writes; no page evaluates a rule."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

import ui
from models.config import AppConfig
from utils.monitor.alerts import firing, recent_events

_LAST_SEEN_KEY = "alerts_last_seen_at"
_TOASTS_PER_RUN = 3


def show_banner(config: AppConfig) -> None:
    """What fires now, above the page, for every signed-in user; new events as toasts."""
    if not config.alerts.rules:
        return
    now_firing = firing(config.data_dir)
    if now_firing:
        names = ", ".join(ui.untrusted(key) for key in sorted(now_firing))
        st.warning(f"🚨 {len(now_firing)} alert(s) firing: {names} · details on the Models page")
    _toast_new_events(config)


def _toast_new_events(config: AppConfig) -> None:
    events = recent_events(config.data_dir, limit=_TOASTS_PER_RUN)
    last_seen = st.session_state.get(_LAST_SEEN_KEY)
    if events:
        st.session_state[_LAST_SEEN_KEY] = events[0].at
    if last_seen is None:  # a new tab: only what happens from now on
        return
    for event in reversed([e for e in events if e.at > last_seen]):
        icon = {"fired": "🚨", "resolved": "✅", "notice": "📣"}[event.state]
        st.toast(ui.untrusted(event.message), icon=icon)


def show_alerts_tab(config: AppConfig) -> None:
    if not config.alerts.rules:
        st.caption("No alert rules in the profile (`alerts.rules`); the README shows examples.")
        return
    now_firing = firing(config.data_dir)
    if now_firing:
        ui.table(
            [
                {"rule / server": key, "since": _when(state.since), "value": state.value}
                for key, state in sorted(now_firing.items())
            ]
        )
    else:
        st.success("No alert is firing.")
    events = recent_events(config.data_dir, limit=100)
    if events:
        st.caption("Newest events")
        ui.table(
            [{"at": _when(e.at), "state": e.state, "event": e.message} for e in events],
            width="stretch",
        )
    hooks = len(config.alerts.webhooks)
    st.caption(f"{len(config.alerts.rules)} rule(s) · {hooks} webhook(s) · `python cli.py monitor`")


def _when(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
