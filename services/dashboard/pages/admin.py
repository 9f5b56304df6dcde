"""admin (being built)."""

import streamlit as st

st.title("admin")
