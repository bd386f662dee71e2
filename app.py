"""ChatVLMLLM entry point: page config, profile load, sign-in, navigation.

Run with `make run` (or `python serve.py`: `streamlit run app.py` that starts loading
the default OCR engine with the server). The active profile comes from $CHATVLM_CONFIG
(default config.yaml).
"""

import streamlit as st

import ui
from app_pages.alerts_view import show_banner
from app_pages.sign_in import show_account, signed_in_user
from utils.auth import Action, User, can

st.set_page_config(page_title="ChatVLMLLM", page_icon=ui.PAGE_ICON, layout="wide")
loaded = ui.shared_profile()
ui.refuse_unsafe_listen(loaded.config)
ui.start_monitor(loaded.config)
ui.preload_ocr_engine(loaded.config)
user = signed_in_user(loaded.config)
ui.set_current_user(user)
loaded = ui.profile()  # now with the user's own connected servers


def pages_for(user: User) -> list:
    """The pages this user's role can use (the services check again on every action)."""
    # Emoji icons on purpose: `:material/...:` icons make the browser fetch a font from a CDN.
    pages = []
    if can(user, Action.CHAT):
        pages.append(st.Page("app_pages/chat.py", title="Chat", icon="💬", default=True))
    if can(user, Action.RUN_OCR):
        pages.append(st.Page("app_pages/ocr.py", title="OCR", icon="🔎"))
    pages.append(
        st.Page("app_pages/benchmark.py", title="Benchmarks", icon="📊", default=not pages)
    )
    if can(user, Action.CHAT):
        pages.append(st.Page("app_pages/models.py", title="Models", icon="🧠"))
    return pages


navigation = st.navigation(pages_for(user))
show_banner(loaded.config)
with st.sidebar:
    st.caption(f"Profile: `{loaded.source.name}`")
    show_account(user)
navigation.run()
# After the page: reading a damaged file is what moves it aside.
ui.report_moved_aside(loaded.config.data_dir)
