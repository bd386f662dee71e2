"""The one small helper module shared by app.py and the pages (Streamlit lives here).

It loads the active profile once per process, and shows ``AppError``s the same
way everywhere: what happened, then what to do.
"""

from __future__ import annotations

import streamlit as st

from models.config import LoadedConfig, active_profile_path, load_config
from utils.errors import AppError, ConfigError
from utils.logging_setup import setup_logging

PAGE_ICON = "📄"


@st.cache_resource(show_spinner=False)
def _load_profile(path: str) -> LoadedConfig:
    loaded = load_config(path)
    setup_logging(loaded.config.data_dir, loaded.config.app.log_level)
    return loaded


def profile() -> LoadedConfig:
    """The active profile; on a broken one, show the error and stop this run."""
    try:
        return _load_profile(str(active_profile_path()))
    except ConfigError as exc:
        st.error(f"The configuration could not be loaded.\n\n```\n{exc.message}\n```")
        st.info(exc.hint or "Fix the profile and reload the page.")
        st.stop()
        raise  # st.stop() raises; this line only tells type checkers so


def show_error(exc: AppError) -> None:
    st.error(exc.message)
    if exc.hint:
        st.caption(f"What to do: {exc.hint}")


def not_yet_available(feature: str, detail: str) -> None:
    """Say plainly that a feature has not landed, instead of showing anything fake."""
    st.info(f"**{feature}** is not available in this version yet. {detail}")
