"""OCR of uploaded images and PDFs."""

import streamlit as st

import ui

st.title("🔎 OCR")
ui.not_yet_available("OCR", "The OCR pipeline lands next.")
