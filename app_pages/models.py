"""The Models page: what can run here and why not, loaded models, downloads, hardware, cache."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

import ui
from app_pages.alerts_view import show_alerts_tab
from app_pages.server_metrics import show_servers_tab
from models.runtime.hub import hub_offline
from models.runtime.manager import get_manager
from models.runtime.memory import format_bytes, memory_pool
from utils.auth import Action
from utils.errors import AppError
from utils.system.admin import (
    clear_cache,
    download_model,
    load_model,
    run_status_check,
    unload_model,
)
from utils.system.hardware import HardwareFacts, detect_hardware, process_memory, recommend_profile
from utils.system.model_status import (
    StatusReport,
    read_history,
    read_status,
)

loaded = ui.profile()
config = loaded.config
user = ui.current_user()
AUDIT_ROWS = 200
RECHECK_KEY = "models_page_recheck"
NOTICE_KEY = "models_page_notice"


def run_check() -> StatusReport | None:
    with st.spinner("Checking engines, local weights and servers…"):
        try:
            return run_status_check(config, user, profile=str(loaded.source))
        except AppError as exc:
            ui.show_error(exc)
    return None


def last_report() -> StatusReport | None:
    """The status file's report if it belongs to this catalog; corrupt -> error shown, None."""
    try:
        report = read_status(config)
    except AppError as exc:
        ui.show_error(exc)
        return None
    same_catalog = report is not None and [m.model_id for m in report.models] == list(config.models)
    if not same_catalog or report.profile != str(loaded.source):
        return None  # first visit, or the file was written for another profile
    return report


def catalog_rows(report: StatusReport) -> list[dict]:
    return [
        {
            "ok": "✅" if check.available else "⚠️",
            "id": check.model_id,
            "name": check.display_name,
            "backend": check.backend,
            "task": check.task,
            "source": check.source or "built in",
            "quantization": config.models[check.model_id].quantization,
            "size on disk": format_bytes(check.size_bytes) if check.size_bytes else "",
            "latency (ms)": check.latency_ms,
            "found": check.detail,
            "what to do": check.fix or "",
        }
        for check in report.models
    ]


def show_catalog(report: StatusReport) -> None:
    ui.table(
        catalog_rows(report),
        column_config={
            "ok": st.column_config.TextColumn("", width="small"),
            "latency (ms)": st.column_config.NumberColumn(format="%.0f"),
            "found": st.column_config.TextColumn(width="large"),
            "what to do": st.column_config.TextColumn(width="large"),
        },
    )
    missing = [check for check in report.models if not check.available and check.enabled]
    if missing:
        with st.expander(f"What to do for the {len(missing)} unavailable entries"):
            for check in missing:
                st.markdown(
                    f"⚠️ **{ui.untrusted(check.display_name)}** "
                    f"({ui.untrusted(check.model_id)}): {ui.untrusted(check.fix)}"
                )


def show_endpoints(report: StatusReport) -> None:
    if not report.endpoints:
        return
    st.subheader("OpenAI-compatible endpoints")
    rows = []
    for endpoint in report.endpoints:
        key_env = config.endpoints[endpoint.key].api_key_env
        rows.append(
            {
                "ok": "✅" if endpoint.reachable else "⚠️",
                "id": endpoint.key,
                "base_url": endpoint.base_url,
                "latency (ms)": endpoint.latency_ms,
                "serves": ", ".join(endpoint.models),
                "api key": f"{key_env} ({'set' if os.environ.get(key_env) else 'not set'})"
                if key_env
                else "—",
                "problem": endpoint.error or "",
            }
        )
    ui.table(rows, column_config={"latency (ms)": st.column_config.NumberColumn(format="%.0f")})


def show_history() -> None:
    try:
        history = read_history(config)
    except AppError as exc:
        ui.show_error(exc)
        return
    if len(history) < 2:
        st.caption("The chart of available models over time appears after the second check.")
        return
    frame = pd.DataFrame(
        {
            "checked at": [entry.checked_at for entry in history],
            "available": [entry.available for entry in history],
            "in the catalog": [entry.total for entry in history],
        }
    )
    st.line_chart(frame, x="checked at", y=["available", "in the catalog"], y_label="models")


def show_status_tab() -> StatusReport | None:
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.success(notice)
    is_admin = ui.allowed(Action.CHECK_STATUS)
    clicked = is_admin and st.button("🔄 Check now", key="check_now")
    report = None if clicked or st.session_state.pop(RECHECK_KEY, False) else last_report()
    if report is None and is_admin:
        report = run_check()
    if report is None:
        st.info("No status check of this profile has run yet: an admin runs one on this page.")
        return None
    age = (datetime.now(UTC) - report.checked_at).total_seconds()
    st.caption(
        f"{len(report.available_ids)} of {len(report.models)} available · checked "
        f"{_ago(age)} in {report.check_seconds:.1f} s · `python cli.py models status` "
        "prints the same"
    )
    show_catalog(report)
    show_endpoints(report)
    show_history()
    return report


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now" if seconds < 5 else f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def show_loaded_tab(report: StatusReport) -> None:
    manager = get_manager(config.runtime)
    loadable = [
        c.model_id
        for c in report.models
        if c.backend == "transformers" and c.available and c.enabled
    ]
    if loadable:
        cols = st.columns([3, 1], vertical_alignment="bottom")
        chosen = cols[0].selectbox(
            "Model to load",
            loadable,
            format_func=lambda key: config.models[key].display_name,
            key="load_choice",
        )
        if cols[1].button("📥 Load", key="load_model"):
            load_chosen(chosen)
    else:
        st.caption("No in-process model has its weights here yet: download one first.")
    infos = manager.loaded()
    if not infos:
        st.caption("No model is loaded. Models also load on first use in Chat or OCR.")
    for info in infos:
        pool = memory_pool(info.device)
        cols = st.columns([3, 2, 2, 2, 1], vertical_alignment="center")
        cols[0].markdown(f"**{info.label}**  \n`{info.key}`")
        cols[1].write(f"{info.device} ({'RAM' if pool == 'ram' else pool})")
        cols[2].write(f"≈ {format_bytes(info.bytes)}")
        cols[3].write(f"loaded in {info.load_seconds:.1f} s")
        if cols[4].button("⏏️ Unload", key=f"unload_{info.key}"):
            try:
                unload_model(info.key, config, user)
            except AppError as exc:
                ui.show_error(exc)
            else:
                st.rerun()
    used = process_memory()
    vram = ", ".join(f"{dev}: {format_bytes(b)}" for dev, b in used.vram_allocated_bytes.items())
    st.caption(
        f"This app's process holds {format_bytes(used.ram_rss_bytes)} of RAM"
        + (f" and {vram} of GPU memory" if vram else "")
        + "; the sizes above are the estimates the memory budget counts."
    )


def load_chosen(model_id: str) -> None:
    name = config.models[model_id].display_name
    with st.spinner(f"Loading {name}…"):
        try:
            load_model(model_id, config, user)
        except AppError as exc:
            ui.show_error(exc)
            return
    st.success(ui.untrusted(name) + " is loaded.")


def show_download_tab(report: StatusReport) -> None:
    missing = [c.model_id for c in report.models if c.backend == "transformers" and not c.available]
    if hub_offline():
        st.info(
            "Downloads are switched off: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set. "
            "Unset it on a machine with network, or copy a model folder here and point the "
            "entry's `source:` at it."
        )
    if not missing:
        st.caption("Every in-process model of this profile is already on disk.")
        return
    cols = st.columns([3, 1], vertical_alignment="bottom")
    chosen = cols[0].selectbox(
        "Model to download into the Hugging Face cache",
        missing,
        format_func=lambda key: f"{config.models[key].display_name} ({config.models[key].source})",
        key="download_choice",
    )
    if cols[1].button("⬇️ Download", key="download_model"):
        download(chosen)


def download(model_id: str) -> None:
    source = config.models[model_id].source or ""
    bar = st.progress(0.0)
    try:
        path = download_model(
            model_id, config, user, lambda done, text: bar.progress(done, text=text)
        )
    except AppError as exc:
        bar.empty()
        ui.show_error(exc)
        return
    st.session_state[NOTICE_KEY] = f"{ui.untrusted(source)} downloaded to {ui.untrusted(path)}."
    st.session_state[RECHECK_KEY] = True
    st.rerun()


def show_hardware_tab() -> None:
    facts = detect_hardware()
    rows = [
        {
            "what": "CPU",
            "value": f"{facts.cpu_logical_cores} logical cores"
            + (f", {facts.cpu_physical_cores} physical" if facts.cpu_physical_cores else ""),
        },
        {
            "what": "RAM",
            "value": f"{format_bytes(facts.ram_available_bytes)} free of "
            f"{format_bytes(facts.ram_total_bytes)}",
        },
    ]
    for gpu in facts.cuda_devices:
        rows.append(
            {
                "what": f"GPU cuda:{gpu.index}",
                "value": f"{gpu.name}, {format_bytes(gpu.total_vram_bytes)}, "
                f"compute capability {gpu.capability_label}",
            }
        )
    rows.append({"what": "Apple MPS", "value": "available" if facts.mps_available else "no"})
    torch_line = facts.torch_version or "not installed"
    if facts.torch_cuda_version:
        torch_line += f" (CUDA {facts.torch_cuda_version})"
    rows.append({"what": "torch", "value": torch_line})
    ui.table(rows)
    if facts.gpu_note:
        st.caption(ui.untrusted(facts.gpu_note))
    show_recommendation(facts)


def show_recommendation(facts: HardwareFacts) -> None:
    advice = recommend_profile(facts)
    active = loaded.source.name
    chain = [path.name for path in loaded.chain]
    if advice.profile_file == active:
        st.success(f"The active profile `{active}` is the one for this machine: {advice.reason}.")
    elif advice.profile_file in chain:
        st.success(
            f"The active profile `{active}` builds on `{advice.profile_file}`, the one for this "
            f"machine: {advice.reason}."
        )
    else:
        st.info(
            f"Recommended for this machine: `{advice.profile_file}` — {advice.reason}. "
            f"Active: `{active}`. Switch with `CHATVLM_CONFIG={advice.profile_file} make run`."
        )


def show_cache_tab() -> None:
    try:
        cache = ui.cache(config)
        stats = cache.stats()
    except AppError as exc:
        ui.show_error(exc)
        return
    cols = st.columns(4)
    cols[0].metric("Entries", stats.entries)
    cols[1].metric("Size (MB)", f"{stats.size_bytes / 1e6:.1f}")
    cols[2].metric("Hits", stats.hits)
    cols[3].metric("Misses", stats.misses)
    st.caption(
        f"Limit {stats.max_bytes / 1e6:.0f} MB · {stats.evictions} evicted · "
        f"{stats.rejected} rejected (damaged or not signed by this app) · in "
        f"{ui.untrusted(config.cache_dir)}"
    )
    if ui.allowed(Action.CLEAR_CACHE) and st.button("🧹 Clear cache", key="clear_cache"):
        try:
            st.success(f"Removed {clear_cache(cache, config, user)} cached entries.")
        except AppError as exc:
            ui.show_error(exc)


def show_audit_tab() -> None:
    """The newest audit entries (admins only): who did what, when."""
    try:
        entries = ui.audit(config).recent(AUDIT_ROWS)
    except AppError as exc:
        ui.show_error(exc)
        return
    if not entries:
        st.caption("Nothing logged yet.")
        return
    ui.table(
        [e.model_dump(exclude={"schema_version", "user_id"}) for e in entries], width="stretch"
    )
    st.caption(f"The newest {AUDIT_ROWS} entries · all of them: `python cli.py audit`")


st.title("🧠 Models")
st.caption(f"Active profile: `{loaded.source}` (sha256 `{loaded.sha256[:12]}`)")
if ui.allowed(Action.MANAGE_MODELS):
    tabs = st.tabs(
        [
            "📋 Availability",
            "🧩 Loaded",
            "⬇️ Download",
            "🖥️ Hardware",
            "🗄️ Cache",
            "📜 Audit log",
            "📈 Servers",
            "🚨 Alerts",
        ]
    )
    with tabs[0]:
        current = show_status_tab()
    if current is not None:
        with tabs[1]:
            show_loaded_tab(current)
        with tabs[2]:
            show_download_tab(current)
    with tabs[3]:
        show_hardware_tab()
    with tabs[4]:
        show_cache_tab()
    with tabs[5]:
        show_audit_tab()
    with tabs[6]:
        show_servers_tab(ui.shared_profile().config, own=config)
    with tabs[7]:
        show_alerts_tab(config)
else:  # members see what can run and the machine; admins manage it
    tabs = st.tabs(["📋 Availability", "🖥️ Hardware", "🗄️ Cache", "📈 Servers", "🚨 Alerts"])
    with tabs[0]:
        show_status_tab()
    with tabs[1]:
        show_hardware_tab()
    with tabs[2]:
        show_cache_tab()
    with tabs[3]:
        show_servers_tab(ui.shared_profile().config, own=config)
    with tabs[4]:
        show_alerts_tab(config)
