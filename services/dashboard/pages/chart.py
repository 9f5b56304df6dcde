"""chart (being built)."""

import streamlit as st

st.title("chart")
