"""Sign in with email and password, then the TOTP code when the account has one."""

from __future__ import annotations

import streamlit as st

from services.dashboard import session
from services.dashboard.client import PlatformError

st.title("Sign in to Tradebot")
if notice := st.session_state.get("notice"):
    st.info(notice)
needs_code = st.session_state.get("login_needs_code", False)
with st.form("login"):
    email = st.text_input("Email", key="login_email")
    password = st.text_input("Password", type="password", key="login_password")
    code = st.text_input("Authenticator code", key="login_code", max_chars=40) if needs_code else ""
    submitted = st.form_submit_button("Sign in", type="primary", use_container_width=True)
if needs_code:
    st.info("Enter the six-digit code from your authenticator app (or a recovery code).")
if submitted:
    try:
        if session.login(email, password, code):
            st.session_state.pop("login_needs_code", None)
            st.rerun()
        else:
            st.session_state["login_needs_code"] = True
            st.rerun()
    except PlatformError as error:
        st.error(error.sentence)
st.caption("New here? Open the link in your invitation, or use Sign up with its invite code.")
