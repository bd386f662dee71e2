"""Benchmark runs: accuracy next to speed and memory, compared across runs."""

import streamlit as st

import ui

st.title("📊 Benchmarks")
ui.not_yet_available(
    "Benchmarks",
    "The runner and dashboard are not built yet; no run has been recorded.",
)
