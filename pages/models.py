"""The model catalog of the active profile, endpoints and the result cache."""

import streamlit as st

import ui
from utils.errors import AppError
from utils.services import open_cache

loaded = ui.profile()
config = loaded.config

st.title("🧠 Models")
st.caption(f"Active profile: `{loaded.source}` (sha256 `{loaded.sha256[:12]}`)")

st.subheader("Catalog")
st.dataframe(
    [
        {
            "id": key,
            "name": entry.display_name,
            "backend": entry.backend,
            "task": entry.task,
            "source": entry.source or entry.served_name or "built in",
            "dtype": entry.dtype,
            "quantization": entry.quantization,
            "trust_remote_code": entry.trust_remote_code,
        }
        for key, entry in config.models.items()
    ],
    hide_index=True,
)
st.caption(
    "Availability checks (local weights, reachable servers, installed engines) are not built yet."
)

st.subheader("OpenAI-compatible endpoints")
st.dataframe(
    [
        {"id": key, "base_url": ep.base_url, "api_key_env": ep.api_key_env or "—"}
        for key, ep in config.endpoints.items()
    ],
    hide_index=True,
)

st.subheader("Result cache")
try:
    cache = open_cache(config)
    stats = cache.stats()
except AppError as exc:
    ui.show_error(exc)
else:
    cols = st.columns(4)
    cols[0].metric("Entries", stats.entries)
    cols[1].metric("Size (MB)", f"{stats.size_bytes / 1e6:.1f}")
    cols[2].metric("Hits", stats.hits)
    cols[3].metric("Misses", stats.misses)
    if st.button("Clear cache"):
        st.success(f"Removed {cache.clear()} cached entries.")
