"""performance (being built)."""

import streamlit as st

st.title("performance")
