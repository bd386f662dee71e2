"""ChatVLMLLM entry point: page config, profile load, navigation.

Run with `make run` (or `streamlit run app.py`). The active profile comes from
$CHATVLM_CONFIG (default config.yaml).
"""

import streamlit as st

import ui

st.set_page_config(page_title="ChatVLMLLM", page_icon=ui.PAGE_ICON, layout="wide")
loaded = ui.profile()

# Emoji icons on purpose: `:material/...:` icons make the browser fetch a font from a CDN.
navigation = st.navigation(
    [
        st.Page("app_pages/chat.py", title="Chat", icon="💬", default=True),
        st.Page("app_pages/ocr.py", title="OCR", icon="🔎"),
        st.Page("app_pages/benchmark.py", title="Benchmarks", icon="📊"),
        st.Page("app_pages/models.py", title="Models", icon="🧠"),
    ]
)
with st.sidebar:
    st.caption(f"Profile: `{loaded.source.name}`")
navigation.run()
# After the page: reading a damaged file is what moves it aside.
ui.report_moved_aside(loaded.config.data_dir)
