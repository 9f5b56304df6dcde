"""backtest (being built)."""

import streamlit as st

st.title("backtest")
