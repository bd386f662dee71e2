"""Chat with a vision-language model about images."""

import streamlit as st

import ui

st.title("💬 Chat")
ui.not_yet_available(
    "Chat with vision-language models",
    "The transformers and OpenAI-compatible backends land with the VLM work; "
    "the Models page lists the catalog of the active profile meanwhile.",
)
