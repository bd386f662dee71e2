"""The Models page's live view of the model servers: numbers and a short history.

The numbers come from the history the app's background poller writes (one poller
per data folder), so an open page only reads files; it re-reads them every poll
interval (``st.fragment(run_every=...)``) without rerunning the rest of the page.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

import ui
from models.config import AppConfig
from utils.monitor.points import ServerPoint
from utils.monitor.views import history_frame, latest_state, recent_points

HOURS = {"last 15 min": 0.25, "last hour": 1.0, "last 6 hours": 6.0}


def show_servers_tab(config: AppConfig, own: AppConfig) -> None:
    """The shared profile's servers (``config``): the ones the app polls. ``own`` is this
    user's profile; servers only it names are theirs and never polled."""
    unpolled = sorted(set(own.endpoints) - set(config.endpoints))
    if unpolled:
        st.caption(
            "Not monitored: your own server(s) "
            + ", ".join(ui.untrusted(key) for key in unpolled)
            + ". The app polls only the servers everybody shares."
        )
    if not config.endpoints:
        st.caption("The profile names no model servers (`endpoints:`).")
        return
    if not config.monitor.enabled:
        st.caption("Server monitoring is off in the profile (`monitor.enabled: false`).")
        return
    span = st.radio("History", list(HOURS), horizontal=True, key="servers_span")
    every = timedelta(seconds=config.monitor.interval_s)
    st.fragment(run_every=every)(_live_servers)(config, HOURS[span])


def _live_servers(config: AppConfig, hours: float) -> None:
    for key, endpoint in config.endpoints.items():
        points = recent_points(config, key, hours)
        st.subheader(f"🖧 {ui.untrusted(key)}")
        st.caption(
            ui.untrusted(endpoint.base_url)
            + " · "
            + ui.untrusted(latest_state(points, config.monitor.interval_s))
        )
        if points and points[-1].up and points[-1].exposes_metrics:
            _numbers(points[-1])
            st.line_chart(history_frame(points), height=220)


def _numbers(point: ServerPoint) -> None:
    cols = st.columns(5)
    cols[0].metric("Running / waiting", f"{_n(point.running)} / {_n(point.waiting)}")
    cols[1].metric("KV cache", _pct(point.kv_cache))
    cols[2].metric(
        "Tokens/s (gen · prompt)", f"{_n(point.generation_tps)} · {_n(point.prompt_tps)}"
    )
    cols[3].metric("TTFT p50 · p95", f"{_s(point.ttft_p50)} · {_s(point.ttft_p95)}")
    cols[4].metric("Latency p50 · p95", f"{_s(point.e2e_p50)} · {_s(point.e2e_p95)}")


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"
