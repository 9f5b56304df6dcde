"""history (being built)."""

import streamlit as st

st.title("history")
