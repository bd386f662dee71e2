"""The Chat page's empty state: no chat model can run here yet, and the two ways out
(download a small one, or connect a server that already serves one)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

import ui
from models.config import AppConfig
from models.runtime.hub import hub_offline
from utils.auth import Action
from utils.chat.connect import connect_server
from utils.errors import AppError
from utils.system.admin import download_model
from utils.system.downloads import recommended_chat_download

NO_MODEL_PLACEHOLDER = "No chat model can run yet: download one or connect a server first"


def show_no_model_state(config: AppConfig, on_model_added: Callable[[], None]) -> None:
    """What to do when no chat model is usable; ``on_model_added`` runs once one is."""
    st.info(
        "**No chat model can run on this machine yet.** Download a small one here, or "
        "connect a server that already serves one. The sidebar says why each model of "
        "the profile cannot run."
    )
    download_column, server_column = st.columns(2)
    with download_column:
        if ui.allowed(Action.MANAGE_MODELS):
            offer_download(config, on_model_added)
        else:
            st.subheader("⬇️ Download a recommended model")
            st.caption("Downloads are for admins: ask one to download a chat model.")
    with server_column:
        connect_form(config, on_model_added)


def offer_download(config: AppConfig, on_model_added: Callable[[], None]) -> None:
    st.subheader("⬇️ Download a recommended model")
    model_id = recommended_chat_download(config)
    if model_id is None:
        st.caption("The profile has no in-process chat model to download.")
        return
    entry = config.models[model_id]
    st.caption(
        f"{ui.untrusted(entry.display_name)} ({ui.untrusted(entry.source)}): the smallest "
        "chat model of the catalog, into the Hugging Face cache."
    )
    if hub_offline():
        st.warning(
            "Downloads are switched off: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set. "
            "Unset it on a machine with network and restart the app, or connect a server."
        )
        return
    if not st.button("⬇️ Download", key="chat_download_model"):
        return
    bar = st.progress(0.0)
    try:
        download_model(
            model_id, config, ui.current_user(), lambda done, text: bar.progress(done, text=text)
        )
    except AppError as exc:
        bar.empty()
        ui.show_error(exc)
        return
    on_model_added()


def connect_form(config: AppConfig, on_model_added: Callable[[], None]) -> None:
    st.subheader("🔌 Connect a server")
    st.caption(
        "An OpenAI-compatible server: Ollama (http://localhost:11434/v1), vLLM "
        "(http://localhost:8000/v1) or llama.cpp (http://localhost:8080/v1). It is asked "
        "what it serves before anything is saved."
    )
    with st.form("chat_connect_server"):
        base_url = st.text_input("Base URL", placeholder="http://localhost:11434/v1")
        served_name = st.text_input("Model name on the server", placeholder="qwen2.5vl:3b")
        key_env = st.text_input(
            "API key environment variable (optional)", placeholder="OPENAI_API_KEY"
        )
        submitted = st.form_submit_button("🔌 Check and save")
    if not submitted:
        return
    try:
        connect_server(config.data_dir, ui.current_user(), base_url, served_name, key_env)
    except AppError as exc:
        ui.show_error(exc)
        return
    ui.reload_profile()  # the saved overrides file adds the model to the profile
    on_model_added()
